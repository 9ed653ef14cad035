//! Per-thread caches of small blocks: most allocations and frees of small blocks take
//! no lock, no atomic read-modify-write, and touch no line another thread writes.
//!
//! A registered process (one with a registry slot) has up to [`PER_PROCESS`] records in
//! the pool, each held by one of its threads from the thread's first small allocation or
//! free until it exits (`thread_record`; threads beyond that many use the heap, and look
//! for a record given back each time they take the lock). A record keeps a list per
//! cached block size of blocks its thread freed: each granule from 32 to [`LINEAR_MAX`]
//! (208) bytes, then four sizes per doubling up to [`MAX_BLOCK`] (2 KiB); a handle that
//! caches rounds a request between two of those up to the larger (`cache_rounded`, at
//! most a quarter more; requests aligned up to a cache line too), so that its block can
//! be cached when freed. A block
//! in a list stays used for the heap (its size word keeps the used bit, so no neighbour
//! merges with it) and carries a third kind of check word,
//! [`cached_check`](super::layout::cached_check), which `free` reports as a double free
//! and the heap's checks accept as used. An allocation of a cached size pops its list;
//! a free pushes, while the list holds fewer than [`PER_LIST`] blocks and the record less
//! than a 256th of the heap (a process's records, less than a 64th). Everything else, and every request when the list is empty,
//! goes to the heap under the pool lock; a request the heap cannot serve first gives this
//! thread's record back, and every record of its process no thread holds, and tries
//! again. Under the lock anyway, a small allocation fills
//! its empty list with up to 32 blocks, 2 KiB ([`refill`]) and a free that found its list full
//! gives half of it back ([`trim`]): a process that only allocates (a stream's producer)
//! or only frees (its consumer) takes the lock once per batch, not once per block.
//!
//! Only the thread holding a record changes it: a flag in the record, set with a
//! compare-and-swap when a thread claims it and cleared when the thread exits (or its
//! region handle closes), says it is held. The lock holder may meanwhile
//! read a cached block's header, and set or clear its flag saying whether the block before
//! it is free; the owner changes only the check word and, with a read-modify-write, the
//! object flag, so neither loses the other's store.
//!
//! # A record
//!
//! | word | meaning |
//! |---|---|
//! | 0 | held by a thread of the owner (1) or not (0) |
//! | 1 | the block (payload offset) being pushed or popped now, 0 = none |
//! | 2 | the region offset of the word recording that block for the caller, 0 = none |
//! | 3 | bytes the lists hold |
//! | 4.. | a list per size: the first block's payload offset, its length in the top 16 bits; each block's first payload word links to the next |
//!
//! The records are found from a table with [`PER_PROCESS`] words per registry slot (the
//! pool header's `CACHES` word names it); each is made under the pool lock when a thread
//! of its slot's process finds no record to claim, and freed with what it holds when that
//! process detaches (or, if the lock is busy then, kept for the slot's next process) or
//! is reclaimed after its death; the table goes with the last record. Both are allocated with the pool's record
//! (a death in between is resolved exactly) and marked ready in bit 0 only once zeroed,
//! so nobody follows words that were never written.
//!
//! # A death at any step
//!
//! A push writes the operation words (the record word, then the block), then the check
//! word, the link, the list head, and clears the caller's record and the block word. A
//! pop writes the operation words, moves the list head, restores the check word and the
//! object flag, writes the caller's record and clears the block word. Recovery of a dead
//! owner's record ([`give_back`]) runs under the pool lock and settles the block word
//! first: if the block heads its list, the list holds it (and a caller's record naming it
//! is cleared, since the list will free it); otherwise its check word is restored and it
//! is freed unless the caller's record names it (then whoever resolves the caller's
//! record frees it, as after a death inside a recorded allocation or free of the heap).
//! Then each list is freed a block at a time, each named in the block word while it
//! moves, so that a recoverer that dies in turn leaves work the next one finishes. No
//! step frees a block twice: a block is freed either from a list or from the block word,
//! and one heading its list is never freed from the word.

