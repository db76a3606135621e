//! The iocore clock: [`Deadline`]s are nanoseconds since a process-wide epoch, in a `u64`
//! (8 bytes, total order, cheap compare), with one value reserved for "never".
//!
//! Task headers, the deadline heap and the slow-path timers store deadlines in this form;
//! the public API speaks `Instant` and `Duration` and converts at the edge.
//! [`stamp`] is a cheaper, coarser reading for bounding work (not for deadlines).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The origin of the iocore clock, as an `Instant` (for converting the public API's
/// instants) and as a raw monotonic reading (for [`Deadline::now`], which reads the
/// clock directly: converting an `Instant` costs more than reading the clock).
struct Epoch {
    instant: Instant,
    /// A raw reading taken just *after* `instant`: a deadline read with [`Deadline::now`]
    /// lags the same moment converted from an `Instant` by a few nanoseconds, never
    /// leads it, so a deadline given as an `Instant` is never seen as passed early.
    raw: u64,
}

fn epoch() -> &'static Epoch {
    static EPOCH: OnceLock<Epoch> = OnceLock::new();
    EPOCH.get_or_init(|| {
        let instant = Instant::now();
        Epoch { instant, raw: raw_nanos(instant) }
    })
}

/// The monotonic clock `Instant` uses, in nanoseconds (Linux: `CLOCK_MONOTONIC`).
#[cfg(target_os = "linux")]
fn raw_nanos(_origin: Instant) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid place for the result; `CLOCK_MONOTONIC` always exists on
    // Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// Elsewhere: nanoseconds since `origin` through `Instant` itself.
#[cfg(not(target_os = "linux"))]
fn raw_nanos(origin: Instant) -> u64 {
    u64::try_from(Instant::now().saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

/// The largest finite deadline.
const LAST: u64 = u64::MAX - 1;

/// `t + d`, saturating (like [`Deadline::after`]) where the sum cannot be represented.
pub(crate) fn instant_after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or_else(|| Deadline(LAST).to_instant().max(t))
}

/// A point on the iocore clock, or [`NEVER`](Deadline::NEVER).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Deadline(u64);

impl Deadline {
    /// No deadline: after every other.
    pub(crate) const NEVER: Deadline = Deadline(u64::MAX);

    /// Now.
    pub(crate) fn now() -> Deadline {
        let e = epoch();
        Deadline(raw_nanos(e.instant).saturating_sub(e.raw).min(LAST))
    }

    /// `d` from now (saturating just below `NEVER`).
    pub(crate) fn after(d: Duration) -> Deadline {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Deadline(Deadline::now().0.saturating_add(ns).min(LAST))
    }

    /// `t` on the iocore clock (instants before the epoch map to 0; far ones saturate just
    /// below `NEVER`).
    pub(crate) fn at(t: Instant) -> Deadline {
        let d = t.saturating_duration_since(epoch().instant);
        Deadline(u64::try_from(d.as_nanos()).unwrap_or(LAST).min(LAST))
    }

    /// This deadline as an `Instant` (the inverse of [`at`](Self::at) for instants after
    /// the epoch; one that cannot be represented saturates to about a century ahead).
    pub(crate) fn to_instant(self) -> Instant {
        let e = epoch().instant;
        e.checked_add(Duration::from_nanos(self.0)).unwrap_or_else(|| e + FAR)
    }

    pub(crate) fn is_never(self) -> bool {
        self == Deadline::NEVER
    }

    /// Whether the clock has reached this deadline.
    pub(crate) fn has_passed(self) -> bool {
        !self.is_never() && self <= Deadline::now()
    }

    /// From `now` to this deadline (zero if it has passed).
    pub(crate) fn since(self, now: Deadline) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(now.0))
    }

    /// Nanoseconds since the epoch (`u64::MAX` for never), as a sort key.
    pub(crate) fn as_nanos(self) -> u64 {
        self.0
    }

    /// The inverse of [`as_nanos`](Self::as_nanos).
    pub(crate) fn from_nanos(ns: u64) -> Deadline {
        Deadline(ns)
    }
}

/// What a deadline beyond `Instant`'s range becomes when converted: about a century.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A cheap monotonic reading, for bounding how long a worker runs tasks: the time-stamp
/// counter on x86-64 (a few ns; constant-rate on every CPU this targets), elsewhere the
/// clock. Only differences mean anything; convert a duration with [`stamps_in`].
pub(crate) fn stamp() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `rdtsc` has no preconditions on x86-64.
        unsafe { std::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Deadline::now().as_nanos()
    }
}

/// [`stamp`] units per nanosecond. Calibrated once per process (a 200 µs spin on the
/// first call).
fn stamps_per_ns() -> f64 {
    static PER_NS: OnceLock<f64> = OnceLock::new();
    *PER_NS.get_or_init(|| {
        if cfg!(not(target_arch = "x86_64")) {
            return 1.0;
        }
        let (t0, s0) = (Instant::now(), stamp());
        while t0.elapsed() < Duration::from_micros(200) {
            std::hint::spin_loop();
        }
        let (ns, stamps) = (t0.elapsed().as_nanos() as f64, stamp().wrapping_sub(s0) as f64);
        (stamps / ns).max(0.01)
    })
}

/// How many [`stamp`] units `d` lasts.
pub(crate) fn stamps_in(d: Duration) -> u64 {
    (d.as_nanos() as f64 * stamps_per_ns()) as u64
}

/// How long `stamps` [`stamp`] units last (the inverse of [`stamps_in`]).
pub(crate) fn duration_of(stamps: u64) -> Duration {
    Duration::from_nanos((stamps as f64 / stamps_per_ns()) as u64)
}

#[cfg(all(test, not(iocore_loom)))]
mod tests {
    use super::*;

    /// The clock read directly never runs ahead of the same moment read as an `Instant`
    /// (read after it): a deadline given as an `Instant` is never seen as passed early.
    #[test]
    fn a_direct_reading_never_leads_an_instant_read_after_it() {
        for _ in 0..100_000 {
            let direct = Deadline::now();
            let via_instant = Deadline::at(Instant::now());
            assert!(direct <= via_instant, "{direct:?} > {via_instant:?}");
        }
    }

    /// Instants after the epoch convert to deadlines and back exactly; `after` adds to
    /// the current reading and saturates below `NEVER`.
    #[test]
    fn conversions_round_trip_and_saturate() {
        let t = Instant::now() + Duration::from_nanos(123_456_789);
        assert_eq!(Deadline::at(t).to_instant(), t);
        let before = Deadline::now();
        let d = Deadline::after(Duration::from_millis(5));
        assert!(d.as_nanos() >= before.as_nanos() + 5_000_000);
        assert_eq!(Deadline::after(Duration::MAX).as_nanos(), LAST);
        assert!(!Deadline::after(Duration::MAX).is_never());
        assert!(Deadline::after(Duration::MAX).to_instant() > Instant::now());
    }
}
