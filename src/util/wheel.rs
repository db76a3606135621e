//! [`TimerWheel`]: the sched-role's set of parked tasks keyed by deadline — a hierarchical
//! timing wheel for far deadlines in front of a precise heap for near ones.
//!
//! A binary heap alone costs O(log n) cache misses per insert and removal: with a million
//! parked tasks that is most of the cost of waking one. Here a deadline more than
//! [`NEAR`] ticks (~2 ms) ahead goes into a wheel bucket instead (a `Vec` push; removal is
//! a `swap_remove`): O(1) whatever the count. Six levels of 64 buckets, each level 64 times
//! coarser, cover 2³⁶ ticks of 2²⁰ ns (~1.05 ms), about 2.3 years; anything farther, or a
//! bucket that would outgrow its slot encoding, goes to the heap. As time advances, a
//! bucket whose start comes within `NEAR` of now is emptied: its entries move down a level
//! (at most once per level) or, once near, into the heap ([`SlotHeap`]), which orders them
//! exactly (sub-millisecond) and by parking order on equal deadlines (each entry keeps the
//! sequence number of its first insertion).
//!
//! Each item remembers where it is through its slot word ([`HeapSlot`]): a heap index, or,
//! with the top bit set, the level, bucket and position in the bucket.

use super::heap::{HeapSlot, SlotHeap, NO_SLOT};

/// log2 of a tick in nanoseconds (2²⁰ ns ≈ 1.05 ms).
const TICK_SHIFT: u32 = 20;
/// Buckets per level (and the factor between levels).
const BITS: u32 = 6;
const SLOTS: usize = 1 << BITS;
const LEVELS: usize = 6;
/// Deadlines at most this many ticks ahead of the wheel's time go straight to the heap.
const NEAR: u64 = 2;

/// Slot word of an item in the wheel: the flag, 3 bits of level, 6 of bucket, 22 of
/// position (a heap index never has the flag).
const IN_WHEEL: u32 = 1 << 31;
const POS_BITS: u32 = 22;
const MAX_POS: usize = (1 << POS_BITS) - 1;

struct Entry<T> {
    key: u64,
    seq: u64,
    item: T,
}

/// One level: 64 buckets and a bitmap of the non-empty ones.
struct Level<T> {
    buckets: [Vec<Entry<T>>; SLOTS],
    occupied: u64,
}

/// See the module docs. Keys are nanoseconds on the iocore clock.
pub(crate) struct TimerWheel<T: HeapSlot> {
    near: SlotHeap<u64, T>,
    levels: Box<[Level<T>; LEVELS]>,
    /// Bit `l` set: level `l` has a non-empty bucket (so an empty wheel costs nothing to
    /// look at).
    levels_used: u8,
    /// The start tick of the earliest non-empty bucket (`u64::MAX`: none), or 0 when a
    /// bucket emptied since it was computed (then `advance` computes it again): a step
    /// with nothing due in the wheel costs one comparison.
    first_start: u64,
    /// The wheel's time in ticks: every bucket before it has been emptied, and every entry
    /// in the wheel is due more than `NEAR` ticks after it.
    elapsed: u64,
    /// Insertion counter: the order of equal deadlines.
    seq: u64,
}

fn tick(key: u64) -> u64 {
    key >> TICK_SHIFT
}

fn slot_word(level: usize, bucket: usize, pos: usize) -> u32 {
    IN_WHEEL | (level as u32) << (POS_BITS + BITS) | (bucket as u32) << POS_BITS | pos as u32
}

fn unpack(word: u32) -> (usize, usize, usize) {
    let level = ((word & !IN_WHEEL) >> (POS_BITS + BITS)) as usize;
    let bucket = ((word >> POS_BITS) as usize) & (SLOTS - 1);
    (level, bucket, word as usize & MAX_POS)
}