use super::error::AllocError;
use super::heap::Heap;
use super::layout::{
    is_used_check, used_check, word, BLOCK_HEADER, CACHED_XOR, END, FLAGS, GRANULE, MIN_BLOCK,
    OBJECT, PREV_FREE, USED,
};
use crate::fault::pause_point;
use crate::region::{Offset, Region};
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What giving back a cache did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheGiven {
    /// Bytes freed into the heap.
    pub bytes: u64,
    /// Blocks left allocated because a list did not check out.
    pub lost: u64,
}

/// Cached sizes of one list per granule, from [`MIN_BLOCK`] to [`LINEAR_MAX`].
const LINEAR: usize = 12;
/// The largest block size cached exactly (payloads up to 192 bytes); past it blocks are
/// cached in sizes four per doubling, and requests rounded up to them.
pub(crate) const LINEAR_MAX: u64 = MIN_BLOCK + GRANULE * (LINEAR as u64 - 1);
/// Cached sizes: a list each.
const CLASSES: usize = LINEAR + 13;
/// The block size of each list.
const SIZES: [u64; CLASSES] = {
    let mut s = [0; CLASSES];
    let mut i = 0;
    while i < LINEAR {
        s[i] = MIN_BLOCK + GRANULE * i as u64;
        i += 1;
    }
    // 256, 320, 384, 448, 512, 640, ... 2048: four per doubling.
    let mut step = 64;
    let mut size = 256;
    while i < CLASSES {
        s[i] = size;
        i += 1;
        size += step;
        if size.is_power_of_two() {
            step *= 2;
        }
    }
    s
};
/// The largest cached block: payloads up to 2032 bytes.
pub(crate) const MAX_BLOCK: u64 = SIZES[CLASSES - 1];
/// Pools that never grow to this keep no caches: a cache there would hold too large a
/// share. (A cache holds at most [`byte_cap`] of the heap as it is now.)
pub(crate) const MIN_CAPACITY: u64 = 512 << 10;
/// Blocks a list holds at most.
pub(crate) const PER_LIST: u64 = 64;
/// Records a process has at most: the threads of a process that cache blocks at once.
pub(crate) const PER_PROCESS: u32 = 4;

const R_BUSY: usize = 0;
const R_BLOCK: usize = 1;
const R_RECORD: usize = 2;
const R_BYTES: usize = 3;
const R_HEADS: usize = 4;
/// Words of a record.
pub(crate) const RECORD_WORDS: usize = R_HEADS + CLASSES;

const OFF_BITS: u32 = 48;
const OFF_MASK: u64 = (1 << OFF_BITS) - 1;

/// The list of blocks of `size` bytes, if that size is cached.
#[inline]
fn class(size: u64) -> Option<usize> {
    if size <= LINEAR_MAX {
        return (size >= MIN_BLOCK).then(|| ((size - MIN_BLOCK) / GRANULE) as usize);
    }
    SIZES[LINEAR..]
        .iter()
        .position(|&s| s == size)
        .map(|i| i + LINEAR)
}

/// The cached block size a block of `size` bytes rounds up to (itself up to
/// [`LINEAR_MAX`]); `None` past [`MAX_BLOCK`].
#[inline]
pub(crate) fn class_block(size: u64) -> Option<u64> {
    if size <= LINEAR_MAX {
        return Some(size.max(MIN_BLOCK));
    }
    SIZES[LINEAR..].iter().copied().find(|&s| s >= size)
}

/// The most bytes a process's cache holds in a heap of `capacity` bytes.
#[inline]
pub(crate) fn byte_cap(capacity: u64) -> u64 {
    capacity / 256
}

/// A record in use by this thread: one it holds, or one it took for a moment.
pub(crate) struct Taken<'a> {
    words: &'a [AtomicU64],
    /// Region offset of the block word, for the pool's record of a free.
    block_at: Offset,
    /// Given back when dropped (taken for a moment).
    release: bool,
}

