//! Repair after a holder of the pool lock died, and the full consistency check.
//!
//! Both walk the physical chain: blocks laid end to end from the heap's start, each found
//! from the previous one's size. The chain is the pool's one source of truth; the free
//! lists, bitmaps, footers and counters are derived from it and rebuilt by [`rebuild`].

use super::error::AllocError;
use super::heap::Heap;
use super::layout::{
    class_of, free_check, is_used_check, tombstone, word, END, FLAGS, MIN_BLOCK, OBJECT, PREV_FREE,
    SL_COUNT, USED,
};
use crate::sync::atomic::Ordering::Relaxed;

/// Rebuilds everything derived from the chain after a holder died mid-operation.
///
/// Walks the chain from the heap's start, checking each header: the size must be a whole
/// number of granules, at least a minimal block, and stay inside the heap; a used block
/// must carry its check word. A free block may carry any check word (the holder may have
/// died between its size store and its check store): it is rewritten. Adjacent free blocks
/// are merged (the absorbed header tombstoned first, then one size store, as in `free`).
/// Then the lists, bitmaps and counters are rebuilt; the high-water mark keeps the larger of
/// its old value and the recomputed use.
///
/// Every store leaves the chain walkable, so a recoverer that dies too leaves work that
/// the next one redoes.
///
/// # Errors
///
/// [`AllocError::Corrupted`] when the chain itself is broken: the caller poisons the pool.
pub(crate) fn rebuild(heap: &Heap<'_>) -> Result<(), AllocError> {
    let geo = heap.geo;
    heap.store(word::FL_BITMAP, 0)?;
    heap.store(word::FREE_BLOCKS, 0)?;
    for fl in 0..geo.fl_count as usize {
        heap.store(geo.sl_bitmap(fl), 0)?;
        for sl in 0..SL_COUNT as usize {
            heap.store(geo.head(fl, sl), 0)?;
        }
    }
    let (mut used, mut live) = (0, 0);
    // The free run being gathered: its first block and its size so far.
    let mut run: Option<(u64, u64)> = None;
    let mut p = geo.heap_start;
    while p < geo.heap_end {
        let h = heap.header(p)?;
        let mut w0 = h[0].load(Relaxed);
        let size = w0 & !FLAGS;
        if !geo.fits(p, size) {
            return Err(AllocError::corrupted(format!(
                "the chain is broken: block {p:#x} has size word {w0:#x}"
            )));
        }
        if w0 & END != 0 && p + size < geo.heap_end {
            // An end block a growth cut short left inside the heap: free space now.
            h[1].store(free_check(heap.salt, p), Relaxed);
            h[0].store(size, Relaxed);
            w0 = size;
        }
        if w0 & USED != 0 {
            if !is_used_check(heap.salt, p, size, h[1].load(Relaxed)) {
                return Err(AllocError::corrupted(format!(
                    "the chain is broken: used block {p:#x} has a wrong check word"
                )));
            }
            // The flag that says whether the block before is free, recomputed (one
            // read-modify-write: a cached block's owner may change its object flag).
            if run.is_some() && w0 & PREV_FREE == 0 {
                h[0].fetch_or(PREV_FREE, Relaxed);
            } else if run.is_none() && w0 & PREV_FREE != 0 {
                h[0].fetch_and(!PREV_FREE, Relaxed);
            }
            if let Some((q, qs)) = run.take() {
                heap.insert(q, qs)?;
            }
            if w0 & END == 0 {
                used += size;
                live += 1;
            }
        } else if let Some((q, qs)) = run {
            h[1].store(tombstone(heap.salt, p), Relaxed);
            heap.header(q)?[0].store(qs + size, Relaxed);
            run = Some((q, qs + size));
        } else {
            // A run starts after a used block (or at the heap's start): no flags.
            h[1].store(free_check(heap.salt, p), Relaxed);
            if w0 != size {
                h[0].store(size, Relaxed);
            }
            run = Some((p, size));
        }
        p += size;
    }
    if let Some((q, qs)) = run {
        heap.insert(q, qs)?;
    }
    let last = geo.heap_end.saturating_sub(MIN_BLOCK);
    if heap.header(last)?[0].load(Relaxed) & (END | USED) != END | USED {
        return Err(AllocError::corrupted(format!(
            "the chain is broken: the heap does not end with its end block at {last:#x}"
        )));
    }
    heap.store(word::USED, used)?;
    heap.store(word::LIVE, live)?;
    let high = heap.load(word::HIGH_WATER)?.max(used);
    heap.store(word::HIGH_WATER, high)
}

/// Resolves the recorded allocation or free a dead holder was in (`OP`, see
/// [`Pool::alloc_recorded`](super::Pool::alloc_recorded)), after the chain is rebuilt: the
/// record keeps the block it names only if that block is used now.
pub(crate) fn resolve_op(heap: &Heap<'_>) -> Result<(), AllocError> {
    let op = heap.load(word::OP)?;
    if op == 0 {
        return Ok(());
    }
    if let Ok(rec) = heap.resolve::<crate::sync::atomic::AtomicU64>(op) {
        let b = rec.load(Relaxed);
        if b != 0 && heap.used_block(crate::region::Offset::new(b)).is_err() {
            rec.store(0, Relaxed);
        }
    }
    heap.store(word::OP, 0)
}

