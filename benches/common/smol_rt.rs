//! smol's runtime as the benchmarks' third peer, built the way smol builds its own global
//! executor: one `async_executor::Executor` run by N threads, each inside
//! `async_io::block_on` (so an idle executor thread drives the `async_io` reactor).
//! Included by `benches/sched.rs` and `benches/msgbench` with `#[path]`.

use async_executor::{Executor, Task};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;

thread_local! {
    /// The executor of the calling thread (an executor thread, or a `block_on` caller).
    static CURRENT: RefCell<Option<Arc<Executor<'static>>>> = const { RefCell::new(None) };
}

/// An executor and the `threads` threads that run it; dropping it stops and joins them.
pub struct SmolRuntime {
    executor: Arc<Executor<'static>>,
    stop: Vec<futures::channel::oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl SmolRuntime {
    pub fn new(threads: usize) -> SmolRuntime {
        let executor = Arc::new(Executor::new());
        let (mut stop, mut handles) = (Vec::new(), Vec::new());
        for i in 0..threads {
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            let ex = executor.clone();
            let h = std::thread::Builder::new()
                .name(format!("smol-{i}"))
                .spawn(move || {
                    CURRENT.with(|c| *c.borrow_mut() = Some(ex.clone()));
                    async_io::block_on(ex.run(async {
                        let _ = rx.await;
                    }));
                })
                .expect("spawn an executor thread");
            stop.push(tx);
            handles.push(h);
        }
        SmolRuntime { executor, stop, threads: handles }
    }

    /// Runs `f` on the calling thread (not an executor thread); `spawn` inside it spawns on
    /// this runtime.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.executor.clone()));
        let out = async_io::block_on(f);
        CURRENT.with(|c| *c.borrow_mut() = previous);
        out
    }

    /// Spawns from any thread.
    #[allow(dead_code)] // msgbench only spawns from inside the runtime
    pub fn spawn<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> Handle<T> {
        Handle(Some(self.executor.spawn(f)))
    }
}

/// Spawns on the runtime of the calling thread (like `tokio::spawn`); panics outside one.
pub fn spawn<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> Handle<T> {
    CURRENT.with(|c| {
        let c = c.borrow();
        let ex = c.as_ref().expect("smol_rt::spawn outside a SmolRuntime");
        Handle(Some(ex.spawn(f)))
    })
}

/// A task's output; dropping the handle detaches the task (as tokio's and iocore's
/// `JoinHandle` do) instead of cancelling it (as a bare `async_executor::Task` does).
pub struct Handle<T>(Option<Task<T>>);

impl<T> Future for Handle<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(self.0.as_mut().expect("polled after completion")).poll(cx)
    }
}

impl<T> Drop for Handle<T> {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.detach();
        }
    }
}

impl Drop for SmolRuntime {
    fn drop(&mut self) {
        self.stop.clear();
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}
