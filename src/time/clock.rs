//! The iocore clock: [`Deadline`]s are nanoseconds since a process-wide epoch, in a `u64`
//! (8 bytes, total order, cheap compare), with one value reserved for "never".
//!
//! Task headers, the deadline heap and the slow-path timers store deadlines in this form;
//! the public API speaks `Instant` and `Duration` and converts at the edge.
//! [`stamp`] is a cheaper, coarser reading for bounding work (not for deadlines).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A point on the iocore clock, or [`NEVER`](Deadline::NEVER).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Deadline(u64);

impl Deadline {
    /// No deadline: after every other.
    pub(crate) const NEVER: Deadline = Deadline(u64::MAX);

    /// Now.
    pub(crate) fn now() -> Deadline {
        Deadline::at(Instant::now())
    }

    /// `t` on the iocore clock (instants before the epoch map to 0; far ones saturate just
    /// below `NEVER`).
    pub(crate) fn at(t: Instant) -> Deadline {
        let d = t.saturating_duration_since(epoch());
        Deadline(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1).min(u64::MAX - 1))
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

/// `now + d`, saturating to a far-future instant instead of overflowing.
pub(crate) fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

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
