//! Waiter lists: every task waiting on one direction of one socket, woken together by the
//! edge that lets them proceed.
//!
//! A socket direction can have many waiters at once: the owner's `recv`/`send`, the
//! `post_send` flusher, tasks in `readable()`/`writable()`, other holders of a shared
//! `&TcpStream`. One waker slot per direction is not enough (a later registration evicts
//! an earlier one, and that task sleeps forever), so each direction keeps an intrusive,
//! doubly-linked list of [`Waiter`]s:
//!
//! - a waiter's node lives inside the waiting future (pinned), so waiting never allocates;
//!   dropping the future unlinks it, so a cancelled wait leaves nothing behind;
//! - the list is guarded by a mutex that is only taken by a task that is about to wait and
//!   by the dispatch of an edge; [`WaiterList::wake_all`] skips it when `armed` says the
//!   list is empty, so a socket nobody waits on costs one atomic load per edge;
//! - **no lost wakeup**: a waiter links itself, sets `armed`, issues a `SeqCst` fence and
//!   only then re-checks readiness, under the lock; the dispatcher publishes readiness,
//!   issues a `SeqCst` fence and only then reads `armed`. Of the two fences, whichever
//!   comes second sees the other side's write (a Dekker handshake; loom models it with the
//!   fences, which it checks exactly, where `SeqCst` accesses alone it would not).
//!
//! Wakers are taken out of the list under the lock and woken after it is released, in
//! batches of [`WAKE_BATCH`], so a waker that re-enters the list (or panics) cannot
//! deadlock or corrupt it.
//!
//! Beside the nodes the list keeps one *slot*: the waker of the direction's poll-based
//! waiter (`poll_read`, `poll_write`, `poll_accept`: at most one at a time, a later one
//! replaces it), under the same lock and the same handshake, and woken with the nodes.
//! (It was an `AtomicWaker` of its own, 24 bytes beside the list's 32; inside the list it
//! costs 16, and every socket has two.)

use crate::sync::{fence, lock_modelled as lock, AtomicPtr, AtomicUsize, Mutex, Ordering::*};
use std::cell::UnsafeCell;
use std::marker::PhantomPinned;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::Waker;

/// Wakers taken out of the list per lock acquisition.
const WAKE_BATCH: usize = 32;

/// The waiters of one socket direction. See the module docs.
///
/// Its [`Armed`] flag lives outside it and is passed to each method that reads or writes
/// it (always the same one for a list). A socket keeps the flags of its two lists in spare
/// bits of its readiness word (beside the list, each would take 8 bytes with padding).
pub(crate) struct WaiterList {
    links: Mutex<Links>,
}

/// A waiter list's `armed` flag: one bit of a word that its owner keeps. False only when
/// the list is certainly empty (cleared by `wake_all` under the lock when it empties the
/// list; set by every waiter that links itself, under the lock). Its owner's other
/// read-modify-writes of the word keep the bit as it is.
#[derive(Clone, Copy)]
pub(crate) struct Armed<'a> {
    word: &'a AtomicUsize,
    bit: usize,
}

impl<'a> Armed<'a> {
    pub(crate) fn new(word: &'a AtomicUsize, bit: usize) -> Armed<'a> {
        Armed { word, bit }
    }

    fn get(self) -> bool {
        self.word.load(Relaxed) & self.bit != 0
    }

    fn set(self) {
        self.word.fetch_or(self.bit, Relaxed);
    }

    fn clear(self) {
        self.word.fetch_and(!self.bit, Relaxed);
    }
}

/// The head of the intrusive list (the tail is the head's `prev`: a socket has two lists,
/// and a tail pointer of each would be 16 bytes per connection). Every node pointer in here
/// points into a pinned [`Waiter`] that unlinks itself (under this lock) before it is
/// dropped.
struct Links {
    head: *mut Node,
    /// The poll-based waiter's waker (see the module docs).
    slot: Option<Waker>,
}

// SAFETY: the nodes are only touched under the list's lock, and the wakers in them are Send.
unsafe impl Send for Links {}

struct Node {
    /// The waker to wake on the next edge; taken by `wake_all`.
    waker: Option<Waker>,
    /// The previous node; the head's is the last node (itself if it is the only one).
    prev: *mut Node,
    /// The next node, [`tail_mark`] for the last one, null while the node is not in the
    /// list: it doubles as the "linked" flag (a waiter is an idle connection's memory, and
    /// a flag of its own would take 8 bytes with padding). Written under the list's lock;
    /// cleared (`Release`) as the last write of an unlink, so a dropping waiter that reads
    /// null (`Acquire`) knows the list is done with its node (or never had it) and need
    /// not take the lock.
    next: AtomicPtr<Node>,
}

/// The `next` of the last node: not null (the node is linked), never a node's address.
fn tail_mark() -> *mut Node {
    NonNull::dangling().as_ptr()
}

/// One task's place in a [`WaiterList`]; keep it pinned inside the waiting future.
pub(crate) struct Waiter<'a> {
    list: &'a WaiterList,
    node: UnsafeCell<Node>,
    _pinned: PhantomPinned,
}

