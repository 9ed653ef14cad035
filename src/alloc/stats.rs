//! [`PoolStats`]: a snapshot of a pool's use.

use super::error::AllocError;
use super::heap::Heap;
use super::layout::{word, BLOCK_HEADER, USED};
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
}

impl PoolStats {
    pub(crate) fn read(heap: &Heap<'_>) -> Result<PoolStats, AllocError> {
        let capacity = heap.geo.capacity();
        let used = heap.load(word::USED)?;
        Ok(PoolStats {
            capacity,
            used,
            free: capacity.saturating_sub(used),
            largest_free: heap.largest_free()?,
            live_allocations: heap.load(word::LIVE)?,
            high_water: heap.load(word::HIGH_WATER)?,
            free_blocks: heap.load(word::FREE_BLOCKS)?,
        })
    }
}

/// The used blocks, in heap order: each block's payload offset (what
/// [`Pool::alloc`](super::Pool::alloc) returned) and usable size.
pub(crate) fn used_blocks(heap: &Heap<'_>) -> Result<Vec<(Offset, u64)>, AllocError> {
    let geo = heap.geo;
    let mut out = Vec::new();
    let mut p = geo.heap_start;
    while p < geo.heap_end {
        let w0 = heap.header(p)?[0].load(Relaxed);
        let size = w0 & !USED;
        if !geo.fits(p, size) {
            return Err(AllocError::corrupted(format!(
                "block {p:#x} has size word {w0:#x}"
            )));
        }
        if w0 & USED != 0 {
            out.push((Offset::new(p + BLOCK_HEADER), size - BLOCK_HEADER));
        }
        p += size;
    }
    Ok(out)
}
