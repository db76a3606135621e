//! [`OnceBox`]: a boxed value allocated on first use and never replaced, behind one
//! pointer-sized atomic (a `OnceLock<Box<T>>` is twice that, for its `Once` word).
//!
//! Both the read and the publishing compare-and-swap are `SeqCst`, so a `OnceBox` can take
//! part in a store-load (Dekker) handshake: a writer that changes some `SeqCst` state and
//! then finds the box empty knows that whoever fills the box later will see that state in
//! its own `SeqCst` loads (the fill precedes them). The post queue relies on this to skip
//! waking the waiters of a box that does not exist yet. (On x86-64 and AArch64 a `SeqCst`
//! load costs what an `Acquire` load does.)

use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering::SeqCst};

/// See the module docs.
pub(crate) struct OnceBox<T> {
    ptr: AtomicPtr<T>,
    /// Owns a `T` (for auto traits and drop check), like the `Box` it stands for; and, like
    /// a `OnceLock`, is `Sync` only if `T` is `Send` too (a value made by one sharing
    /// thread may be dropped by another).
    _owns: PhantomData<(Box<T>, std::sync::Mutex<T>)>,
}

impl<T> OnceBox<T> {
    pub(crate) const fn new() -> OnceBox<T> {
        OnceBox { ptr: AtomicPtr::new(ptr::null_mut()), _owns: PhantomData }
    }

    /// The value, if it was allocated.
    pub(crate) fn get(&self) -> Option<&T> {
        let p = self.ptr.load(SeqCst);
        // SAFETY: a non-null pointer came from `Box::into_raw` in `get_or_init`, was
        // published with `SeqCst` (so the value's initialisation happens-before this
        // read), and is only freed by `drop`, which `&self` rules out.
        unsafe { p.as_ref() }
    }

    /// The value, allocating it with `init` if there is none yet. If two threads race,
    /// one value wins and the other thread's is dropped unused.
    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
        if let Some(v) = self.get() {
            return v;
        }
        let new = Box::into_raw(Box::new(init()));
        match self.ptr.compare_exchange(ptr::null_mut(), new, SeqCst, SeqCst) {
            // SAFETY: `new` is now the published value; see `get`.
            Ok(_) => unsafe { &*new },
            Err(winner) => {
                // SAFETY: `new` was never published: this thread still owns it.
                drop(unsafe { Box::from_raw(new) });
                // SAFETY: `winner` is non-null (the exchange failed) and published; see `get`.
                unsafe { &*winner }
            }
        }
    }
}

impl<T> Default for OnceBox<T> {
    fn default() -> Self {
        OnceBox::new()
    }
}

impl<T> Drop for OnceBox<T> {
    fn drop(&mut self) {
        let p = *self.ptr.get_mut();
        if !p.is_null() {
            // SAFETY: published by `get_or_init` from `Box::into_raw`, owned by this box,
            // and `&mut self` means no reference from `get` is alive.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

#[cfg(all(test, not(iocore_loom)))]
mod tests {
    use super::OnceBox;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    #[test]
    fn allocates_once_and_drops_the_loser() {
        struct Counted(Arc<AtomicUsize>, usize);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let b = OnceBox::new();
        assert!(b.get().is_none());
        std::thread::scope(|s| {
            for i in 0..4 {
                let (b, drops) = (&b, drops.clone());
                s.spawn(move || {
                    let v = b.get_or_init(|| Counted(drops, i));
                    assert!(v.1 < 4);
                });
            }
        });
        let winner = b.get().expect("allocated").1;
        assert_eq!(b.get_or_init(|| unreachable!()).1, winner);
        // Every loser's value was dropped; the winner lives until the box goes.
        let losers = drops.load(SeqCst);
        drop(b);
        assert_eq!(drops.load(SeqCst), losers + 1);
    }
}