// SAFETY: the node is only touched by the owner of the `Waiter` (which holds it pinned)
// while the list's lock is held, or by `wake_all` under the same lock.
unsafe impl Send for Waiter<'_> {}
// SAFETY: a `&Waiter` gives access to nothing (every method takes `Pin<&mut Self>`).
unsafe impl Sync for Waiter<'_> {}

impl WaiterList {
    pub(crate) fn new() -> WaiterList {
        WaiterList { links: Mutex::new(Links { head: ptr::null_mut(), slot: None }) }
    }

    /// Wakes every waiter linked now. The caller must have published the readiness that
    /// lets them proceed before calling. `armed`: the list's flag (see [`WaiterList`]).
    pub(crate) fn wake_all(&self, armed: Armed<'_>) {
        fence(SeqCst);
        if !armed.get() {
            return;
        }
        loop {
            // Uninitialised: most edges wake one waiter, and initialising and dropping 33
            // `Option<Waker>`s cost more than waking it.
            let mut batch: [MaybeUninit<Waker>; WAKE_BATCH + 1] =
                [const { MaybeUninit::uninit() }; WAKE_BATCH + 1];
            let mut n = 0;
            let more = self.unlink_some(armed, WAKE_BATCH, |waker| {
                batch[n].write(waker);
                n += 1;
            });
            for waker in &mut batch[..n] {
                // SAFETY: the first `n` entries were written above, and each is read once.
                let waker = unsafe { waker.assume_init_read() };
                crate::contain::contain("waking a socket waiter", || waker.wake());
            }
            if !more {
                return;
            }
        }
    }

    /// [`wake_all`](Self::wake_all) without the waking: the wakers go to `out`, for a
    /// caller that must let go of a lock of its own before it wakes them.
    pub(crate) fn take_all(&self, armed: Armed<'_>, out: &mut Vec<Waker>) {
        fence(SeqCst);
        if armed.get() {
            self.unlink_some(armed, usize::MAX, |waker| out.push(waker));
        }
    }

    /// Under the lock: gives the slot's waker and those of up to `limit` linked waiters to
    /// `take`, unlinking them. True if more are linked.
    fn unlink_some(&self, armed: Armed<'_>, limit: usize, mut take: impl FnMut(Waker)) -> bool {
        let mut links = lock(&self.links);
        if let Some(waker) = links.slot.take() {
            take(waker);
        }
        let mut n = 0;
        while n < limit && !links.head.is_null() {
            let node = links.head;
            // SAFETY: `node` is linked, so its `Waiter` is pinned and alive (it unlinks
            // itself under this lock before it goes away). The waker first: the unlink is
            // the last touch of the node.
            unsafe {
                if let Some(waker) = (*node).waker.take() {
                    take(waker);
                    n += 1;
                }
                links.unlink(node);
            }
        }
        let more = !links.head.is_null();
        if !more {
            // Under the lock: a waiter sets it again (under the lock) when it links.
            armed.clear();
        }
        more
    }

    /// Puts `waker` in the slot (replacing the one there, unless it would wake the same
    /// task). The caller then re-checks readiness: either it sees the edge, or the edge's
    /// [`wake_all`](Self::wake_all) sees the slot (the handshake of the module docs).
    pub(crate) fn register_slot(&self, armed: Armed<'_>, waker: &Waker) {
        let replaced = {
            let mut links = lock(&self.links);
            let replaced = match &links.slot {
                Some(w) if w.will_wake(waker) => None,
                _ => links.slot.replace(waker.clone()),
            };
            armed.set();
            replaced
        };
        fence(SeqCst);
        // Dropped after the lock: a waker's drop may free a task whose future holds a
        // waiter of this very list.
        drop(replaced);
    }