impl<'a> Taken<'a> {
    /// The record at payload offset `at`, which this thread holds.
    #[inline]
    pub fn held(heap: &Heap<'a>, at: u64) -> Option<Taken<'a>> {
        let words = record_words(heap, at)?;
        Some(Taken {
            words,
            block_at: Offset::new(at + 8 * R_BLOCK as u64),
            release: false,
        })
    }

    /// Claims the record at payload offset `at` for this thread to hold (until it gives
    /// it back with [`release`]), unless a thread holds it.
    pub fn claim(heap: &Heap<'a>, at: u64) -> Option<Taken<'a>> {
        let mut t = Taken::take(heap, at)?;
        t.release = false;
        Some(t)
    }

    /// Takes the record at payload offset `at` until dropped, unless a thread holds it.
    pub fn take(heap: &Heap<'a>, at: u64) -> Option<Taken<'a>> {
        let mut t = Taken::held(heap, at)?;
        // SYNC POINT: acquire, pairing with the release in `drop` and `release`: this
        // thread sees what the record's last holder wrote.
        t.words[R_BUSY]
            .compare_exchange(0, 1, crate::sync::atomic::Ordering::Acquire, Relaxed)
            .ok()?;
        t.release = true;
        Some(t)
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if self.release {
            // SYNC POINT: release, pairing with the acquire in `take`.
            self.words[R_BUSY].store(0, crate::sync::atomic::Ordering::Release);
        }
    }
}

/// The words of the record at payload offset `at`.
#[inline]
fn record_words<'a>(heap: &Heap<'a>, at: u64) -> Option<&'a [AtomicU64]> {
    heap.region()
        .at_slice::<AtomicU64>(Offset::new(at), RECORD_WORDS as u64)
        .ok()
}

/// Marks the words of a record being made held by the thread making it (published with
/// the record).
pub(super) fn hold_new(words: &[AtomicU64]) {
    words[R_BUSY].store(1, Relaxed);
}

/// Gives back the record at payload offset `at` of `region`'s pool, which this thread
/// held: for a thread that exits. Nothing in a child forked from the process that holds
/// it, whose copy of the thread's state names a record the parent's thread still uses.
pub(crate) fn release(region: &Region, at: u64) {
    if !region.made_in_this_process() {
        return;
    }
    if let Ok(words) = region.at_slice::<AtomicU64>(Offset::new(at), RECORD_WORDS as u64) {
        // SYNC POINT: release, pairing with the acquire in `Taken::take`: the next holder
        // sees what this thread wrote.
        words[R_BUSY].store(0, crate::sync::atomic::Ordering::Release);
    }
}

/// Pops a block of `size` bytes (a block size) whose payload lies at a multiple of
/// `align` from the cache, marks it used (an object block if `object`) and writes it into
/// `record` (the word at region offset `at`) if given. `None` if the size is not cached,
/// or its list is empty or starts with a block not so aligned; and if the list names
/// something that is not a cached block: then the pool is poisoned (its memory was
/// written by something else), which the caller's next step, under the lock, reports.
#[inline]
pub(crate) fn pop(
    heap: &Heap<'_>,
    t: &Taken<'_>,
    (size, align): (u64, u64),
    object: bool,
    record: Option<(Offset, &AtomicU64)>,
) -> Option<Offset> {
    let c = class(size)?;
    let w = t.words;
    let head = w[R_HEADS + c].load(Relaxed);
    let off = head & OFF_MASK;
    if off == 0 || off % align != 0 {
        return None;
    }
    let Some((h, used)) = cached_block(heap, off, size) else {
        poison(heap);
        return None;
    };
    let w0 = h[0].load(Relaxed);
    let at = record.map_or(0, |(at, _)| at.get());
    unlink(w, (c, size), (head, h), at, "alloc.cache.pop.noted");
    pause_point("alloc.cache.popped");
    if (w0 & OBJECT != 0) != object {
        if object {
            h[0].fetch_or(OBJECT, Relaxed);
        } else {
            h[0].fetch_and(!OBJECT, Relaxed);
        }
    }
    h[1].store(used, Relaxed);
    pause_point("alloc.cache.pop.used");
    if let Some((_, r)) = record {
        r.store(off, Relaxed);
        pause_point("alloc.cache.pop.recorded");
    }
    w[R_BLOCK].store(0, Relaxed);
    Some(Offset::new(off))
}

/// The header words and link of the cached block of `size` bytes at payload offset
/// `off`, with the used check word it goes back to; `None` unless that is one.
#[inline]
fn cached_block<'a>(heap: &Heap<'a>, off: u64, size: u64) -> Option<(&'a [AtomicU64; 3], u64)> {
    let b = off.wrapping_sub(BLOCK_HEADER);
    let h = heap.header_and_link(b).ok()?;
    let used = used_check(heap.salt, b, size);
    let ok = h[0].load(Relaxed) & !(PREV_FREE | OBJECT) == size | USED
        && h[1].load(Relaxed) == used ^ CACHED_XOR;
    ok.then_some((h, used))
}

