//! An inbox: a lock-free, unbounded queue with many producers and one consumer that takes
//! everything at once. The scheduler's front queue is one; its consumer is the
//! sched-role.
//!
//! Producers push with one CAS onto an intrusive stack (the link lives in the task header,
//! so pushing never allocates). The sched-role takes the whole stack with one `swap` and
//! reverses it, which restores FIFO (push) order. Because the consumer only ever takes
//! everything, there is no ABA hazard: a pusher's `next` is whatever the head was, and that
//! stays a valid list no matter what happened to the head in between.

use crate::sync::{AtomicPtr, Ordering::*};
use std::ptr;

/// A node that can sit in an [`Inbox`]: it owns the link the inbox uses (one link, so a
/// node is in at most one inbox at a time).
pub(crate) trait Linked: Sized {
    fn link(&self) -> &AtomicPtr<Self>;
}

/// See the module docs.
pub(crate) struct Inbox<T: Linked> {
    head: AtomicPtr<T>,
}

impl<T: Linked> Inbox<T> {
    pub(crate) fn new() -> Self {
        Inbox { head: AtomicPtr::new(ptr::null_mut()) }
    }

    /// Pushes `node`. Returns true if the queue was empty before.
    ///
    /// # Safety
    /// `node` must be valid until taken and must not already be in any inbox.
    pub(crate) unsafe fn push(&self, node: *mut T) -> bool {
        let mut head = self.head.load(Relaxed);
        loop {
            // SAFETY: the caller guarantees `node` is valid and ours to link.
            unsafe { (*node).link().store(head, Relaxed) };
            match self.head.compare_exchange_weak(head, node, SeqCst, Relaxed) {
                Ok(_) => return head.is_null(),
                Err(actual) => head = actual,
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(SeqCst).is_null()
    }

    /// [`is_empty`](Self::is_empty) without ordering: for the consumer's quick look (a
    /// push it misses is seen by its next look or by a later `is_empty`).
    #[inline]
    pub(crate) fn is_empty_relaxed(&self) -> bool {
        self.head.load(Relaxed).is_null()
    }

    /// Takes every queued node, oldest first, into `out`. (A consumer that looks often
    /// checks [`is_empty_relaxed`](Self::is_empty_relaxed) first: a plain load instead of
    /// this read-modify-write.)
    pub(crate) fn take_all(&self, out: &mut Vec<*mut T>) {
        let mut node = self.head.swap(ptr::null_mut(), AcqRel);
        let start = out.len();
        while !node.is_null() {
            out.push(node);
            // SAFETY: nodes stay valid while queued; the Acquire swap synchronised with the
            // pushes that wrote these links.
            node = unsafe { (*node).link().load(Relaxed) };
        }
        out[start..].reverse();
    }
}

#[cfg(all(test, iocore_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    struct Node {
        link: AtomicPtr<Node>,
        value: usize,
    }
    impl Linked for Node {
        fn link(&self) -> &AtomicPtr<Node> {
            &self.link
        }
    }

    /// Two producers push two nodes each while the consumer takes: every node comes out
    /// exactly once and each producer's nodes come out in push order.
    #[test]
    fn loom_inbox_mpsc() {
        loom::model(|| {
            let q = Arc::new(Inbox::<Node>::new());
            let mut producers = Vec::new();
            for p in 0..2 {
                let q = q.clone();
                producers.push(loom::thread::spawn(move || {
                    for i in 0..2 {
                        let n = Box::into_raw(Box::new(Node {
                            link: AtomicPtr::new(ptr::null_mut()),
                            value: p * 10 + i,
                        }));
                        // SAFETY: fresh node, freed by the consumer below.
                        unsafe { q.push(n) };
                    }
                }));
            }
            let mut seen = Vec::new();
            let mut out = Vec::new();
            q.take_all(&mut out);
            for p in producers {
                p.join().unwrap();
            }
            q.take_all(&mut out);
            for n in out {
                // SAFETY: each node was pushed once and is taken once.
                seen.push(unsafe { Box::from_raw(n) }.value);
            }
            assert_eq!(seen.len(), 4);
            for p in 0..2 {
                let mine: Vec<_> = seen.iter().filter(|v| **v / 10 == p).collect();
                assert_eq!(mine, vec![&(p * 10), &(p * 10 + 1)]);
            }
        });
    }
}