impl<T: HeapSlot> TimerWheel<T> {
    /// An empty wheel whose time starts at `now` (nanoseconds).
    pub(crate) fn new(now: u64) -> Self {
        TimerWheel {
            near: SlotHeap::new(),
            levels: Box::new(std::array::from_fn(|_| Level {
                buckets: std::array::from_fn(|_| Vec::new()),
                occupied: 0,
            })),
            levels_used: 0,
            first_start: u64::MAX,
            elapsed: tick(now),
            seq: 0,
        }
    }

    /// Inserts `item` due at `key`.
    ///
    /// # Safety
    /// `item` is in no wheel or heap, and while it is in this one nothing but this wheel
    /// touches its slot.
    pub(crate) unsafe fn insert(&mut self, key: u64, item: T) {
        self.seq += 1;
        // SAFETY: forwarded from the caller.
        unsafe { self.place(Entry { key, seq: self.seq, item }) };
    }

    /// Puts an entry where it belongs given the wheel's time: the heap when near (or too
    /// far for the wheel), else the bucket of the level where its tick first differs from
    /// the wheel's time.
    ///
    /// # Safety
    /// As for [`insert`](Self::insert).
    unsafe fn place(&mut self, e: Entry<T>) {
        let t = tick(e.key);
        if t > self.elapsed + NEAR {
            let significant = 63 - ((self.elapsed ^ t) | (SLOTS as u64 - 1)).leading_zeros();
            let level = (significant / BITS) as usize;
            if level < LEVELS {
                let bucket = ((t >> (level as u32 * BITS)) as usize) & (SLOTS - 1);
                let lv = &mut self.levels[level];
                let pos = lv.buckets[bucket].len();
                if pos <= MAX_POS {
                    // SAFETY: the caller hands the item's slot to this wheel.
                    unsafe { e.item.set_slot(slot_word(level, bucket, pos)) };
                    lv.buckets[bucket].push(e);
                    lv.occupied |= 1 << bucket;
                    self.levels_used |= 1 << level;
                    let start = self.bucket_start(level, bucket);
                    self.first_start = self.first_start.min(start);
                    return;
                }
            }
        }
        // SAFETY: as above.
        unsafe { self.near.insert(e.key, e.seq, e.item) };
    }

    /// Removes `item` if it is in the wheel.
    ///
    /// # Safety
    /// `item` is in this wheel or in none (then its slot is `NO_SLOT` and only the caller
    /// may touch it).
    pub(crate) unsafe fn remove(&mut self, item: T) {
        // SAFETY: the slot belongs to this wheel, or to the caller (see above).
        let word = unsafe { item.slot() };
        if word == NO_SLOT {
            return;
        }
        if word & IN_WHEEL == 0 {
            // SAFETY: a heap index: the item is in the near heap.
            unsafe { self.near.remove(item) };
            return;
        }
        let (level, bucket, pos) = unpack(word);
        let lv = &mut self.levels[level];
        let b = &mut lv.buckets[bucket];
        let removed = b.swap_remove(pos);
        // SAFETY: items in this wheel gave it their slots; a removed item's slot is reset.
        unsafe { removed.item.set_slot(NO_SLOT) };
        if let Some(moved) = b.get(pos) {
            // SAFETY: as above.
            unsafe { moved.item.set_slot(slot_word(level, bucket, pos)) };
        }
        if b.is_empty() {
            self.mark_empty(level, bucket);
        }
    }

    /// Bucket `bucket` of level `level` holds nothing now.
    fn mark_empty(&mut self, level: usize, bucket: usize) {
        let lv = &mut self.levels[level];
        lv.occupied &= !(1 << bucket);
        if lv.occupied == 0 {
            self.levels_used &= !(1 << level);
        }
        self.first_start = 0;
    }

