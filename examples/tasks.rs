//! A tour of iocore's executor: spawn, deadlines, wakeups and signals, with timings.
//!
//! Run: `cargo run --release --example tasks`

use iocore::task::{self, Wake};
use iocore::{time, IoCore};
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let core = IoCore::new()?;
    println!("iocore with {} workers", core.metrics().workers);

    // 1. Spawn many small tasks and join them all.
    let n = 200_000u64;
    let start = Instant::now();
    let handles: Vec<_> = (0..n).map(|i| core.spawn(async move { i % 7 })).collect();
    let sum: u64 = core.block_on(async {
        let mut sum = 0;
        for h in handles {
            sum += h.await.expect("task failed");
        }
        sum
    });
    let took = start.elapsed();
    println!(
        "spawned and joined {n} tasks in {took:?} ({:.2} M tasks/s), checksum {sum}",
        n as f64 / took.as_secs_f64() / 1e6
    );

    // 2. Sub-millisecond sleeps inside tasks.
    let lateness = core.block_on(async {
        let mut worst = Duration::ZERO;
        for _ in 0..200 {
            let h = iocore::spawn(async {
                let deadline = Instant::now() + Duration::from_micros(250);
                time::sleep_until(deadline).await;
                Instant::now() - deadline
            });
            worst = worst.max(h.await.expect("sleeper failed"));
        }
        worst
    });
    println!("200 sleeps of 250 µs: worst lateness {lateness:?}");

    // 3. A worker that sleeps until signalled, with a 1 s deadline.
    let worker = core.spawn(async {
        let mut rounds = 0;
        while task::park(Some(Instant::now() + Duration::from_secs(1))).await == Wake::Signaled {
            rounds += 1;
            if rounds == 1000 {
                break;
            }
        }
        rounds
    });
    let task = worker.task();
    let start = Instant::now();
    let rounds = std::thread::spawn(move || {
        while !task.is_finished() {
            task.signal();
            std::thread::yield_now();
        }
    });
    let got = core.block_on(worker).expect("worker failed");
    rounds.join().expect("signalling thread panicked");
    println!("a task consumed {got} signals from another thread in {:?}", start.elapsed());

    // 4. A delayed task, started early by a wakeup.
    let delayed = core.spawn_after(Duration::from_secs(3600), async { "started early" });
    delayed.task().wakeup();
    println!("spawn_after(1 h) + wakeup: {}", core.block_on(delayed).expect("delayed task failed"));

    // 5. A timeout.
    let r = core.block_on(time::timeout(Duration::from_millis(5), futures::future::pending::<()>()));
    println!("timeout on a future that never completes: {r:?}");

    let m = core.metrics();
    println!(
        "metrics: {} sched steps, polls per worker {:?}, live tasks {}",
        m.sched_steps, m.worker_polls, m.live_tasks
    );
    let report = core.shutdown(Duration::from_millis(100));
    println!("shutdown: {report:?}");
    Ok(())
}
