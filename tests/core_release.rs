//! A dropped core lets go of everything it owns (its kernel queue among them), also when
//! its tasks were cancelled while waiting under deadlines: such a task still has an entry
//! in the deadline heap when it finishes, and the core must release it on the way out.
//! (Alone in its binary: it counts the process's epoll instances.)

mod support;

use iocore::time;
use std::time::Duration;
use support::{core, settle, wait_until, watchdog, HANG};

/// Open epoll instances of this process.
fn epoll_fds() -> usize {
    support::fd_list().iter().filter(|f| f.contains("eventpoll")).count()
}

#[test]
fn a_core_dropped_with_tasks_under_deadlines_releases_its_kernel_queue() {
    watchdog(HANG, || {
        let before = epoll_fds();
        let core = core(2);
        assert!(epoll_fds() > before, "the core opened no epoll instance");
        let handles: Vec<_> = (0..100)
            .map(|_| core.spawn(time::timeout(Duration::from_secs(3600), std::future::pending::<()>())))
            .collect();
        wait_until("100 tasks parked", || core.metrics().parked_tasks == 100);
        drop(core);
        drop(handles);
        assert!(
            settle(Duration::from_secs(5), || epoll_fds() == before),
            "the dropped core's epoll instance is still open: {:?}",
            support::fd_list()
        );
    });
}
