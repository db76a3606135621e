//! The iocore clock: nanoseconds since a process-wide epoch, as a `u64`.
//!
//! Deadlines are stored in this form in task headers and heaps (8 bytes, total order,
//! cheap compare). `u64::MAX` means "never".

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Now, in iocore nanoseconds.
pub(crate) fn now_ns() -> u64 {
    to_ns(Instant::now())
}

/// An instant in iocore nanoseconds (instants before the epoch map to 0, far ones saturate).
pub(crate) fn to_ns(t: Instant) -> u64 {
    let d = t.saturating_duration_since(epoch());
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1)
}

/// `now + d`, saturating to a far-future instant instead of overflowing.
pub(crate) fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