/// Finishes a deferred free cut short by a dead holder: the block named in `DRAINING` is
/// freed if it is still allocated and no longer on the deferred list (taken off, not yet
/// freed); one still on the list is left for the next drain.
pub(crate) fn finish_draining(heap: &Heap<'_>) -> Result<(), AllocError> {
    let d = heap.load(word::DRAINING)?;
    if d == 0 {
        return Ok(());
    }
    let mut b = heap.word(word::DEFERRED)?.load(Relaxed);
    let mut budget = heap.geo.capacity() / MIN_BLOCK + 1;
    let mut listed = false;
    while b != 0 && budget > 0 {
        if b == d {
            listed = true;
            break;
        }
        budget -= 1;
        heap.used_block(crate::region::Offset::new(b))?;
        b = heap
            .resolve::<crate::sync::atomic::AtomicU64>(b)?
            .load(Relaxed);
    }
    if !listed && heap.used_block(crate::region::Offset::new(d)).is_ok() {
        heap.free(crate::region::Offset::new(d))?;
    }
    heap.store(word::DRAINING, 0)
}

/// Checks every invariant of the pool without changing it: the chain's headers, flags and
/// check words, no two free blocks adjacent, footers, every free block on exactly the list of
/// its class and nothing else on the lists, back links, bitmaps, and the counters.
///
/// # Errors
///
/// [`AllocError::Corrupted`] naming the first broken invariant.
pub(crate) fn verify(heap: &Heap<'_>) -> Result<(), AllocError> {
    let geo = heap.geo;
    let bad = |what: String| Err(AllocError::Corrupted { what });
    let (mut used, mut live) = (0u64, 0u64);
    let mut free: Vec<(u64, u64)> = Vec::new();
    let mut prev_free = false;
    let mut p = geo.heap_start;
    while p < geo.heap_end {
        let h = heap.header(p)?;
        let (w0, w1) = (h[0].load(Relaxed), h[1].load(Relaxed));
        let size = w0 & !FLAGS;
        if !geo.fits(p, size) {
            return bad(format!("block {p:#x} has size word {w0:#x}"));
        }
        if w0 & FLAGS & !(USED | PREV_FREE | OBJECT | END) != 0
            || (w0 & USED == 0 && w0 & (OBJECT | END) != 0)
        {
            return bad(format!("block {p:#x} has unknown flags in {w0:#x}"));
        }
        // Exactly the last block is the end block.
        if (w0 & END != 0) != (p + size == geo.heap_end) {
            return bad(format!(
                "block {p:#x} of {size} bytes: the end block misplaced"
            ));
        }
        if (w0 & PREV_FREE != 0) != prev_free {
            return bad(format!("block {p:#x} has a wrong previous-free flag"));
        }
        if w0 & USED != 0 {
            if !is_used_check(heap.salt, p, size, w1) {
                return bad(format!("used block {p:#x} has a wrong check word"));
            }
            // The end block is the pool's, not an allocation: not counted.
            if w0 & END == 0 {
                used += size;
                live += 1;
            }
            prev_free = false;
        } else {
            if w1 != free_check(heap.salt, p) {
                return bad(format!("free block {p:#x} has a wrong check word"));
            }
            if prev_free {
                return bad(format!("free block {p:#x} follows a free block"));
            }
            if size > MIN_BLOCK && heap.footer(p, size)?.load(Relaxed) != size {
                return bad(format!("free block {p:#x} has a wrong footer"));
            }
            free.push((p, size));
            prev_free = true;
        }
        p += size;
    }
    for (name, i, want) in [
        ("used bytes", word::USED, used),
        ("live allocations", word::LIVE, live),
        ("free blocks", word::FREE_BLOCKS, free.len() as u64),
    ] {
        let got = heap.load(i)?;
        if got != want {
            return bad(format!("{name} counter says {got}, the heap holds {want}"));
        }
    }
    if heap.load(word::HIGH_WATER)? < used {
        return bad("high-water mark below current use".into());
    }
    let mut listed = vec![false; free.len()];
    let flmap = heap.load(word::FL_BITMAP)?;
    if flmap >> geo.fl_count != 0 {
        return bad(format!(
            "first-level bitmap {flmap:#x} marks missing classes"
        ));
    }
    for fl in 0..geo.fl_count as usize {
        let slmap = heap.load(geo.sl_bitmap(fl))?;
        if slmap >> SL_COUNT != 0 || (slmap != 0) != (flmap >> fl & 1 != 0) {
            return bad(format!("bitmaps of class {fl} disagree"));
        }
        for sl in 0..SL_COUNT as usize {
            let mut b = heap.load(geo.head(fl, sl))?;
            if (b != 0) != (slmap >> sl & 1 != 0) {
                return bad(format!("bitmap bit of list ({fl}, {sl}) is wrong"));
            }
            let mut prev = 0;
            while b != 0 {
                let Ok(i) = free.binary_search_by_key(&b, |&(q, _)| q) else {
                    return bad(format!("list ({fl}, {sl}) holds {b:#x}, not a free block"));
                };
                if std::mem::replace(&mut listed[i], true) {
                    return bad(format!("free block {b:#x} is listed twice"));
                }
                if class_of(free[i].1) != (fl, sl) {
                    return bad(format!("free block {b:#x} is on list ({fl}, {sl})"));
                }
                let l = heap.links(b)?;
                if l[1].load(Relaxed) != prev {
                    return bad(format!("free block {b:#x} has a wrong back link"));
                }
                prev = b;
                b = l[0].load(Relaxed);
            }
        }
    }
    if let Some(i) = listed.iter().position(|&l| !l) {
        return bad(format!("free block {:#x} is on no list", free[i].0));
    }
    Ok(())
}
