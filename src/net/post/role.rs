//! The writer role of a socket: who may write to it right now (the flusher, the owner, or
//! nobody), in one atomic word so that a post can never be stranded. See the parent
//! module's docs for the table; modelled with loom below.

use crate::sync::Ordering::SeqCst;

const IDLE: u32 = 0;
const FLUSHER: u32 = 1;
const OWNER: u32 = 2;
const ROLE: u32 = 0b11;
/// Set by a post while someone holds the role: the holder must not leave it `IDLE`.
const PENDING: u32 = 0b100;

/// The writer hand-off of the module docs: `IDLE`, `FLUSHER` or `OWNER`, plus a `PENDING`
/// flag, in one atomic. Posts and releases are read-modify-writes of this one word, so a
/// post can never slip between a holder's "queue empty?" and its release (no store-load
/// race across two locations). Kept apart from the queue so that loom can model it.
pub(crate) struct WriterRole(crate::sync::AtomicU32);

impl WriterRole {
    pub(crate) fn new() -> WriterRole {
        WriterRole(crate::sync::AtomicU32::new(IDLE))
    }

    fn update(&self, f: impl Fn(u32) -> u32) -> u32 {
        let mut cur = self.0.load(SeqCst);
        loop {
            match self.0.compare_exchange_weak(cur, f(cur), SeqCst, SeqCst) {
                Ok(prev) => return prev,
                Err(actual) => cur = actual,
            }
        }
    }

    /// A buffer was pushed: `IDLE -> FLUSHER` (true: the flusher must be woken), or mark
    /// `PENDING` for the current holder.
    pub(crate) fn posted(&self) -> bool {
        let prev = self.update(|cur| if cur & ROLE == IDLE { FLUSHER } else { cur | PENDING });
        prev & ROLE == IDLE
    }

    /// `IDLE -> OWNER`, for a direct write by the stream's owner.
    #[inline]
    pub(crate) fn try_lock_owner(&self) -> bool {
        self.0.compare_exchange(IDLE, OWNER, SeqCst, SeqCst).is_ok()
    }

    /// The holder (owner, or flusher with an empty queue) gives the role back. If a post
    /// came meanwhile the role goes to the flusher instead: true (wake it, or keep going).
    pub(crate) fn release(&self) -> bool {
        let prev = self.update(|cur| if cur & PENDING != 0 { FLUSHER } else { IDLE });
        prev & PENDING != 0
    }

    /// Someone (the flusher or an owner) holds the role.
    pub(crate) fn is_held(&self) -> bool {
        self.0.load(SeqCst) & ROLE != IDLE
    }

    pub(crate) fn is_flusher(&self) -> bool {
        self.0.load(SeqCst) & ROLE == FLUSHER
    }
}

#[cfg(all(test, iocore_loom))]
mod loom_tests {
    //! The writer hand-off: a poster, the owner and the flusher race. Never two writers at
    //! once, and a post is never stranded (queued work implies a scheduled flusher).
    use super::*;
    use loom::sync::atomic::{AtomicBool, AtomicUsize};
    use loom::sync::Arc;

    struct Model {
        role: WriterRole,
        queued: AtomicUsize,
        writing: AtomicBool,
    }

    impl Model {
        fn write(&self) {
            assert!(!self.writing.swap(true, SeqCst), "two writers at once");
            self.writing.store(false, SeqCst);
        }

        /// One flusher turn: only while holding FLUSHER; drains, then releases.
        fn flush_turn(&self) {
            if self.role.is_flusher() {
                self.write();
                self.queued.store(0, SeqCst);
                self.role.release();
            }
        }
    }

    #[test]
    fn loom_post_owner_flusher_hand_off() {
        loom::model(|| {
            let m = Arc::new(Model {
                role: WriterRole::new(),
                queued: AtomicUsize::new(0),
                writing: AtomicBool::new(false),
            });
            let poster = {
                let m = m.clone();
                loom::thread::spawn(move || {
                    m.queued.fetch_add(1, SeqCst);
                    m.role.posted();
                })
            };
            let owner = {
                let m = m.clone();
                loom::thread::spawn(move || {
                    if m.role.try_lock_owner() {
                        m.write();
                        m.role.release();
                    }
                })
            };
            m.flush_turn();
            poster.join().unwrap();
            owner.join().unwrap();
            assert!(
                m.queued.load(SeqCst) == 0 || m.role.is_flusher(),
                "a post is queued but nobody is scheduled to write it"
            );
            m.flush_turn();
            assert_eq!(m.queued.load(SeqCst), 0);
        });
    }
}
