//! Prints `IoCore::metrics()` every second while a mixed workload runs: tasks that sleep,
//! tasks that yield, and tasks that park until signalled.
//!
//! Run: `cargo run --release --example metrics` (optional: `-- SECONDS`).

use iocore::{task, time, IoCore};
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let core = IoCore::new()?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    for i in 0..1000u64 {
        core.spawn(async move {
            while Instant::now() < deadline {
                time::sleep(Duration::from_millis(1 + i % 20)).await;
            }
        });
    }
    for _ in 0..4 {
        core.spawn(async move {
            while Instant::now() < deadline {
                task::yield_now().await;
            }
        });
    }
    let parked: Vec<_> = (0..100).map(|_| core.spawn(async { task::park(None).await })).collect();
    for s in 1..=seconds {
        std::thread::sleep(Duration::from_secs(1));
        let m = core.metrics();
        println!(
            "[{s}s] live {:>5}  parked {:>5}  ready {:>4}  front {:>3}  sched steps {:>8}  polls/worker {:?}  busy/worker {:?}",
            m.live_tasks,
            m.parked_tasks,
            m.ready_queue_depth,
            m.front_queue_depth,
            m.sched_steps,
            m.worker_polls,
            m.worker_busy.iter().map(|d| format!("{:.0?}", d)).collect::<Vec<_>>()
        );
    }
    for p in &parked {
        p.task().signal();
    }
    println!("{:?}", core.shutdown(Duration::from_secs(1)));
    Ok(())
}
