//! A binary min-heap whose items remember their slot: the scheduler's waiting set of parked
//! tasks, keyed by deadline.
//!
//! Each item records its slot (a task keeps it in its header), so an item leaving early (a
//! task woken before its deadline) is removed in O(log n) instead of lingering as a stale
//! entry. Entries are ordered by `(key, seq)`, `seq` an insertion counter kept by the
//! caller: items with equal keys leave in insertion order.

/// Something that can live in a [`SlotHeap`] and remembers where.
pub(crate) trait HeapSlot: Copy {
    /// Records the item's slot.
    ///
    /// # Safety
    /// The caller has exclusive access to the item's slot (it is the heap holding the item).
    unsafe fn set_slot(self, slot: u32);
    /// The slot last recorded.
    ///
    /// # Safety
    /// As for [`set_slot`](Self::set_slot).
    unsafe fn slot(self) -> u32;
}

/// Marks "not in the heap".
pub(crate) const NO_SLOT: u32 = u32::MAX;

struct Entry<K, T> {
    key: (K, u64),
    item: T,
}

/// See the module docs.
pub(crate) struct SlotHeap<K: Ord + Copy, T: HeapSlot> {
    entries: Vec<Entry<K, T>>,
}

impl<K: Ord + Copy, T: HeapSlot> SlotHeap<K, T> {
    pub(crate) fn new() -> Self {
        SlotHeap { entries: Vec::new() }
    }

    /// Whether the heap holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The smallest key.
    pub(crate) fn peek_key(&self) -> Option<K> {
        self.entries.first().map(|e| e.key.0)
    }

    /// Inserts `item` under `key`; `seq` orders it among equal keys (lower first).
    ///
    /// # Safety
    /// `item` is in no heap, and while it is in this one nothing but this heap touches
    /// its slot.
    pub(crate) unsafe fn insert(&mut self, key: K, seq: u64, item: T) {
        let i = self.entries.len();
        self.entries.push(Entry { key: (key, seq), item });
        // SAFETY: the caller hands the item's slot to this heap.
        unsafe { item.set_slot(i as u32) };
        self.sift_up(i);
    }

    /// Pops the smallest entry if its key is `<= max`.
    pub(crate) fn pop_up_to(&mut self, max: K) -> Option<T> {
        if self.peek_key()? > max {
            return None;
        }
        Some(self.remove_at(0))
    }

    /// Removes `item` if it is in the heap.
    ///
    /// # Safety
    /// `item` is in this heap or in none (then its slot is `NO_SLOT` and only the caller
    /// may touch it).
    pub(crate) unsafe fn remove(&mut self, item: T) {
        // SAFETY: the slot belongs to this heap, or to the caller (see above).
        let slot = unsafe { item.slot() };
        if slot != NO_SLOT {
            self.remove_at(slot as usize);
        }
    }

    fn remove_at(&mut self, i: usize) -> T {
        let last = self.entries.len() - 1;
        self.entries.swap(i, last);
        let removed = self.entries.pop().expect("heap is not empty");
        // SAFETY: items in this heap gave it their slots (`insert`); a removed item's slot
        // is reset before it leaves.
        unsafe { removed.item.set_slot(NO_SLOT) };
        if i < self.entries.len() {
            // SAFETY: as above.
            unsafe { self.entries[i].item.set_slot(i as u32) };
            self.sift_down(i);
            self.sift_up(i);
        }
        removed.item
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.entries.swap(a, b);
        // SAFETY: items in this heap gave it their slots (`insert`).
        unsafe {
            self.entries[a].item.set_slot(a as u32);
            self.entries[b].item.set_slot(b as u32);
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.entries[i].key >= self.entries[parent].key {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.entries.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < n && self.entries[l].key < self.entries[min].key {
                min = l;
            }
            if r < n && self.entries[r].key < self.entries[min].key {
                min = r;
            }
            if min == i {
                break;
            }
            self.swap(i, min);
            i = min;
        }
    }
}

#[cfg(all(test, not(iocore_loom)))]
pub(crate) mod tests {
    use super::*;
    use std::cell::Cell;

    /// A test item: its slot word in a `Cell`, and an index to tell items apart (shared with
    /// the wheel's tests).
    #[derive(Clone, Copy)]
    pub(crate) struct Item<'a>(pub(crate) &'a Cell<u32>, pub(crate) usize);
    impl HeapSlot for Item<'_> {
        unsafe fn set_slot(self, slot: u32) {
            self.0.set(slot)
        }
        unsafe fn slot(self) -> u32 {
            self.0.get()
        }
    }

    #[test]
    fn pops_in_deadline_then_insertion_order_and_removes() {
        let slots: Vec<Cell<u32>> = (0..200).map(|_| Cell::new(NO_SLOT)).collect();
        let mut heap = SlotHeap::new();
        for (i, s) in slots.iter().enumerate() {
            // SAFETY: each item is inserted once, into this heap only.
            unsafe { heap.insert(((i * 7919) % 50) as u64, i as u64, Item(s, i)) };
        }
        for i in (0..200).step_by(3) {
            // SAFETY: the item is in this heap.
            unsafe { heap.remove(Item(&slots[i], i)) };
            assert_eq!(slots[i].get(), NO_SLOT);
        }
        let mut last = (0, 0);
        let mut count = 0;
        while let Some(Item(_, i)) = heap.pop_up_to(u64::MAX) {
            assert_ne!(i % 3, 0, "removed item came back");
            let key = (((i * 7919) % 50) as u64, i);
            assert!(key > last, "out of order: {key:?} after {last:?}");
            last = key;
            count += 1;
        }
        assert_eq!(count, 200 - 67);
    }
}