/// Takes the block heading list `c` of `size`-byte blocks off it (`head`: the list's
/// word; `h`: the block's header and link), naming it in the block word, with the
/// caller's record `at` (0: none), before the list moves past it (`point` in between).
#[inline]
fn unlink(
    w: &[AtomicU64],
    (c, size): (usize, u64),
    (head, h): (u64, &[AtomicU64; 3]),
    at: u64,
    point: &'static str,
) {
    w[R_RECORD].store(at, Relaxed);
    w[R_BLOCK].store(head & OFF_MASK, Relaxed);
    pause_point(point);
    let next = h[2].load(Relaxed) & OFF_MASK;
    w[R_HEADS + c].store(
        next | ((head >> OFF_BITS).saturating_sub(1) << OFF_BITS),
        Relaxed,
    );
    w[R_BYTES].store(w[R_BYTES].load(Relaxed).saturating_sub(size), Relaxed);
}

/// Marks the pool poisoned (see `pool`): a cache's list names what is not a cached block.
#[cold]
fn poison(heap: &Heap<'_>) {
    if let Ok(f) = heap.word(word::FLAGS) {
        f.fetch_or(super::layout::POISONED, Relaxed);
    }
}

/// Pushes the used block at `off` on the cache and clears `record` (the word at region
/// offset `at`, which names the block) if given. `false`, with nothing changed, if the
/// block is not one to cache (its size, a full list, a full cache) or does not check out
/// as a used block: the caller frees it under the lock, which reports what is wrong.
#[inline]
pub(crate) fn push(
    heap: &Heap<'_>,
    t: &Taken<'_>,
    off: Offset,
    record: Option<(Offset, &AtomicU64)>,
) -> bool {
    let off = off.get();
    let b = off.wrapping_sub(BLOCK_HEADER);
    let Ok(h) = heap.header_and_link(b) else {
        return false;
    };
    let w0 = h[0].load(Relaxed);
    let size = w0 & !FLAGS;
    let Some(c) = class(size) else {
        return false;
    };
    let used = used_check(heap.salt, b, size);
    if w0 & (USED | END) != USED || h[1].load(Relaxed) != used {
        return false;
    }
    let w = t.words;
    let head = w[R_HEADS + c].load(Relaxed);
    let bytes = w[R_BYTES].load(Relaxed).saturating_add(size);
    // The heap as this process last saw the region's size (it may grow since).
    let capacity = heap.region().len().saturating_sub(heap.geo.heap_start);
    if head >> OFF_BITS >= PER_LIST || bytes > byte_cap(capacity) {
        return false;
    }
    w[R_RECORD].store(record.map_or(0, |(at, _)| at.get()), Relaxed);
    w[R_BLOCK].store(off, Relaxed);
    pause_point("alloc.cache.push.noted");
    h[1].store(used ^ CACHED_XOR, Relaxed);
    pause_point("alloc.cache.push.marked");
    h[2].store(head & OFF_MASK, Relaxed);
    w[R_HEADS + c].store(off | ((head >> OFF_BITS) + 1) << OFF_BITS, Relaxed);
    w[R_BYTES].store(bytes, Relaxed);
    pause_point("alloc.cache.pushed");
    if let Some((_, r)) = record {
        r.store(0, Relaxed);
        pause_point("alloc.cache.push.unrecorded");
    }
    w[R_BLOCK].store(0, Relaxed);
    true
}

/// What a record holds: (bytes, blocks).
pub(super) fn held(words: &[AtomicU64]) -> (u64, u64) {
    let blocks = words[R_HEADS..RECORD_WORDS]
        .iter()
        .map(|h| h.load(Relaxed) >> OFF_BITS)
        .sum();
    (words[R_BYTES].load(Relaxed), blocks)
}

