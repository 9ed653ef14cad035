//! The table of block cache records (see `cache`): the pool header's `CACHES` word names
//! it, with [`PER_PROCESS`] words per registry slot, each naming a record or 0. Records
//! are claimed by threads here, made and given back under the pool lock.

use super::cache::{
    give_back_own, give_back_record, held, hold_new, release, CacheGiven, Taken, PER_PROCESS,
    RECORD_WORDS,
};
use super::error::AllocError;
use super::heap::Heap;
use super::layout::{word, BLOCK_HEADER, CACHES_LEFT, FLAGS, GRANULE};
use crate::fault::pause_point;
use crate::region::Offset;
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bit 0 of a table word (and of the `CACHES` word): the block is zeroed.
const READY: u64 = 1;
/// Bit 1 of a table word: the record's process detached without giving it back (the pool
/// lock was busy). No thread claims it, and the next holder of the lock gives it back
/// ([`give_back_left`]).
const LEFT: u64 = 2;
/// The bits of a table word that are not the block's offset.
const TAG_BITS: u64 = READY | LEFT;

/// The table's payload offset, if it is made and zeroed.
fn table(heap: &Heap<'_>) -> Result<Option<u64>, AllocError> {
    // SYNC POINT: acquire, pairing with the release in `ready_block`: a thread that
    // reads the table without the lock sees it zeroed.
    let t = heap
        .word(word::CACHES)?
        .load(crate::sync::atomic::Ordering::Acquire);
    Ok((t & READY != 0).then_some(t & !READY))
}

/// The table's bytes in a region of `slots` registry slots.
fn table_bytes(slots: u32) -> u64 {
    u64::from(slots) * u64::from(PER_PROCESS) * 8
}

/// The table words of registry slot `slot`, if the table is made.
fn slot_words<'a>(heap: &Heap<'a>, slot: u32) -> Result<Option<&'a [AtomicU64]>, AllocError> {
    let Some(t) = table(heap)? else {
        return Ok(None);
    };
    if slot >= heap.region().registry_slots() {
        return Ok(None);
    }
    let first = t + u64::from(slot) * u64::from(PER_PROCESS) * 8;
    heap.region()
        .at_slice::<AtomicU64>(Offset::new(first), u64::from(PER_PROCESS))
        .map(Some)
        .map_err(|e| AllocError::corrupted(format!("the cache table: {e}")))
}

/// Claims a record of registry slot `slot` that no thread holds, for this thread to hold
/// (until it gives it back with [`release`]): its payload offset. Without the lock.
pub(crate) fn claim(heap: &Heap<'_>, slot: u32) -> Option<u64> {
    let words = slot_words(heap, slot).ok()??;
    words.iter().find_map(|w| {
        // SYNC POINT: acquire, pairing with the release in `ready_block`.
        let e = w.load(crate::sync::atomic::Ordering::Acquire);
        if e & TAG_BITS != READY {
            return None;
        }
        Taken::claim(heap, e & !TAG_BITS)?;
        Some(e & !TAG_BITS)
    })
}

/// [`claim`], or if every record of `slot` is held, a new record claimed for this thread
/// (if the slot has fewer than [`PER_PROCESS`] and the pool room for one). Under the
/// lock, by the slot's owner.
///
/// # Errors
///
/// [`AllocError::Corrupted`].
pub(crate) fn claim_or_make(
    heap: &Heap<'_>,
    slots: u32,
    slot: u32,
) -> Result<Option<u64>, AllocError> {
    if let Some(at) = claim(heap, slot) {
        return Ok(Some(at));
    }
    let caches = heap.word(word::CACHES)?;
    if slot >= slots || ready_block(heap, caches, table_bytes(slots), |_| ())?.is_none() {
        return Ok(None);
    }
    let Some(words) = slot_words(heap, slot)? else {
        return Ok(None);
    };
    let Some(free) = words.iter().find(|w| w.load(Relaxed) == 0) else {
        return Ok(None);
    };
    // Held by this thread from the start: a thread claiming without the lock cannot take
    // it between its making and its claim, leaving its maker without one.
    ready_block(heap, free, RECORD_WORDS as u64 * 8, hold_new)
}

/// The record words at table word `e`'s block, if the table word says it is ready.
fn record_of<'a>(heap: &Heap<'a>, e: u64) -> Option<&'a [AtomicU64]> {
    if e & READY == 0 {
        return None;
    }
    heap.region()
        .at_slice::<AtomicU64>(Offset::new(e & !TAG_BITS), RECORD_WORDS as u64)
        .ok()
}

/// A record's payload offset and words.
type RecordWords<'a> = (u64, &'a [AtomicU64]);

