//! [`PoolStats`]: a snapshot of a pool's use.

use super::error::AllocError;
use super::heap::Heap;
use super::layout::{word, BLOCK_HEADER, END, FLAGS, OBJECT, USED};
use crate::region::Offset;
use crate::sync::atomic::Ordering::Relaxed;

/// A snapshot of a pool's use, taken under its lock.
///
/// Byte counts are of whole blocks, headers included, so `used + free == capacity` always.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolStats {
    /// Bytes of the heap: everything after the pool header.
    pub capacity: u64,
    /// Bytes in used blocks, their headers and rounding included.
    pub used: u64,
    /// Bytes in free blocks, their headers included.
    pub free: u64,
    /// The largest request (at alignment 16 or less) that would succeed now: the payload
    /// size of the largest free block, or 0.
    pub largest_free: u64,
    /// Number of blocks handed out and not yet freed.
    pub live_allocations: u64,
    /// The largest `used` has been since the pool was created.
    pub high_water: u64,
    /// Number of free blocks: 1 when everything has been freed (they coalesce).
    pub free_blocks: u64,
    /// Blocks given back while the pool lock was not to be had (a holder stopped or slow),
    /// waiting for the next operation that takes the lock to free them. Counted in `used`
    /// until then.
    pub deferred_frees: u64,
}

impl PoolStats {
    pub(crate) fn read(heap: &Heap<'_>) -> Result<PoolStats, AllocError> {
        // The block that ends the heap is the pool's own (see `grow`).
        let capacity = heap.geo.capacity().saturating_sub(super::MIN_BLOCK);
        let used = heap.load(word::USED)?;
        Ok(PoolStats {
            capacity,
            used,
            free: capacity.saturating_sub(used),
            largest_free: heap.largest_free()?,
            live_allocations: heap.load(word::LIVE)?,
            high_water: heap.load(word::HIGH_WATER)?,
            free_blocks: heap.load(word::FREE_BLOCKS)?,
            deferred_frees: deferred(heap)?,
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

/// Calls `f` on each used block, in heap order.
pub(crate) fn each_used_block(
    heap: &Heap<'_>,
    mut f: impl FnMut(UsedBlock),
) -> Result<(), AllocError> {
    let geo = heap.geo;
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
        if w0 & USED != 0 && w0 & END == 0 {
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