    /// Whether any waiter is linked (for the unit tests).
    #[cfg(all(test, not(iocore_loom)))]
    fn is_empty(&self) -> bool {
        let links = lock(&self.links);
        links.head.is_null() && links.slot.is_none()
    }
}

impl Links {
    /// # Safety
    /// `node` is a live node that is not in any list; the caller holds the list's lock.
    unsafe fn push_back(&mut self, node: *mut Node) {
        // SAFETY: forwarded from the caller; the head and its `prev` (the last node), if
        // any, are live linked nodes.
        unsafe {
            (*node).next.store(tail_mark(), Relaxed);
            if self.head.is_null() {
                (*node).prev = node;
                self.head = node;
            } else {
                let last = (*self.head).prev;
                (*last).next.store(node, Relaxed);
                (*node).prev = last;
                (*self.head).prev = node;
            }
        }
    }

    /// # Safety
    /// `node` is a live node in this list; the caller holds the list's lock.
    unsafe fn unlink(&mut self, node: *mut Node) {
        // SAFETY: forwarded from the caller; its neighbours are live linked nodes.
        unsafe {
            let (prev, link) = ((*node).prev, (*node).next.load(Relaxed));
            let next = if link == tail_mark() { ptr::null_mut() } else { link };
            if node == self.head {
                // Its `prev` is the last node; the next one (if any) becomes the head.
                self.head = next;
                if !next.is_null() {
                    (*next).prev = prev;
                }
            } else {
                // `link`: the predecessor becomes the last node if this one was.
                (*prev).next.store(link, Relaxed);
                if next.is_null() {
                    (*self.head).prev = prev;
                } else {
                    (*next).prev = prev;
                }
            }
            (*node).prev = ptr::null_mut();
            // The last write to the node (see `Node::next`).
            (*node).next.store(ptr::null_mut(), Release);
        }
    }
}

impl<'a> Waiter<'a> {
    /// A waiter for `list`, not yet linked.
    pub(crate) fn new(list: &'a WaiterList) -> Waiter<'a> {
        Waiter {
            list,
            node: UnsafeCell::new(Node {
                waker: None,
                prev: ptr::null_mut(),
                next: AtomicPtr::new(ptr::null_mut()),
            }),
            _pinned: PhantomPinned,
        }
    }

    /// Links this waiter with `waker` (or refreshes its waker), then evaluates `ready`
    /// under the list's lock. If `ready` holds the waiter is unlinked again and true is
    /// returned; otherwise the next [`WaiterList::wake_all`] wakes `waker`. `armed`: the
    /// list's flag.
    pub(crate) fn wait(
        self: Pin<&mut Self>,
        armed: Armed<'_>,
        waker: &Waker,
        ready: impl FnOnce() -> bool,
    ) -> bool {
        // SAFETY: nothing is moved out of the pinned waiter.
        let this = unsafe { self.get_unchecked_mut() };
        let mut links = lock(&this.list.links);
        let node = this.node.get();
        // SAFETY: we hold the lock, and the node lives (pinned) as long as this waiter,
        // which unlinks it before it is dropped.
        unsafe {
            match &mut (*node).waker {
                Some(w) if w.will_wake(waker) => {}
                slot => *slot = Some(waker.clone()),
            }
            if (*node).next.load(Relaxed).is_null() {
                links.push_back(node);
            }
        }
        armed.set();
        fence(SeqCst);
        if !ready() {
            return false;
        }
        // SAFETY: as above; the node is linked (we just linked it, under the lock).
        unsafe { links.unlink(node) };
        true
    }
}

impl Drop for Waiter<'_> {
    #[inline]
    fn drop(&mut self) {
        let node = self.node.get();
        // Never linked, or unlinked already (by `wake_all`, or by `wait` itself): the
        // unlink's last write nulled `next`, so the list no longer touches the node (a
        // linked node's `next` is never null). The common case (an edge woke the waiter,
        // or it never waited) skips the lock.
        // SAFETY: the node lives as long as `self`; an atomic read through the pointer
        // does not conflict with `wake_all` writing the node's other fields, nor with
        // its atomic stores to `next` (unlinking the node's successor).
        if unsafe { (*node).next.load(Acquire) }.is_null() {
            return;
        }
        let mut links = lock(&self.list.links);
        // SAFETY: under the lock; if still linked, unlinking it here is what keeps the list
        // from pointing into freed memory.
        unsafe {
            if !(*node).next.load(Relaxed).is_null() {
                links.unlink(node);
            }
        }
    }
}