/// Every record, with the table's offset: for the callers under the lock.
fn records<'a>(heap: &Heap<'a>) -> Result<(Option<u64>, Vec<RecordWords<'a>>), AllocError> {
    let Some(t) = table(heap)? else {
        return Ok((None, Vec::new()));
    };
    let entries = heap
        .region()
        .at_slice::<AtomicU64>(
            Offset::new(t),
            table_bytes(heap.region().registry_slots()) / 8,
        )
        .map_err(|e| AllocError::corrupted(format!("the cache table: {e}")))?;
    let list = entries
        .iter()
        .filter_map(|e| {
            let e = e.load(Relaxed);
            record_of(heap, e).map(|w| (e & !TAG_BITS, w))
        })
        .collect();
    Ok((Some(t), list))
}

/// What the caches hold, with their table and records: (bytes, blocks), as the heap
/// counts them (whole blocks). Under the lock; the owners' lists change meanwhile, so this
/// is a snapshot of each record at some moment.
pub(crate) fn overhead(heap: &Heap<'_>) -> Result<(u64, u64), AllocError> {
    let (t, recs) = records(heap)?;
    let Some(t) = t else {
        return Ok((0, 0));
    };
    let block = |off: u64| -> Result<u64, AllocError> {
        Ok(heap.header(off - BLOCK_HEADER)?[0].load(Relaxed) & !FLAGS)
    };
    let (mut bytes, mut blocks) = (block(t)?, 1);
    for (at, w) in recs {
        let (b, n) = held(w);
        bytes += b + block(at)?;
        blocks += n + 1;
    }
    Ok((bytes, blocks))
}

