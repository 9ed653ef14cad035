//! [`PoolStats`]: a snapshot of a pool's use.

use super::error::AllocError;
use super::heap::Heap;
use super::layout::{cached_check, word, BLOCK_HEADER, END, FLAGS, OBJECT, USED};
use crate::region::Offset;
use crate::sync::atomic::Ordering::Relaxed;

/// A snapshot of a pool's use, taken under its lock.
///
/// Byte counts are of whole blocks, headers included, so `used + free == capacity` always.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolStats {
    /// Bytes of the heap: everything after the pool header.
    pub capacity: u64,
    /// Bytes in used blocks, their headers and rounding included (not those in processes'
    /// block caches).
    pub used: u64,
    /// Bytes not in use: in free blocks and in processes' block caches (`cached`), headers
    /// included.
    pub free: u64,
    /// The largest request (at alignment 16 or less) that would succeed now: the payload
    /// size of the largest free block, or 0.
    pub largest_free: u64,
    /// Number of blocks handed out and not yet freed.
    pub live_allocations: u64,
    /// The largest `used` has been since the pool was created.
    pub high_water: u64,
    /// Number of free blocks: 1 when everything has been freed and no process caches a
    /// block (free blocks coalesce).
    pub free_blocks: u64,
    /// Blocks given back while the pool lock was not to be had (a holder stopped or slow),
    /// waiting for the next operation that takes the lock to free them. Counted in `used`
    /// until then.
    pub deferred_frees: u64,
    /// Bytes the processes' block caches hold (small blocks a process freed and keeps for
    /// its next allocations, see [`Pool::give_back_cache_now`](super::Pool::give_back_cache_now)),
    /// with the caches' own records: counted in `free`, though only their process can
    /// have them (or the first allocation that finds the pool full). Read while the owners
    /// go on using their caches, so each cache is counted as it was at some moment of the
    /// call.
    pub cached: u64,
}

impl PoolStats {
    pub(crate) fn read(heap: &Heap<'_>) -> Result<PoolStats, AllocError> {
        // The block that ends the heap is the pool's own (see `grow`).
        let capacity = heap.geo.capacity().saturating_sub(super::MIN_BLOCK);
        let used = heap.load(word::USED)?;
        let (cached, cached_blocks) = super::cache_table::overhead(heap)?;
        Ok(PoolStats {
            capacity,
            used: used.saturating_sub(cached),
            free: capacity.saturating_sub(used.saturating_sub(cached)),
            largest_free: heap.largest_free()?,
            live_allocations: heap.load(word::LIVE)?.saturating_sub(cached_blocks),
            high_water: heap.load(word::HIGH_WATER)?,
            free_blocks: heap.load(word::FREE_BLOCKS)?,
            deferred_frees: deferred(heap)?,
            cached,
        })
    }
}

/// The length of the deferred-free list (walked under the lock, bounded).
fn deferred(heap: &Heap<'_>) -> Result<u64, AllocError> {
    let mut n = 0;
    let mut b = heap.load(word::DEFERRED)?;
    while b != 0 {
        n += 1;
        if n > heap.geo.capacity() / super::MIN_BLOCK {
            return Err(AllocError::corrupted("the deferred frees loop"));
        }
        heap.used_block(Offset::new(b))?;
        b = heap
            .resolve::<crate::sync::atomic::AtomicU64>(b)?
            .load(Relaxed);
    }
    Ok(n)
}

/// A block handed out and not yet freed, as [`Pool::used_blocks`](super::Pool::used_blocks)
/// lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UsedBlock {
    /// Its payload offset (what [`Pool::alloc`](super::Pool::alloc) returned).
    pub offset: Offset,
    /// Its usable size in bytes.
    pub size: u64,
    /// Whether it holds a value object: its first payload words are the object's header,
    /// only ever accessed through atomics (see `val::shared::live_blocks`).
    pub object: bool,
}

/// Calls `f` on each used block, in heap order: not the blocks in processes' caches, nor
/// the caches' records.
pub(crate) fn each_used_block(
    heap: &Heap<'_>,
    mut f: impl FnMut(UsedBlock),
) -> Result<(), AllocError> {
    let geo = heap.geo;
    let own = super::cache_table::own_blocks(heap)?;
    let mut p = geo.heap_start;
    while p < geo.heap_end {
        let w0 = heap.header(p)?[0].load(Relaxed);
        let size = w0 & !FLAGS;
        if !geo.fits(p, size) {
            return Err(AllocError::corrupted(format!(
                "block {p:#x} has size word {w0:#x}"
            )));
        }
        // The end block is the pool's, not an allocation.
        let h1 = heap.header(p)?[1].load(Relaxed);
        if w0 & USED != 0
            && w0 & END == 0
            && h1 != cached_check(heap.salt, p, size)
            && own.binary_search(&(p + BLOCK_HEADER)).is_err()
        {
            f(UsedBlock {
                offset: Offset::new(p + BLOCK_HEADER),
                size: size - BLOCK_HEADER,
                object: w0 & OBJECT != 0,
            });
        }
        p += size;
    }
    Ok(())
}
