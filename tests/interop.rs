//! iocore with the rest of the ecosystem: `futures` channels between tasks and plain
//! threads, `futures` combinators (select!, join!, FuturesUnordered, StreamExt) around iocore
//! sleeps inside tasks, iocore futures (JoinHandle, TcpStream) under
//! `futures::executor::block_on`, and a protocol generic over tokio's IO traits, tested with
//! tokio-test's mock IO and (with the `tokio` feature) over a real iocore `TcpStream`.

mod support;

use futures::channel::{mpsc, oneshot};
use futures::future::FutureExt;
use futures::stream::{self, FuturesUnordered, StreamExt};
use futures::{SinkExt, TryStreamExt};
use iocore::net::{TcpListener, TcpStream};
use iocore::time::{sleep, sleep_until, Interval};
use iocore::IoCore;
use std::future::Future;
use std::io;
use std::thread;
use std::time::{Duration, Instant};
use support::core;
use tokio::io::{AsyncRead, AsyncWrite};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `test` as an iocore task (so iocore sleeps take their in-task fast path) with a
/// time limit.
fn in_task<T: Send + 'static>(core: &IoCore, test: impl Future<Output = T> + Send + 'static) -> T {
    let task = core.spawn(iocore::time::timeout(Duration::from_secs(30), test));
    core.block_on(task).expect("task panicked").expect("test timed out")
}

// ---- futures channels between iocore tasks and plain threads ----

#[test]
fn mpsc_from_threads_to_a_task_and_back() {
    let core = core(2);
    let (to_task, mut from_threads) = mpsc::channel::<u64>(8); // bounded: threads wait for the task
    let (to_thread, from_task) = mpsc::unbounded::<u64>();
    let worker = core.spawn(async move {
        let mut n = 0;
        while let Some(x) = from_threads.next().await {
            if x % 100 == 0 {
                sleep(ms(1)).await;
            }
            to_thread.unbounded_send(x * 2).unwrap();
            n += 1;
        }
        n // ends when every sender is gone
    });
    let producers: Vec<_> = (0..3u64)
        .map(|p| {
            let mut tx = to_task.clone();
            thread::spawn(move || {
                futures::executor::block_on(async {
                    for i in 0..500 {
                        tx.send(p * 1000 + i).await.unwrap();
                    }
                })
            })
        })
        .collect();
    drop(to_task);
    // A plain thread collects the task's output (through the unbounded channel).
    let consumer = thread::spawn(move || futures::executor::block_on(from_task.collect::<Vec<_>>()));
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(core.block_on(worker).unwrap(), 1500);
    let mut got = consumer.join().unwrap();
    // Each producer's items arrive in its order.
    for p in 0..3u64 {
        let mine: Vec<_> = got.iter().copied().filter(|x| x / 2000 == p).collect();
        assert_eq!(mine, (0..500).map(|i| (p * 1000 + i) * 2).collect::<Vec<_>>());
    }
    got.sort_unstable();
    assert_eq!(got.len(), 1500);
}

#[test]
fn oneshot_both_directions() {
    let core = core(2);
    // thread -> task, then task -> thread.
    let (req_tx, req_rx) = oneshot::channel::<String>();
    let (resp_tx, resp_rx) = oneshot::channel::<usize>();
    let task = core.spawn(async move {
        let req = req_rx.await.expect("request");
        sleep(ms(5)).await;
        resp_tx.send(req.len()).unwrap();
    });
    let thread = thread::spawn(move || {
        thread::sleep(ms(20)); // the task is parked on the oneshot meanwhile
        req_tx.send("hello from a thread".into()).unwrap();
        futures::executor::block_on(resp_rx).unwrap()
    });
    assert_eq!(thread.join().unwrap(), 19);
    core.block_on(task).unwrap();

    // A sender dropped on a thread cancels the task's receive (no hang).
    let (tx, rx) = oneshot::channel::<()>();
    let task = core.spawn(rx);
    thread::spawn(move || drop(tx)).join().unwrap();
    assert_eq!(core.block_on(task).unwrap(), Err(oneshot::Canceled));

    // A task's sender dropped (task finished) cancels a thread's receive.
    let (tx, rx) = oneshot::channel::<()>();
    core.block_on(core.spawn(async move {
        sleep(ms(2)).await;
        drop(tx);
    }))
    .unwrap();
    assert!(thread::spawn(move || futures::executor::block_on(rx)).join().unwrap().is_err());
}

