//! `iocore::task::park` polled under a sub-executor inside a task (`join_all` of more than
//! 30 futures, which runs them in a `FuturesOrdered`; a `FuturesUnordered`): the sub-executor
//! re-polls only futures whose own waker was woken, so `park` must wake that waker when its
//! deadline passes (`Wake::Expired`) or when the task is woken (`Wake::Woken`) or signalled
//! (`Wake::Signaled`) through its `TaskRef`.

mod support;

use futures::stream::{FuturesUnordered, StreamExt};
use iocore::task::{self, Wake};
use iocore::{time, TaskRef};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};
use support::{core, polled, wait_until, watchdog, HANG};

/// How long a `park` may take beyond its deadline or wakeup: only a lost wakeup reaches it.
const STUCK: Duration = Duration::from_secs(10);

fn parks_with_deadline_in_join_all(n: usize) {
    watchdog(HANG * 2, move || {
        let core = core(2);
        let h = core.spawn(async move {
            let deadline = Instant::now() + Duration::from_millis(50);
            let parks = (0..n).map(|_| task::park(Some(deadline)));
            time::timeout(STUCK, futures::future::join_all(parks)).await
        });
        let r = core.block_on(h).expect("task");
        let wakes = r.unwrap_or_else(|_| {
            panic!(
                "join_all of {n} park(deadline 50 ms ahead) never completed: the deadline did not wake them"
            )
        });
        assert_eq!(wakes.len(), n);
        assert!(wakes.iter().all(|w| *w == Wake::Expired), "{wakes:?}");
    });
}

#[test]
fn join_all_of_31_parks_with_a_deadline_completes() {
    parks_with_deadline_in_join_all(31);
}

#[test]
fn join_all_of_100_parks_with_a_deadline_completes() {
    parks_with_deadline_in_join_all(100);
}

/// A task parks (no deadline) inside a `FuturesUnordered`; a plain thread gets its
/// `TaskRef` over a channel and, once the `park` was polled, calls `notify` on it.
fn park_in_futures_unordered_returns(notify: fn(&TaskRef), expected: Wake) {
    watchdog(HANG * 2, move || {
        let core = core(2);
        let h = core.spawn(async move {
            let (tx, rx) = mpsc::channel::<TaskRef>();
            let polls = Arc::new(AtomicUsize::new(0));
            let notifier = {
                let polls = polls.clone();
                thread::spawn(move || {
                    let t = rx.recv().expect("task ref");
                    wait_until("the park to be polled", || polls.load(SeqCst) > 0);
                    notify(&t);
                })
            };
            tx.send(task::current()).expect("send task ref");
            let mut set = FuturesUnordered::new();
            set.push(polled(&polls, task::park(None)));
            let r = time::timeout(STUCK, set.next()).await;
            (r, notifier)
        });
        let (r, notifier) = core.block_on(h).expect("task");
        notifier.join().expect("notifier thread");
        match r {
            Ok(Some(w)) => assert_eq!(w, expected),
            Ok(None) => unreachable!("the set held one future"),
            Err(_) => panic!(
                "park(None) inside FuturesUnordered never returned although the task was \
                 notified (expected {expected:?})"
            ),
        }
    });
}

#[test]
fn park_inside_futures_unordered_returns_woken_after_a_wakeup_from_another_thread() {
    park_in_futures_unordered_returns(|t| t.wakeup(), Wake::Woken);
}

#[test]
fn park_inside_futures_unordered_returns_signaled_after_a_signal_from_another_thread() {
    park_in_futures_unordered_returns(|t| t.signal(), Wake::Signaled);
}

#[test]
fn park_with_a_deadline_inside_futures_unordered_expires() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async {
            let mut set: FuturesUnordered<_> =
                (0..3).map(|_| task::park(Some(Instant::now() + Duration::from_millis(20)))).collect();
            time::timeout(STUCK, async {
                let mut wakes = Vec::new();
                while let Some(w) = set.next().await {
                    wakes.push(w);
                }
                wakes
            })
            .await
        });
        let wakes =
            core.block_on(h).expect("task").expect("park(deadline) inside FuturesUnordered never expired");
        assert_eq!(wakes, vec![Wake::Expired; 3]);
    });
}