#[cfg(all(test, not(iocore_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn every_waiter_is_woken_and_dropped_waiters_unlink() {
        let (list, word) = (WaiterList::new(), AtomicUsize::new(0));
        let armed = Armed::new(&word, 1);
        let wakers: Vec<_> = (0..(WAKE_BATCH * 2 + 3)).map(|_| counter()).collect();
        let mut waiters: Vec<_> = wakers.iter().map(|_| Box::pin(Waiter::new(&list))).collect();
        for (w, (_, waker)) in waiters.iter_mut().zip(&wakers) {
            assert!(!w.as_mut().wait(armed, waker, || false));
        }
        // Re-registering with the same waker does not link twice.
        assert!(!waiters[0].as_mut().wait(armed, &wakers[0].1, || false));
        // A dropped waiter is unlinked and never woken.
        let dropped = waiters.remove(1);
        drop(dropped);
        list.wake_all(armed);
        assert!(list.is_empty());
        for (i, (c, _)) in wakers.iter().enumerate() {
            assert_eq!(c.0.load(Ordering::SeqCst), usize::from(i != 1), "waiter {i}");
        }
        // Ready at registration: not left in the list.
        assert!(waiters[0].as_mut().wait(armed, &wakers[0].1, || true));
        assert!(list.is_empty());
    }

    #[test]
    fn waiters_are_woken_in_order_after_unlinks_at_both_ends() {
        struct Order(usize, Arc<std::sync::Mutex<Vec<usize>>>);
        impl Wake for Order {
            fn wake(self: Arc<Self>) {
                self.1.lock().unwrap().push(self.0);
            }
        }
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let wakers: Vec<Waker> = (0..6).map(|i| Waker::from(Arc::new(Order(i, order.clone())))).collect();
        let (list, word) = (WaiterList::new(), AtomicUsize::new(0));
        let armed = Armed::new(&word, 1);
        let mut waiters: Vec<_> = wakers.iter().map(|_| Some(Box::pin(Waiter::new(&list)))).collect();
        for (w, waker) in waiters.iter_mut().zip(&wakers) {
            assert!(!w.as_mut().unwrap().as_mut().wait(armed, waker, || false));
        }
        // The first, the last, then the new last and a middle one leave.
        for i in [0, 5, 4, 2] {
            waiters[i] = None;
        }
        // One more after the unlinks goes to the end.
        assert!(!waiters[0].insert(Box::pin(Waiter::new(&list))).as_mut().wait(armed, &wakers[0], || false));
        list.wake_all(armed);
        assert!(list.is_empty());
        assert_eq!(*order.lock().unwrap(), [1, 3, 0]);
    }

    #[test]
    fn the_slot_holds_one_waker_and_is_woken_with_the_list() {
        let (list, word) = (WaiterList::new(), AtomicUsize::new(0));
        let armed = Armed::new(&word, 1);
        let (first, first_waker) = counter();
        let (second, second_waker) = counter();
        let (node, node_waker) = counter();
        let mut waiter = Box::pin(Waiter::new(&list));
        assert!(!waiter.as_mut().wait(armed, &node_waker, || false));
        list.register_slot(armed, &first_waker);
        // A later poll-based waiter replaces the earlier one (and the same one twice
        // stays once).
        list.register_slot(armed, &second_waker);
        list.register_slot(armed, &second_waker);
        list.wake_all(armed);
        assert!(list.is_empty());
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert_eq!(node.0.load(Ordering::SeqCst), 1);
        // Taken by the wake: the next edge wakes nobody until someone registers again.
        list.wake_all(armed);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }
}

#[cfg(all(test, iocore_loom))]
mod loom_tests {
    //! A waiter registers (and later drops) while a dispatcher publishes readiness and
    //! wakes the list: the waiter either sees the readiness or is woken. Never neither.
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;
    use std::task::{RawWaker, RawWakerVTable};