// ---- futures combinators inside tasks, with iocore sleeps ----

#[test]
fn select_picks_the_first_ready_branch() {
    let core = core(2);
    let (tx, rx) = oneshot::channel::<u32>();
    thread::spawn(move || {
        thread::sleep(ms(10));
        let _ = tx.send(7);
    });
    in_task(&core, async move {
        // A message from a thread beats a long sleep.
        let mut rx = rx.fuse();
        let mut long = sleep(Duration::from_secs(60)).fuse();
        let got = futures::select! {
            v = rx => v.unwrap(),
            () = long => panic!("the sleep won"),
        };
        assert_eq!(got, 7);

        // A short sleep beats a channel that never delivers.
        let (_keep, never) = oneshot::channel::<()>();
        let start = Instant::now();
        futures::select! {
            _ = never.fuse() => panic!("nothing was sent"),
            () = sleep(ms(15)).fuse() => {}
        }
        assert!(start.elapsed() >= ms(15));

        // select! in a loop: interval ticks interleaved with messages, until the channel
        // closes (a long sleep as the give-up branch).
        let (mut tx, mut msgs) = mpsc::channel::<u32>(4);
        iocore::spawn(async move {
            for i in 0..5 {
                sleep(ms(3)).await;
                tx.send(i).await.unwrap();
            }
        });
        let mut ticks = iocore::time::interval(ms(2)).fuse();
        let mut give_up = sleep(Duration::from_secs(20)).fuse();
        let (mut got, mut ticked) = (Vec::new(), 0);
        loop {
            futures::select! {
                m = msgs.next() => match m {
                    Some(m) => got.push(m),
                    None => break,
                },
                _ = ticks.next() => ticked += 1,
                () = give_up => panic!("the messages never came"),
            }
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        // The first tick is at once, the next after 2 ms; the messages took at least 15 ms.
        assert!(ticked >= 2, "interval ticked {ticked} times");
    });
}

#[test]
fn join_runs_sleeps_concurrently() {
    let core = core(2);
    in_task(&core, async {
        let start = Instant::now();
        let (a, b, c) = futures::join!(
            async {
                sleep(ms(30)).await;
                1
            },
            async {
                sleep(ms(20)).await;
                sleep(ms(20)).await;
                2
            },
            async {
                for _ in 0..10 {
                    sleep(ms(1)).await;
                }
                3
            },
        );
        assert_eq!((a, b, c), (1, 2, 3));
        // All three ran in one task, concurrently: at least the longest branch.
        assert!(start.elapsed() >= ms(40));

        // try_join! stops at the first error.
        let r: Result<((), ()), &str> = futures::try_join!(
            async {
                sleep(Duration::from_secs(60)).await;
                Ok(())
            },
            async {
                sleep(ms(5)).await;
                Err("boom")
            },
        );
        assert_eq!(r, Err("boom"));
    });
}

#[test]
fn futures_unordered_completes_in_deadline_order() {
    let core = core(2);
    let done = in_task(&core, async {
        let start = Instant::now();
        let mut set: FuturesUnordered<_> = (0..40u64)
            .map(|i| {
                let deadline = start + ms(2 * (40 - i)); // the last pushed is due first
                async move {
                    // Polled after its deadline (a stalled machine): ready at once, so it
                    // may legitimately come out of order.
                    let late = Instant::now() >= deadline;
                    sleep_until(deadline).await;
                    assert!(Instant::now() >= deadline);
                    (i, late)
                }
            })
            .collect();
        let mut done = Vec::new();
        while let Some(x) = set.next().await {
            done.push(x);
        }
        done
    });
    assert_eq!(done.len(), 40);
    // Under a foreign waker (FuturesUnordered's), iocore sleeps fire in deadline order.
    let on_time: Vec<u64> = done.iter().filter(|(_, late)| !late).map(|(i, _)| *i).collect();
    assert!(on_time.windows(2).all(|w| w[0] > w[1]), "out of deadline order: {done:?}");
}

#[test]
fn stream_pipelines_with_sleeps() {
    let core = core(2);
    in_task(&core, async {
        // buffered keeps order even though later items finish first.
        let ordered: Vec<u64> = stream::iter(0..30u64)
            .map(|i| async move {
                sleep(ms((30 - i) % 7)).await;
                i * i
            })
            .buffered(8)
            .filter(|x| futures::future::ready(x % 2 == 0))
            .collect()
            .await;
        assert_eq!(ordered, (0..30u64).map(|i| i * i).filter(|x| x % 2 == 0).collect::<Vec<_>>());

        // buffer_unordered: every item, in completion order.
        let mut unordered: Vec<u64> = stream::iter(0..50u64)
            .then(|i| async move {
                if i % 10 == 0 {
                    sleep(ms(1)).await;
                }
                i
            })
            .map(|i| async move {
                sleep(ms(i % 5)).await;
                i + 1
            })
            .buffer_unordered(10)
            .collect()
            .await;
        unordered.sort_unstable();
        assert_eq!(unordered, (1..=50).collect::<Vec<_>>());

        // An iocore Interval is a Stream.
        let start = Instant::now();
        let ticks: Vec<Instant> = Interval::take(iocore::time::interval(ms(3)), 4).collect().await;
        assert_eq!(ticks.len(), 4);
        assert!(ticks.windows(2).all(|w| w[1] - w[0] >= ms(3)));
        assert!(start.elapsed() >= ms(9));

        // try_ streams, fold, chunks, and a channel as a stream fed by another task.
        let (mut tx, rx) = mpsc::channel::<io::Result<u32>>(2);
        iocore::spawn(async move {
            for i in 1..=10 {
                sleep(ms(1)).await;
                tx.send(Ok(i)).await.unwrap();
            }
        });
        let chunks: Vec<Vec<u32>> = rx.try_chunks(4).map_err(|e| e.1).try_collect().await.unwrap();
        assert_eq!(chunks, vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9, 10]]);
        let sum = stream::iter(1..=100u32).fold(0, |acc, x| async move { acc + x }).await;
        assert_eq!(sum, 5050);
    });
}

