//! `TaskRef::started_by`: a `spawn_at` task can tell whether its deadline, a wakeup or a
//! signal started it; a plain `spawn` started immediately; a waiting one has not started.

mod support;

use iocore::task::{self, Start, Wake};
use std::time::{Duration, Instant};
use support::{core, join, wait_until};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn spawn_started_immediately() {
    let core = core(2);
    let h = core.spawn(async { task::current().started_by() });
    assert_eq!(join(&core, h).unwrap(), Some(Start::Immediately));
}

#[test]
fn a_delayed_task_not_yet_started_says_none_then_its_deadline_starts_it() {
    let core = core(2);
    let h = core.spawn_after(Duration::from_millis(30), async { task::current().started_by() });
    assert_eq!(h.task().started_by(), None);
    assert_eq!(join(&core, h).unwrap(), Some(Start::Deadline));
}

#[test]
fn a_wakeup_before_the_deadline_starts_it_and_is_spent() {
    let core = core(2);
    let h = core.spawn_at(Instant::now() + HOUR, async {
        let how = task::current().started_by();
        // The wakeup was consumed by the start: a park now waits for its deadline.
        let parked = task::park(Some(Instant::now() + Duration::from_millis(20))).await;
        (how, parked)
    });
    h.task().wakeup();
    assert_eq!(join(&core, h).unwrap(), (Some(Start::Woken), Wake::Expired));
}

#[test]
fn a_signal_before_the_deadline_starts_it_and_stays_pending() {
    let core = core(2);
    let h = core.spawn_at(Instant::now() + HOUR, async {
        let how = task::current().started_by();
        (how, task::park(None).await)
    });
    h.task().signal();
    assert_eq!(join(&core, h).unwrap(), (Some(Start::Signaled), Wake::Signaled));
}

#[test]
fn the_reason_is_kept_after_later_wakeups() {
    let core = core(1);
    let h = core.spawn_after(Duration::from_millis(10), async {
        task::park(None).await;
        task::current().started_by()
    });
    let t = h.task();
    wait_until("the delayed task started", || t.started_by().is_some());
    t.wakeup();
    assert_eq!(join(&core, h).unwrap(), Some(Start::Deadline));
}
