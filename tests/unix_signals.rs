//! `iocore::signal`: Unix signals as futures and streams, from several tasks at once,
//! with coalescing, and clear errors for signals that cannot be caught. (Each test uses
//! its own signal: the handlers are process-wide and the tests run in parallel.)

use futures::FutureExt;
use iocore::signal::{ctrl_c, signal, SignalKind};
use iocore::IoCore;
use std::time::Duration;

mod support;

use support::HANG;

/// Sends `sig` to the calling thread, so its handler has run when this returns (`kill`
/// on the process lets the kernel pick a thread, and the handler may run later: three
/// `kill`s then were not always delivered before the first `recv`).
fn raise(sig: SignalKind) {
    // SAFETY: `raise` signals the calling thread; the signal's handler is registered before.
    assert_eq!(unsafe { libc::raise(sig.as_raw()) }, 0);
}

#[test]
fn every_task_listening_for_a_signal_sees_it() {
    let core = IoCore::builder().threads(2).build().unwrap();
    let kind = SignalKind::user_defined1();
    let listeners: Vec<_> = (0..3)
        .map(|_| {
            let mut s = signal(kind).unwrap();
            core.spawn(async move { s.recv().await })
        })
        .collect();
    raise(kind);
    core.block_on(iocore::time::timeout(HANG, async {
        for l in listeners {
            assert_eq!(l.await.unwrap(), Some(()));
        }
    }))
    .expect("a listener was not woken");
}

#[test]
fn deliveries_between_two_awaits_coalesce() {
    let core = IoCore::builder().threads(1).build().unwrap();
    let kind = SignalKind::user_defined2();
    let mut s = signal(kind).unwrap();
    for _ in 0..3 {
        raise(kind);
    }
    core.block_on(async {
        assert_eq!(iocore::time::timeout(HANG, s.recv()).await.expect("hung"), Some(()));
        assert!(s.recv().now_or_never().is_none(), "three deliveries were reported twice");
        raise(kind);
        assert_eq!(iocore::time::timeout(HANG, s.recv()).await.expect("hung"), Some(()));
    });
}

#[test]
fn a_signal_registered_twice_works_for_both() {
    let kind = SignalKind::hangup();
    let mut a = signal(kind).unwrap();
    let mut b = signal(kind).unwrap();
    raise(kind);
    futures::executor::block_on(async {
        assert_eq!(iocore::time::timeout(HANG, a.recv()).await.expect("a hung"), Some(()));
        assert_eq!(iocore::time::timeout(HANG, b.recv()).await.expect("b hung"), Some(()));
    });
}

#[test]
fn ctrl_c_completes_on_sigint() {
    // Registered first, so that raising SIGINT can never hit the default action.
    let _keep = signal(SignalKind::interrupt()).unwrap();
    let core = IoCore::builder().threads(1).build().unwrap();
    let waiter = core.spawn(ctrl_c());
    let deadline = std::time::Instant::now() + HANG;
    // The task registers when first polled: raise until it has seen one.
    while !waiter.is_finished() {
        assert!(std::time::Instant::now() < deadline, "ctrl_c never completed");
        raise(SignalKind::interrupt());
        std::thread::sleep(Duration::from_millis(5));
    }
    core.block_on(waiter).unwrap().unwrap();
}

#[test]
fn uncatchable_and_unknown_signals_are_errors_naming_the_signal() {
    let e = signal(SignalKind::from_raw(libc::SIGKILL)).unwrap_err();
    assert!(e.to_string().contains("signal 9"), "{e}");
    let e = signal(SignalKind::from_raw(libc::SIGSTOP)).unwrap_err();
    assert!(e.to_string().contains(&format!("signal {}", libc::SIGSTOP)), "{e}");
    for bad in [0, -1, 1000] {
        let e = signal(SignalKind::from_raw(bad)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}: {e}");
        assert!(e.to_string().contains(&format!("signal {bad}")), "{e}");
    }
}