// ---- iocore futures under another executor ----

#[test]
fn join_handle_awaited_by_futures_block_on_on_a_thread() {
    let core = core(2);
    let handle = core.spawn(async {
        sleep(ms(20)).await;
        42
    });
    let failing = core.spawn(async {
        sleep(ms(5)).await;
        panic!("expected panic in a task");
    });
    let got = thread::spawn(move || {
        let ok = futures::executor::block_on(handle);
        let err = futures::executor::block_on(failing);
        (ok, err.is_err())
    })
    .join()
    .unwrap();
    assert_eq!(got.0.unwrap(), 42);
    assert!(got.1, "a panicked task is an error for the awaiting thread");
}

#[test]
fn tcp_stream_used_from_futures_block_on_on_a_thread() {
    use futures::io::{AsyncReadExt, AsyncWriteExt};
    let core = core(2);
    let (listener, addr) = core.block_on(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    });
    // Echo server on the core.
    drop(core.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            iocore::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n @ 1..) = stream.recv(&mut buf).await {
                    stream.send_all(&buf[..n]).await.unwrap();
                }
            });
        }
    }));

    // 1. A stream connected on a plain thread (it lives on the process-wide default core).
    let from_thread = thread::spawn(move || {
        futures::executor::block_on(async {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut back = vec![0u8; 64 * 1024];
            let data: Vec<u8> = (0..back.len()).map(|i| (i % 253) as u8).collect();
            s.write_all(&data).await.unwrap(); // fits in the socket buffers
            s.read_exact(&mut back).await.unwrap();
            assert!(back == data);
            // An iocore sleep and timeout under this executor too.
            iocore::time::sleep(ms(5)).await;
            let r = iocore::time::timeout(ms(10), s.read(&mut back)).await;
            assert!(r.is_err(), "nothing more was sent");
            s.close().await.unwrap();
        })
    });
    from_thread.join().unwrap();

    // 2. A stream connected inside the core, then handed to a plain thread.
    let stream = core.block_on(TcpStream::connect(addr)).unwrap();
    thread::spawn(move || {
        futures::executor::block_on(async move {
            let mut stream = stream;
            for i in 0..20u32 {
                let msg = format!("round {i}");
                stream.write_all(msg.as_bytes()).await.unwrap();
                let mut back = vec![0u8; msg.len()];
                stream.read_exact(&mut back).await.unwrap();
                assert_eq!(back, msg.as_bytes());
            }
        })
    })
    .join()
    .unwrap();
}

// ---- a protocol generic over tokio's IO traits ----

