//! The `tracing` feature: spawn, poll (span), wake, park and socket open/close are emitted.
//! Run with `cargo test --features tracing --test tracing_events`.
#![cfg(feature = "tracing")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Default)]
struct Counter {
    names: Mutex<HashMap<String, usize>>,
    next: AtomicU64,
}

struct Message(Option<String>);
impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

struct Sub(Arc<Counter>);

impl Subscriber for Sub {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.target().starts_with("iocore")
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        *self.0.names.lock().unwrap().entry(format!("span:{}", attrs.metadata().name())).or_default() += 1;
        Id::from_u64(self.0.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut m = Message(None);
        event.record(&mut m);
        if let Some(name) = m.0 {
            *self.0.names.lock().unwrap().entry(name).or_default() += 1;
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn runtime_events_are_emitted() {
    let counter = Arc::new(Counter::default());
    tracing::subscriber::set_global_default(Sub(counter.clone())).unwrap();
    let core = iocore::IoCore::builder().threads(2).build().unwrap();
    core.block_on(async {
        let listener = iocore::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let parked = iocore::spawn(async {
            iocore::task::park(None).await;
        });
        let server = iocore::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut b = [0u8; 4];
            s.recv(&mut b).await.unwrap()
        });
        let c = iocore::net::TcpStream::connect(addr).await.unwrap();
        c.send_all(b"ping").await.unwrap();
        assert_eq!(server.await.unwrap(), 4);
        while !core.metrics().parked_tasks.eq(&1) {
            iocore::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        parked.task().wakeup();
        parked.await.unwrap();
        drop(c);
    });
    let names = counter.names.lock().unwrap().clone();
    for name in ["spawn", "wake", "park", "socket open", "socket close", "span:poll"] {
        assert!(names.get(name).copied().unwrap_or(0) > 0, "no {name:?} event; got {names:?}");
    }
}
