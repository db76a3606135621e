//! The open-loop client: each connection sends on a fixed schedule, whatever the replies
//! do, and a message's latency counts from the time it was scheduled to go out, so a
//! server that falls behind shows as latency (no coordinated omission). Catching up after
//! a late wakeup sends every message that is due in one write.

use crate::client::{fail, ClientConn};
use crate::stream::{BenchRuntime, BenchStream};
use futures::future::{select, Either};
use std::pin::pin;
use std::time::{Duration, Instant};

/// A connection's send times: every `interval` from `next`.
struct Schedule {
    next: Instant,
    interval: Duration,
}

impl Schedule {
    /// `rate` messages/s over `connections` connections; connection `index` starts at its
    /// share of one interval, so the connections' sends are spread evenly.
    fn new(rate: f64, connections: usize, index: usize) -> Schedule {
        let interval = Duration::from_secs_f64(connections as f64 / rate);
        let offset = interval.mul_f64(index as f64 / connections as f64);
        Schedule { next: Instant::now() + offset, interval }
    }

    /// Appends every message due by `now` to `c.out`; true if there are any.
    fn push_due(&mut self, c: &mut ClientConn, now: Instant) -> bool {
        c.out.clear();
        while self.next <= now {
            c.push_message(self.next);
            self.next += self.interval;
        }
        !c.out.is_empty()
    }
}

/// One connection's open loop, on any runtime: send what is due, then read replies until
/// the next send is due.
pub async fn drive<R: BenchRuntime>(mut s: R::Stream, mut c: ClientConn, rate: f64, connections: usize) {
    let mut schedule = Schedule::new(rate, connections, c.index());
    while !c.done() {
        if schedule.push_due(&mut c, Instant::now()) {
            s.send_all(&c.out).await.unwrap_or_else(|e| fail(e));
        }
        let wait = schedule.next.saturating_duration_since(Instant::now());
        // A recv cut short by the timer has read nothing (the runtimes' reads are cancel-safe).
        let read = match select(pin!(s.recv(c.space())), pin!(R::sleep(wait))).await {
            Either::Left((r, _)) => Some(r.unwrap_or_else(|e| fail(e))),
            Either::Right(_) => None,
        };
        match read {
            Some(0) => fail("server closed the connection"),
            Some(n) => {
                c.on_read(n).unwrap_or_else(|e| fail(e));
            }
            None => {}
        }
    }
}