/// Gives back what a record this thread holds or took holds (the record stays).
pub(crate) fn give_back_own(heap: &Heap<'_>, t: &Taken<'_>) -> Result<CacheGiven, AllocError> {
    give_back(heap, t.words, t.block_at)
}

/// Gives back what the record at payload offset `at` holds (the record stays), whoever
/// holds it: for its reclaimer, under the lock.
pub(super) fn give_back_record(heap: &Heap<'_>, at: u64) -> Result<CacheGiven, AllocError> {
    let Some(words) = record_words(heap, at) else {
        return Err(AllocError::corrupted("a cache record outside the region"));
    };
    give_back(heap, words, Offset::new(at + 8 * R_BLOCK as u64))
}

fn give_back(heap: &Heap<'_>, w: &[AtomicU64], block_at: Offset) -> Result<CacheGiven, AllocError> {
    let p = w[R_BLOCK].load(Relaxed);
    if p != 0 {
        // Counted by the heap's use, not in the lists' bytes.
        settle(heap, w, p, block_at)?;
    }
    let mut given = CacheGiven::default();
    for c in 0..CLASSES {
        let g = give_back_list(heap, w, block_at, c, 0, "alloc.cache.flushing")?;
        given.bytes += g.bytes;
        given.lost += g.lost;
    }
    w[R_BYTES].store(0, Relaxed);
    Ok(given)
}

/// Frees blocks of list `c` into the heap until it holds `keep`, one at a time, each
/// named in the block word while it moves (see the module docs; `point` is the pause
/// point of each move). Under the lock.
fn give_back_list(
    heap: &Heap<'_>,
    w: &[AtomicU64],
    block_at: Offset,
    c: usize,
    keep: u64,
    point: &'static str,
) -> Result<CacheGiven, AllocError> {
    let mut given = CacheGiven::default();
    let size = SIZES[c];
    loop {
        let head = w[R_HEADS + c].load(Relaxed);
        let off = head & OFF_MASK;
        if off == 0 || head >> OFF_BITS <= keep {
            return Ok(given);
        }
        let Some((h, used)) = cached_block(heap, off, size) else {
            // Not a cached block: the list cannot be followed; what it held stays.
            given.lost += head >> OFF_BITS;
            w[R_HEADS + c].store(0, Relaxed);
            return Ok(given);
        };
        unlink(w, (c, size), (head, h), 0, "alloc.cache.give.noted");
        h[1].store(used, Relaxed);
        pause_point(point);
        super::heap::free_with_record(heap, Offset::new(off), block_at, &w[R_BLOCK])?;
        given.bytes += size;
    }
}

/// Blocks a refill takes from the heap at once, at most.
const REFILL: u64 = 32;
/// Bytes a refill takes from the heap at once, at most (at least two blocks).
const REFILL_BYTES: u64 = 2048;

