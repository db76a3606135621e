//! Stress: tasks that wait under deadlines (an idle `timeout` reset around every receive,
//! timeouts from 200 µs to an hour, extra sleeps and yields) while plain threads send to
//! them and some are aborted. This drives every path of the lazy deadline-heap entries at
//! once: a wake leaves the entry behind, the task parks again under it or moves it, the
//! entry comes due while the task runs or waits, tasks finish or are cancelled with an
//! entry, and the core shuts down with entries left behind.
//!
//! Checked: no hang (a watchdog bounds the whole); every message sent to a task that was
//! not aborted is received exactly once; every task's output is dropped once the handles
//! are gone; the core goes idle and shuts down with every remaining task cancelled.
//!
//! A second test does the same with `task::park` under deadlines, tasks that start asleep
//! (`spawn_after`), and `TaskRef` wakeups and signals from plain threads.
//!
//! Short by default (about a second); `IOCORE_STRESS=full` runs more tasks and messages.

mod support;

use futures::channel::mpsc;
use futures::StreamExt;
use iocore::{task, time, JoinHandle};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use support::stress::{pick, seed, Rng};
use support::{core, wait_until, watchdog, DropGuard, HANG};

/// The message that ends a task's loop.
const STOP: u64 = u64::MAX;

/// A wait from 200 µs to an hour: near ones go to the heap, far ones to the wheel.
fn any_wait(rng: &mut Rng) -> Duration {
    match rng.below(4) {
        0 => Duration::from_micros(200),
        1 => Duration::from_millis(2),
        2 => Duration::from_millis(50),
        _ => Duration::from_secs(3600),
    }
}

/// One task: receives until `STOP`, each wait under a timeout of a length it picks;
/// returns how many messages it got (and a guard that counts the output's drop).
async fn receiver(
    mut rx: mpsc::UnboundedReceiver<u64>,
    seed: u64,
    dropped: Arc<AtomicUsize>,
) -> (u64, DropGuard) {
    let mut rng = Rng::new(seed);
    let mut got = 0;
    loop {
        match time::timeout(any_wait(&mut rng), rx.next()).await {
            Ok(Some(STOP)) | Ok(None) => return (got, DropGuard(dropped)),
            Ok(Some(_)) => got += 1,
            Err(_) => {}
        }
        match rng.below(8) {
            0 => task::yield_now().await,
            1 => time::sleep(Duration::from_micros(rng.below(300))).await,
            _ => {}
        }
    }
}