    /// The start tick of bucket `bucket` of level `level` (every non-empty bucket lies in
    /// the current block of its level: `place` puts an entry at the level where its tick
    /// first differs from the wheel's time, and `advance` empties a bucket before the
    /// wheel's time passes it).
    fn bucket_start(&self, level: usize, bucket: usize) -> u64 {
        let shift = level as u32 * BITS;
        let block = self.elapsed & !((1u64 << (shift + BITS)) - 1);
        block + ((bucket as u64) << shift)
    }

    /// The earliest non-empty bucket: its level, index and start tick.
    fn next_bucket(&self) -> Option<(usize, usize, u64)> {
        let mut best: Option<(usize, usize, u64)> = None;
        let mut used = self.levels_used;
        while used != 0 {
            let level = used.trailing_zeros() as usize;
            used &= used - 1;
            let bucket = self.levels[level].occupied.trailing_zeros() as usize;
            let start = self.bucket_start(level, bucket);
            if best.is_none_or(|(_, _, s)| start < s) {
                best = Some((level, bucket, start));
            }
        }
        best
    }

    /// Moves the wheel's time to `now` (nanoseconds): every entry due within `NEAR` ticks
    /// of it goes to the heap, the others down to the level that fits them.
    fn advance(&mut self, now: u64) {
        let target = tick(now).max(self.elapsed);
        if target + NEAR < self.first_start {
            // Nothing in the wheel comes near yet (`first_start` is exact unless 0).
            self.elapsed = target;
            return;
        }
        while let Some((level, bucket, start)) = self.next_bucket() {
            if start > target + NEAR {
                break;
            }
            // (This may move the wheel's time up to `NEAR` ticks past `now`: the bucket's
            // entries are then re-placed relative to its start, so each goes down a level.)
            self.elapsed = self.elapsed.max(start);
            self.mark_empty(level, bucket);
            let entries = std::mem::take(&mut self.levels[level].buckets[bucket]);
            for e in entries {
                // SAFETY: the entry left this wheel's bucket and goes back into this wheel;
                // nothing else touches its slot.
                unsafe { self.place(e) };
            }
        }
        self.elapsed = self.elapsed.max(target);
        self.first_start = self.next_bucket().map_or(u64::MAX, |(_, _, start)| start);
    }