/// A line-echo protocol: each line comes back as `> line`; `QUIT` ends the session with
/// `BYE`. Returns the number of lines echoed.
async fn line_echo<S: AsyncRead + AsyncWrite + Unpin>(io: S) -> io::Result<usize> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut io = BufReader::new(io);
    let mut line = String::new();
    let mut echoed = 0;
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            return Ok(echoed); // the peer closed
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text == "QUIT" {
            io.write_all(b"BYE\n").await?;
            io.flush().await?;
            return Ok(echoed);
        }
        io.write_all(format!("> {text}\n").as_bytes()).await?;
        io.flush().await?;
        echoed += 1;
    }
}

#[test]
fn line_echo_with_tokio_test_mock() {
    // Lines split and merged across reads; the mock checks every write.
    let mock = tokio_test::io::Builder::new()
        .read(b"hello\nwor")
        .read(b"ld\r\n")
        .write(b"> hello\n")
        .write(b"> world\n")
        .read(b"QUIT\n")
        .write(b"BYE\n")
        .build();
    assert_eq!(tokio_test::block_on(line_echo(mock)).unwrap(), 2);

    // End of input without QUIT.
    let mock = tokio_test::io::Builder::new().read(b"one\n").write(b"> one\n").build();
    assert_eq!(tokio_test::block_on(line_echo(mock)).unwrap(), 1);

    // IO errors come out as errors.
    let mock = tokio_test::io::Builder::new()
        .read(b"a\n")
        .write_error(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
        .build();
    assert_eq!(tokio_test::block_on(line_echo(mock)).unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    let mock = tokio_test::io::Builder::new().read_error(io::Error::other("bad read")).build();
    assert!(tokio_test::block_on(line_echo(mock)).is_err());
}

/// The same mock session, driven from an iocore task, with input fed by another iocore
/// task through the mock's handle (tokio-test's mock needs no tokio runtime for this).
#[test]
fn line_echo_with_tokio_test_mock_on_iocore() {
    let core = core(2);
    let echoed = in_task(&core, async {
        let (mock, mut handle) = tokio_test::io::Builder::new().build_with_handle();
        let session = iocore::spawn(line_echo(mock));
        for i in 0..10 {
            sleep(ms(1)).await;
            handle.read(format!("line {i}\n").as_bytes()).write(format!("> line {i}\n").as_bytes());
        }
        handle.read(b"QUIT\n").write(b"BYE\n");
        session.await.unwrap().unwrap()
    });
    assert_eq!(echoed, 10);
}

/// The same function over a real iocore `TcpStream` (tokio's traits, `tokio` feature).
#[cfg(feature = "tokio")]
#[test]
fn line_echo_over_an_iocore_tcp_stream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let core = core(2);
    in_task(&core, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = iocore::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            line_echo(stream).await
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut expected = String::new();
        for i in 0..100 {
            let line = format!("line {i} {}\n", "y".repeat(i * 10));
            client.write_all(line.as_bytes()).await.unwrap();
            expected.push_str(&format!("> {line}"));
        }
        client.write_all(b"QUIT\n").await.unwrap();
        expected.push_str("BYE\n");
        let mut got = String::new();
        client.read_to_string(&mut got).await.unwrap_or_else(|e| panic!("read: {e}"));
        // The server returned after BYE and dropped its stream: we read to the end.
        assert_eq!(got, expected);
        assert_eq!(server.await.unwrap().unwrap(), 100);
    });
}

// ---- the `Future` contract for task deadlines ----

/// Once `poll` returned `Pending`, the waker it was given is woken when the future can make
/// progress, whether or not the future is polled again before that. An iocore `Sleep`
/// polled under its task's own waker lowers the task's deadline, which stays until it has
/// passed: a later poll of the task that does not poll the `Sleep` must not lose it.
#[test]
fn sleep_wakes_even_if_not_polled_again() {
    use std::pin::Pin;
    use std::task::Poll;
    let core = core(1);
    let task = core.spawn(async {
        let mut sleep = sleep(ms(50));
        let mut polls = 0;
        std::future::poll_fn(|cx| {
            polls += 1;
            if polls == 1 {
                assert!(Pin::new(&mut sleep).poll(cx).is_pending());
                cx.waker().wake_by_ref(); // another event re-polls the task
                return Poll::Pending;
            }
            if sleep.is_elapsed() {
                Poll::Ready(())
            } else {
                Poll::Pending // relies on the wakeup registered by the first poll
            }
        })
        .await;
    });
    let r = core.block_on(iocore::time::timeout(Duration::from_secs(2), task));
    assert!(r.is_ok(), "the sleep's wakeup was lost: the task was not polled after its deadline");
}