#[test]
fn tasks_under_deadlines_with_wakes_aborts_and_shutdown() {
    let tasks = pick(200usize, 2000);
    let messages = pick(20_000u64, 400_000);
    let senders = 2;
    let base = seed("stress_deadlines");
    watchdog(HANG * 3, move || {
        let core = core(2);
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut txs = Vec::new();
        let mut handles: Vec<Option<JoinHandle<(u64, DropGuard)>>> = Vec::new();
        for i in 0..tasks {
            let (tx, rx) = mpsc::unbounded();
            txs.push(tx);
            handles.push(Some(core.spawn(receiver(rx, base ^ i as u64, dropped.clone()))));
        }
        // Every tenth task is aborted while the senders run (its messages may be lost).
        let aborted: Vec<bool> = (0..tasks).map(|i| i % 10 == 3).collect();
        let txs = Arc::new(txs);
        let sent: Arc<Vec<AtomicUsize>> = Arc::new((0..tasks).map(|_| AtomicUsize::new(0)).collect());
        let threads: Vec<_> = (0..senders)
            .map(|s| {
                let (txs, sent) = (txs.clone(), sent.clone());
                thread::spawn(move || {
                    let mut rng = Rng::new(base.wrapping_add(1000 + s as u64));
                    for m in 0..messages / senders as u64 {
                        let to = rng.below(txs.len() as u64) as usize;
                        if txs[to].unbounded_send(m).is_ok() {
                            sent[to].fetch_add(1, SeqCst);
                        }
                        if rng.one_in(64) {
                            thread::sleep(Duration::from_micros(rng.below(200)));
                        }
                    }
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(20));
        for (h, &abort) in handles.iter().zip(&aborted) {
            if abort {
                h.as_ref().expect("not joined yet").abort();
            }
        }
        for t in threads {
            t.join().expect("sender");
        }
        for tx in txs.iter() {
            let _ = tx.unbounded_send(STOP);
        }
        let mut returned = 0;
        for (i, h) in handles.iter_mut().enumerate() {
            let h = h.take().expect("joined once");
            let r = match core.block_on(time::timeout(HANG, h)) {
                Ok(r) => r,
                Err(_) => panic!("task {i} hung; sent {}; {:?}", sent[i].load(SeqCst), core.metrics()),
            };
            if aborted[i] {
                // Aborted before or after it finished: either is fine.
                returned += usize::from(r.is_ok());
                continue;
            }
            let (got, out) = r.unwrap_or_else(|e| panic!("task {i}: {e}"));
            assert_eq!(got as usize, sent[i].load(SeqCst), "task {i} lost or doubled a message");
            drop(out);
            returned += 1;
        }
        assert_eq!(dropped.load(SeqCst), returned, "an output was dropped twice or never");
        assert!(core.wait_idle(HANG), "the core did not go idle");

        // Tasks woken out of one-hour deadlines (entries left behind) and parked again under
        // new ones, then a shutdown: every one is cancelled, none hangs it.
        let parked = pick(100usize, 1000);
        let go = Arc::new(AtomicUsize::new(0));
        let mut wakers = Vec::new();
        let mut last = Vec::new();
        for _ in 0..parked {
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            wakers.push(tx);
            let go = go.clone();
            last.push(core.spawn(async move {
                let _ = time::timeout(Duration::from_secs(3600), rx).await;
                go.fetch_add(1, SeqCst);
                time::sleep(Duration::from_secs(1800)).await;
            }));
        }
        wait_until("the last tasks parked", || core.metrics().parked_tasks == parked);
        for tx in wakers {
            let _ = tx.send(());
        }
        wait_until("the last tasks woken", || go.load(SeqCst) == parked);
        wait_until("the last tasks parked again", || core.metrics().parked_tasks == parked);
        let report = core.shutdown(Duration::ZERO);
        assert_eq!(report.cancelled, parked as u64, "{report:?}");
        assert_eq!(report.leaked, 0, "{report:?}");
        for h in last {
            let r = futures::executor::block_on(h);
            assert!(r.unwrap_err().is_cancelled());
        }
    });
}

/// `park` under deadlines from 200 µs to an hour in tasks that start asleep (some for an
/// hour, so only a wakeup starts them), woken from plain threads; a signal ends each. No
/// task hangs, and each ends on its signal.
#[test]
fn parks_under_deadlines_with_wakeups_and_signals() {
    use iocore::task::Wake;
    use std::time::Instant;
    let tasks = pick(200usize, 2000);
    let wakeups = pick(20_000u64, 400_000);
    let base = seed("stress_parks");
    watchdog(HANG * 3, move || {
        let core = core(2);
        let handles: Vec<JoinHandle<()>> = (0..tasks)
            .map(|i| {
                let start =
                    if i % 2 == 0 { Duration::from_secs(3600) } else { Duration::from_micros(i as u64 * 10) };
                core.spawn_after(start, async move {
                    let mut rng = Rng::new(base ^ i as u64);
                    while task::park(Some(Instant::now() + any_wait(&mut rng))).await != Wake::Signaled {
                        if rng.one_in(8) {
                            task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        let refs: Arc<Vec<task::TaskRef>> = Arc::new(handles.iter().map(|h| h.task()).collect());
        let threads: Vec<_> = (0..2)
            .map(|s| {
                let refs = refs.clone();
                thread::spawn(move || {
                    let mut rng = Rng::new(base.wrapping_add(77 + s));
                    for _ in 0..wakeups / 2 {
                        refs[rng.below(refs.len() as u64) as usize].wakeup();
                        if rng.one_in(64) {
                            thread::sleep(Duration::from_micros(rng.below(200)));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("waker thread");
        }
        for r in refs.iter() {
            r.signal();
        }
        for (i, h) in handles.into_iter().enumerate() {
            match core.block_on(time::timeout(HANG, h)) {
                Ok(r) => {
                    r.unwrap_or_else(|e| panic!("task {i}: {e}"));
                }
                Err(_) => panic!("task {i} hung after its signal; {:?}", core.metrics()),
            }
        }
        assert!(core.wait_idle(HANG), "the core did not go idle");
    });
}