    /// A lower bound of the earliest deadline (nanoseconds): exact for the heap, the start
    /// of the earliest bucket for the wheel.
    pub(crate) fn peek_key(&mut self, now: u64) -> Option<u64> {
        self.advance(now);
        // `advance` left `first_start` exact.
        let wheel = (self.first_start != u64::MAX).then_some(self.first_start << TICK_SHIFT);
        match (self.near.peek_key(), wheel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether nothing is parked in the wheel.
    pub(crate) fn is_empty(&self) -> bool {
        self.levels_used == 0 && self.near.is_empty()
    }

    /// Pops an item due at or before `now`, earliest first (then in insertion order).
    pub(crate) fn pop_up_to(&mut self, now: u64) -> Option<T> {
        self.advance(now);
        self.near.pop_up_to(now)
    }
}

#[cfg(all(test, not(iocore_loom)))]
mod tests {
    use super::*;
    use crate::util::heap::tests::Item;
    use std::cell::Cell;

    const MS: u64 = 1_000_000;

    /// A small deterministic PRNG.
    fn next(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Against a model (a sorted list): random inserts over 1 µs .. 30 days, random
    /// removals, and time advancing in random steps; every item leaves exactly at the first
    /// `pop_up_to(now)` with `now >= deadline`, in (deadline, insertion) order, and the
    /// peeked key never exceeds the earliest deadline.
    #[test]
    fn matches_a_sorted_model_under_random_inserts_removals_and_time_steps() {
        for round in 0..20u64 {
            let mut seed = 0x9E37_79B9_7F4A_7C15 ^ round;
            let n = 3000;
            let slots: Vec<Cell<u32>> = (0..n).map(|_| Cell::new(NO_SLOT)).collect();
            let start = 5_000 * MS + round * 777;
            let mut now = start;
            let mut wheel = TimerWheel::new(now);
            // (deadline, insertion order, index) of the items in the wheel.
            let mut model: Vec<(u64, u64, usize)> = Vec::new();
            let mut order = 0;
            let mut next_item = 0;
            for _step in 0..4000 {
                match next(&mut seed) % 10 {
                    0..=4 if next_item < n => {
                        let span = match next(&mut seed) % 4 {
                            0 => 3 * MS,
                            1 => 200 * MS,
                            2 => 100_000 * MS,
                            _ => 30 * 86_400_000 * MS,
                        };
                        let key = now + 1 + next(&mut seed) % span;
                        order += 1;
                        // SAFETY: each item is inserted once, into this wheel only.
                        unsafe { wheel.insert(key, Item(&slots[next_item], next_item)) };
                        model.push((key, order, next_item));
                        next_item += 1;
                    }
                    5 if !model.is_empty() => {
                        let k = (next(&mut seed) % model.len() as u64) as usize;
                        let (_, _, i) = model.swap_remove(k);
                        // SAFETY: the item is in this wheel.
                        unsafe { wheel.remove(Item(&slots[i], i)) };
                        assert_eq!(slots[i].get(), NO_SLOT);
                    }
                    _ => {
                        now += match next(&mut seed) % 3 {
                            0 => next(&mut seed) % MS,
                            1 => next(&mut seed) % (300 * MS),
                            _ => next(&mut seed) % (3_000_000 * MS),
                        };
                        model.sort();
                        if let Some(&(first, _, _)) = model.first() {
                            let peek = wheel.peek_key(now).expect("items are in the wheel");
                            assert!(peek <= first, "peeked {peek} after the earliest deadline {first}");
                        }
                        let due: Vec<usize> = model.iter().take_while(|m| m.0 <= now).map(|m| m.2).collect();
                        model.drain(..due.len());
                        for want in due {
                            let got = wheel.pop_up_to(now).map(|Item(_, i)| i);
                            assert_eq!(got, Some(want), "round {round}: wrong item at now={now}");
                            assert_eq!(slots[want].get(), NO_SLOT);
                        }
                        assert!(wheel.pop_up_to(now).is_none(), "an item left before its deadline");
                    }
                }
                assert_eq!(wheel.is_empty(), model.is_empty(), "round {round}: emptiness");
            }
            // Everything left leaves once its time comes.
            model.sort();
            for (key, _, want) in model {
                let got = wheel.pop_up_to(key).map(|Item(_, i)| i);
                assert_eq!(got, Some(want));
            }
            assert!(wheel.pop_up_to(u64::MAX - 1).is_none());
            assert!(wheel.is_empty());
        }
    }

    #[test]
    fn far_deadlines_live_in_buckets_and_come_back_precisely() {
        let slots: Vec<Cell<u32>> = (0..3).map(|_| Cell::new(NO_SLOT)).collect();
        let now = 1_000 * MS;
        let mut wheel = TimerWheel::new(now);
        let hour = 3_600_000 * MS;
        // SAFETY: each item is inserted once, into this wheel only.
        unsafe {
            wheel.insert(now + hour + 17, Item(&slots[0], 0));
            wheel.insert(now + 500_000, Item(&slots[1], 1)); // 0.5 ms: the heap
            wheel.insert(now + hour + 17, Item(&slots[2], 2));
        }
        assert_ne!(slots[0].get() & IN_WHEEL, 0, "a far deadline is in a bucket");
        assert_eq!(slots[1].get() & IN_WHEEL, 0, "a near deadline is in the heap");
        assert_eq!(wheel.pop_up_to(now + 500_000).map(|i| i.1), Some(1));
        assert!(wheel.pop_up_to(now + hour + 16).is_none(), "one nanosecond early");
        assert_eq!(wheel.pop_up_to(now + hour + 17).map(|i| i.1), Some(0));
        assert_eq!(wheel.pop_up_to(now + hour + 17).map(|i| i.1), Some(2));
    }
}