    /// A list and the word its `armed` flag is a bit of.
    struct List(WaiterList, AtomicUsize);

    impl List {
        fn new() -> List {
            List(WaiterList::new(), AtomicUsize::new(0))
        }

        fn armed(&self) -> Armed<'_> {
            Armed::new(&self.1, 1)
        }

        fn wake_all(&self) {
            self.0.wake_all(self.armed());
        }

        fn register_slot(&self, waker: &Waker) {
            self.0.register_slot(self.armed(), waker);
        }
    }

    fn flag_waker(flag: &Arc<AtomicUsize>) -> Waker {
        static VTABLE: RawWakerVTable = RawWakerVTable::new(
            |p| {
                // SAFETY: `p` came from `Arc::into_raw` below; cloning takes a new count.
                unsafe { Arc::increment_strong_count(p as *const AtomicUsize) };
                RawWaker::new(p, &VTABLE)
            },
            |p| {
                // SAFETY: as above; `wake` consumes the count.
                let a = unsafe { Arc::from_raw(p as *const AtomicUsize) };
                a.fetch_add(1, SeqCst);
            },
            |p| {
                // SAFETY: as above; borrowed.
                unsafe { &*(p as *const AtomicUsize) }.fetch_add(1, SeqCst);
            },
            |p| {
                // SAFETY: as above; drops the count.
                drop(unsafe { Arc::from_raw(p as *const AtomicUsize) });
            },
        );
        let p = Arc::into_raw(flag.clone()) as *const ();
        // SAFETY: the vtable implements the RawWaker contract for an `Arc<AtomicUsize>`.
        unsafe { Waker::from_raw(RawWaker::new(p, &VTABLE)) }
    }

    /// A new list, its readiness flag, a wake counter for the waiter under test, and a
    /// thread already running that publishes readiness and wakes the list, as
    /// `ScheduledIo::dispatch` does.
    #[allow(clippy::type_complexity)]
    fn list_and_dispatcher() -> (Arc<List>, Arc<AtomicUsize>, Arc<AtomicUsize>, loom::thread::JoinHandle<()>)
    {
        let list = Arc::new(List::new());
        let ready = Arc::new(AtomicUsize::new(0));
        let dispatcher = {
            let (list, ready) = (list.clone(), ready.clone());
            loom::thread::spawn(move || {
                ready.fetch_add(1, SeqCst);
                list.wake_all();
            })
        };
        (list, ready, Arc::new(AtomicUsize::new(0)), dispatcher)
    }

    #[test]
    fn loom_register_vs_dispatch() {
        loom::model(|| {
            let (list, ready, woken, dispatcher) = list_and_dispatcher();
            let waker = flag_waker(&woken);
            let mut waiter = Box::pin(Waiter::new(&list.0));
            let saw_ready = waiter.as_mut().wait(list.armed(), &waker, || ready.load(SeqCst) != 0);
            dispatcher.join().unwrap();
            assert!(saw_ready || woken.load(SeqCst) == 1, "the edge was lost");
            drop(waiter);
            // Whatever happened, the list holds no dangling node.
            list.wake_all();
        });
    }

    #[test]
    fn loom_drop_vs_dispatch() {
        loom::model(|| {
            let list = Arc::new(List::new());
            let woken = Arc::new(AtomicUsize::new(0));
            let waker = flag_waker(&woken);
            let mut waiter = Box::pin(Waiter::new(&list.0));
            assert!(!waiter.as_mut().wait(list.armed(), &waker, || false));
            let dispatcher = {
                let list = list.clone();
                loom::thread::spawn(move || list.wake_all())
            };
            drop(waiter);
            dispatcher.join().unwrap();
            assert!(woken.load(SeqCst) <= 1);
        });
    }

    #[test]
    fn loom_slot_register_vs_dispatch() {
        // The poll-based slot: registered, then readiness re-checked (as `ready_or_wait`
        // does), while a dispatcher publishes readiness and wakes the list.
        loom::model(|| {
            let (list, ready, woken, dispatcher) = list_and_dispatcher();
            list.register_slot(&flag_waker(&woken));
            let saw_ready = ready.load(SeqCst) != 0;
            dispatcher.join().unwrap();
            assert!(saw_ready || woken.load(SeqCst) == 1, "the edge was lost");
        });
    }
}