/// The payload offsets of the table and the records (sorted): the pool's own blocks,
/// which the used-block listings leave out.
pub(crate) fn own_blocks(heap: &Heap<'_>) -> Result<Vec<u64>, AllocError> {
    let (t, recs) = records(heap)?;
    let mut v: Vec<u64> = t
        .into_iter()
        .chain(recs.into_iter().map(|(at, _)| at))
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// The zeroed block `w` names (allocating `bytes` for it, with `w` as its record, if it
/// names none; zeroing it, then running `init` on its words, and setting [`READY`] if it
/// is not marked so yet).
fn ready_block(
    heap: &Heap<'_>,
    w: &AtomicU64,
    bytes: u64,
    init: impl FnOnce(&[AtomicU64]),
) -> Result<Option<u64>, AllocError> {
    let mut v = w.load(Relaxed);
    if v == 0 {
        let at = heap
            .region()
            .offset_of(w)
            .ok_or_else(|| AllocError::corrupted("a cache word outside the region"))?;
        match heap.alloc_recorded(bytes, GRANULE, false, (at, w)) {
            Ok(_) => {}
            Err(AllocError::OutOfMemory { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        pause_point("alloc.cache.made");
        v = w.load(Relaxed);
    }
    let off = v & !READY;
    if v & READY == 0 {
        let words = heap
            .region()
            .at_slice::<AtomicU64>(Offset::new(off), bytes / 8)
            .map_err(|e| AllocError::corrupted(format!("a cache block: {e}")))?;
        for x in words {
            x.store(0, Relaxed);
        }
        init(words);
        // SYNC POINT: release, pairing with the acquire of the unlocked readers
        // (`table`, `claim`): they see the block zeroed.
        w.store(off | READY, crate::sync::atomic::Ordering::Release);
    }
    Ok(Some(off))
}

/// Gives back everything the records of slot `slot` hold, then the records themselves
/// (and the table, if no record is left): for the reclaimer of a dead slot, or a
/// detaching owner. Under the lock. A list that does not check out is dropped (its blocks
/// stay allocated) and counted as lost.
///
/// # Errors
///
/// [`AllocError::Corrupted`] from the heap.
pub(crate) fn give_back_slot(heap: &Heap<'_>, slot: u32) -> Result<CacheGiven, AllocError> {
    let slots = heap.region().registry_slots();
    let caches = heap.word(word::CACHES)?;
    if slot >= slots || caches.load(Relaxed) == 0 {
        return Ok(CacheGiven::default());
    }
    // A table its maker died zeroing is zeroed now (nothing was published in it).
    let Some(t) = ready_block(heap, caches, table_bytes(slots), |_| ())? else {
        return Ok(CacheGiven::default());
    };
    let Some(words) = slot_words(heap, slot)? else {
        return Ok(CacheGiven::default());
    };
    let mut given = CacheGiven::default();
    for e in words {
        let v = e.load(Relaxed);
        if v == 0 {
            continue;
        }
        if record_of(heap, v).is_some() {
            let g = give_back_record(heap, v & !TAG_BITS)?;
            given.bytes += g.bytes;
            given.lost += g.lost;
        }
        // Unready first: a death before the free leaves a block the next owner zeroes
        // again.
        free_named(heap, e)?;
    }
    free_table_if_empty(heap, t, slots)?;
    Ok(given)
}

/// Frees the table at payload offset `t` (of `slots` slots) if no record is left in it.
fn free_table_if_empty(heap: &Heap<'_>, t: u64, slots: u32) -> Result<(), AllocError> {
    let entries = heap
        .region()
        .at_slice::<AtomicU64>(Offset::new(t), table_bytes(slots) / 8)
        .map_err(|e| AllocError::corrupted(format!("the cache table: {e}")))?;
    if entries.iter().all(|e| e.load(Relaxed) == 0) {
        free_named(heap, heap.word(word::CACHES)?)?;
    }
    Ok(())
}

/// Marks every record of slot `slot` left ([`LEFT`]): for a detaching owner that could
/// not get the pool lock, after releasing them (see [`release_slot`]). Without the lock:
/// nothing else writes the words of a live process's slot meanwhile but a holder giving
/// back what is already marked.
pub(crate) fn leave_slot(heap: &Heap<'_>, slot: u32) {
    let Ok(Some(words)) = slot_words(heap, slot) else {
        return;
    };
    for w in words {
        if record_of(heap, w.load(Relaxed)).is_some() {
            w.fetch_or(LEFT, Relaxed);
        }
    }
}

/// Flags the pool for the next holder of its lock to give back the caches left
/// ([`CACHES_LEFT`]): by a detaching process that left its cache, and by the repair after
/// a holder that died, which may have been giving them back.
pub(crate) fn look_for_left(heap: &Heap<'_>) {
    if let Ok(flags) = heap.word(word::FLAGS) {
        flags.fetch_or(CACHES_LEFT, Relaxed);
    }
}

/// Under the lock: if the pool is flagged ([`look_for_left`]), gives back the caches
/// left. The flag is cleared first, so that a cache left while this runs is left for the
/// next holder.
///
/// # Errors
///
/// [`AllocError::Corrupted`] from the heap.
pub(crate) fn give_back_left(heap: &Heap<'_>) -> Result<(), AllocError> {
    let flags = heap.word(word::FLAGS)?;
    if flags.load(Relaxed) & CACHES_LEFT == 0 {
        return Ok(());
    }
    flags.fetch_and(!CACHES_LEFT, Relaxed);
    give_back_marked(heap).map(|_| ())
}

/// Gives back every record marked [`LEFT`], with what it holds (and the table, if no
/// record is left). Under the lock. A record left is claimed by no thread, so a holder
/// killed half way leaves it to be given back again, which settles what it was moving.
fn give_back_marked(heap: &Heap<'_>) -> Result<CacheGiven, AllocError> {
    let mut given = CacheGiven::default();
    let Some(t) = table(heap)? else {
        return Ok(given);
    };
    let slots = heap.region().registry_slots();
    for slot in 0..slots {
        let Some(words) = slot_words(heap, slot)? else {
            break;
        };
        for w in words {
            let v = w.load(Relaxed);
            if v & LEFT == 0 || record_of(heap, v).is_none() {
                continue;
            }
            let g = give_back_record(heap, v & !TAG_BITS)?;
            given.bytes += g.bytes;
            given.lost += g.lost;
            pause_point("alloc.cache.left.given");
            free_named(heap, w)?;
        }
    }
    free_table_if_empty(heap, t, slots)?;
    Ok(given)
}

/// Marks every record of slot `slot` held by no thread: for a detaching handle, whose
/// threads can no longer use them, so that the slot's next process can claim them if
/// they are kept.
pub(crate) fn release_slot(heap: &Heap<'_>, slot: u32) {
    let Ok(Some(words)) = slot_words(heap, slot) else {
        return;
    };
    for w in words {
        let e = w.load(crate::sync::atomic::Ordering::Acquire);
        if record_of(heap, e).is_some() {
            release(heap.region(), e & !TAG_BITS);
        }
    }
}

/// Frees the block the word `w` names (a table word or `CACHES`), with `w` as its record:
/// marked unready, then freed and cleared in one recorded free.
fn free_named(heap: &Heap<'_>, w: &AtomicU64) -> Result<(), AllocError> {
    let off = w.load(Relaxed) & !TAG_BITS;
    if off == 0 {
        return Ok(());
    }
    let at = heap
        .region()
        .offset_of(w)
        .ok_or_else(|| AllocError::corrupted("a cache word outside the region"))?;
    w.store(off, Relaxed);
    pause_point("alloc.cache.unready");
    super::heap::free_with_record(heap, Offset::new(off), at, w)
}

/// Gives back what every record of slot `slot` that no thread holds holds (the records
/// stay). Under the lock, by the slot's owner.
///
/// # Errors
///
/// [`AllocError::Corrupted`] from the heap.
pub(crate) fn give_back_unheld(heap: &Heap<'_>, slot: u32) -> Result<CacheGiven, AllocError> {
    let mut given = CacheGiven::default();
    let Some(words) = slot_words(heap, slot)? else {
        return Ok(given);
    };
    for w in words {
        let v = w.load(Relaxed);
        if let Some(t) = (v & READY != 0)
            .then(|| Taken::take(heap, v & !TAG_BITS))
            .flatten()
        {
            let g = give_back_own(heap, &t)?;
            given.bytes += g.bytes;
            given.lost += g.lost;
        }
    }
    Ok(given)
}