/// Under the lock, by the owner: if the list for blocks of `size` bytes is empty, fills
/// it with up to [`REFILL`] blocks, [`REFILL_BYTES`] bytes (at least two blocks), from the
/// heap (while the heap is less than half used),
/// so that a process that allocates more than it frees (the producer of a stream) takes
/// the lock once per refill. Each block is allocated with the block word as its record,
/// then pushed as a free would push it: a death at any step is settled as for a push.
pub(crate) fn refill(heap: &Heap<'_>, t: &Taken<'_>, size: u64) -> Result<(), AllocError> {
    let Some(c) = class(size) else {
        return Ok(());
    };
    let w = t.words;
    if w[R_HEADS + c].load(Relaxed) & OFF_MASK != 0 {
        return Ok(());
    }
    let room = heap.geo.capacity() / 2;
    for _ in 0..(REFILL_BYTES / size).clamp(2, REFILL) {
        if heap.load(word::USED)?.saturating_add(size) > room {
            return Ok(());
        }
        // No caller's record: a settle after a death here frees the block.
        w[R_RECORD].store(0, Relaxed);
        let r = heap.alloc_recorded(
            size - BLOCK_HEADER,
            GRANULE,
            false,
            (t.block_at, &w[R_BLOCK]),
        );
        let off = match r {
            Ok(off) => off,
            Err(AllocError::OutOfMemory { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        pause_point("alloc.cache.refilled");
        if !push(heap, t, off, None) {
            // Not one to keep after all (the heap gave a larger block, or the cache is
            // full): back to the heap.
            super::heap::free_with_record(heap, off, t.block_at, &w[R_BLOCK])?;
            return Ok(());
        }
    }
    Ok(())
}

/// Under the lock, by the owner: gives the heap half of every full list (or of every
/// list, when the cache is at its byte limit), so that a process that frees more than it
/// allocates (the consumer of a stream) takes the lock once per half list.
pub(crate) fn trim(heap: &Heap<'_>, t: &Taken<'_>) -> Result<(), AllocError> {
    let w = t.words;
    let capacity = heap.region().len().saturating_sub(heap.geo.heap_start);
    let full = w[R_BYTES].load(Relaxed).saturating_add(MAX_BLOCK) > byte_cap(capacity);
    for c in 0..CLASSES {
        let n = w[R_HEADS + c].load(Relaxed) >> OFF_BITS;
        if n >= PER_LIST || (full && n > 1) {
            give_back_list(heap, w, t.block_at, c, n / 2, "alloc.cache.trimming")?;
        }
    }
    Ok(())
}

/// Settles the block `p` a push or pop was moving (see the module docs).
fn settle(heap: &Heap<'_>, w: &[AtomicU64], p: u64, block_at: Offset) -> Result<(), AllocError> {
    let b = p.wrapping_sub(BLOCK_HEADER);
    let header = heap
        .geo
        .is_block_start(b)
        .then(|| heap.header(b).ok())
        .flatten();
    if let Some(h) = header {
        let w0 = h[0].load(Relaxed);
        let size = w0 & !FLAGS;
        let w1 = h[1].load(Relaxed);
        let valid = w0 & (USED | END) == USED && is_used_check(heap.salt, b, size, w1);
        if let (true, Some(c)) = (valid, class(size)) {
            let listed = w[R_HEADS + c].load(Relaxed) & OFF_MASK == p;
            let r_at = w[R_RECORD].load(Relaxed);
            let r = (r_at != 0)
                .then(|| heap.resolve::<AtomicU64>(r_at).ok())
                .flatten();
            let held = r.is_some_and(|r| r.load(Relaxed) == p);
            if listed {
                if let (true, Some(r)) = (held, r) {
                    r.store(0, Relaxed);
                }
            } else {
                h[1].store(used_check(heap.salt, b, size), Relaxed);
                if !held {
                    super::heap::free_with_record(heap, Offset::new(p), block_at, &w[R_BLOCK])?;
                }
            }
        }
    }
    w[R_RECORD].store(0, Relaxed);
    w[R_BLOCK].store(0, Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_sizes_rise_by_granules_then_four_per_doubling() {
        assert!(SIZES.windows(2).all(|w| w[0] < w[1]));
        assert!(SIZES.iter().all(|s| s % GRANULE == 0));
        assert_eq!(SIZES[LINEAR - 1], LINEAR_MAX);
        assert_eq!(&SIZES[LINEAR..LINEAR + 5], &[256, 320, 384, 448, 512]);
        assert_eq!(MAX_BLOCK, 2048);
        for (i, &s) in SIZES.iter().enumerate() {
            assert_eq!(class(s), Some(i));
            assert_eq!(class_block(s), Some(s));
        }
    }

    #[test]
    fn a_block_size_rounds_up_to_a_cached_size_at_most_a_quarter_larger() {
        for size in (MIN_BLOCK..=MAX_BLOCK).step_by(GRANULE as usize) {
            let b = class_block(size).unwrap();
            assert!(b >= size && class(b).is_some(), "{size} -> {b}");
            assert!(b - size <= size / 4, "{size} -> {b}");
            // The sizes between two cached ones have no list of their own.
            assert_eq!(class(size).is_some(), b == size, "{size}");
        }
        assert_eq!(class_block(MAX_BLOCK + GRANULE), None);
        assert_eq!(class(MAX_BLOCK + GRANULE), None);
    }
}
