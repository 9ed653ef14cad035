//! Growing the heap into pages the region's file just gained (see
//! [`Region::grow`](crate::region::Region::grow)).
//!
//! The heap always ends with a used block of [`MIN_BLOCK`] bytes flagged [`END`]: its
//! [`PREV_FREE`] flag says whether the last real block is free, which a growth needs to
//! know to merge it with the new space, and is kept by `alloc` and `free` like any
//! block's. A growth, under the pool lock:
//!
//! 1. grows the region's file (its pages allocated, the committed size published);
//! 2. writes, past the heap's end where no chain walk reaches, a free block over the new
//!    space and a new end block after it;
//! 3. moves the heap's end with one store: the chain now runs through the old end block
//!    (still used), the new free block and the new end block;
//! 4. lists the new block and frees the old end block, which merges it with the new block
//!    and with the last real block if that one is free.
//!
//! A holder killed before step 3 leaves the heap as it was (the file larger, which the
//! next growth finds allocated); after it, the repair walks a whole chain, and frees an
//! end block that is no longer at the end, so nothing is lost.

use super::error::AllocError;
use super::heap::Heap;
use super::layout::{
    free_check, used_check, word, BLOCK_HEADER, END, GRANULE, MIN_BLOCK, PREV_FREE, USED,
};
use crate::fault::pause_point;
use crate::region::Offset;
use crate::sync::atomic::Ordering::Relaxed;

/// The smallest growth: small steps would make a growing pool allocate often.
pub const MIN_GROWTH: u64 = 2 << 20;
/// Growths are whole pages.
const PAGE: u64 = 4096;

impl<'a> Heap<'a> {
    /// The end block's header words, for a heap whose end is `end`.
    pub(crate) fn write_end_block(&self, end: u64, prev_free: bool) -> Result<(), AllocError> {
        let b = end - MIN_BLOCK;
        let h = self.header(b)?;
        h[1].store(used_check(self.salt, b, MIN_BLOCK), Relaxed);
        let flags = USED | END | if prev_free { PREV_FREE } else { 0 };
        h[0].store(MIN_BLOCK | flags, Relaxed);
        Ok(())
    }

    /// How far the heap could grow at most: to the region's maximum, less the end block.
    pub(crate) fn max_end(&self) -> u64 {
        max_end_of(self.region())
    }

    /// Grows the region and the heap so that a block of `needed` bytes at `align` may fit:
    /// by at least [`MIN_GROWTH`], doubling the heap, up to the region's maximum. Returns
    /// the heap with its new end; `None` when it cannot grow at all (it is at its maximum).
    ///
    /// # Errors
    ///
    /// [`AllocError::CannotGrow`] when the region refuses (`/dev/shm` full), and
    /// [`AllocError::Corrupted`].
    pub(crate) fn grow_for(
        &self,
        requested: u64,
        needed: u64,
    ) -> Result<Option<Heap<'a>>, AllocError> {
        let end = self.geo.heap_end;
        let max = self.max_end();
        if end >= max {
            // A pool that grew to its maximum says so; one made without room to grow is
            // simply full.
            if self.region().growths().0 == 0 {
                return Ok(None);
            }
            return Err(AllocError::CannotGrow {
                requested,
                largest_free: self.largest_free()?,
                cause: crate::region::RegionError::MaxReached {
                    name: self.region().name().to_string(),
                    max: self.region().max_len(),
                    wanted: end.saturating_add(needed),
                },
            });
        }
        let span = end - self.geo.base;
        let step = span
            .max(MIN_GROWTH)
            .max(needed.saturating_add(2 * MIN_BLOCK + 64));
        let want = end.saturating_add(step);
        let new_end = want
            .checked_add(PAGE - 1)
            .map_or(max, |w| w & !(PAGE - 1))
            .min(max);
        if let Err(cause) = self.region().grow(new_end) {
            return Err(AllocError::CannotGrow {
                requested,
                largest_free: self.largest_free()?,
                cause,
            });
        }
        self.extend(new_end).map(Some)
    }

    /// Moves the heap's end to `new_end`, which the region's file holds (see the
    /// [module docs](self) for the steps), and returns the heap with its new end.
    pub(crate) fn extend(&self, new_end: u64) -> Result<Heap<'a>, AllocError> {
        let old_end = self.geo.heap_end;
        let old = old_end - MIN_BLOCK;
        let (b, size) = self.used_block(Offset::new(old + BLOCK_HEADER))?;
        let w0 = self.header(old)?[0].load(Relaxed);
        if b != old || size != MIN_BLOCK || w0 & END == 0 {
            return Err(AllocError::corrupted(format!(
                "the heap does not end with its end block (at {old:#x})"
            )));
        }
        if new_end < old_end + 2 * MIN_BLOCK || new_end % GRANULE != 0 {
            return Err(AllocError::corrupted(format!(
                "a growth from {old_end:#x} to {new_end:#x}"
            )));
        }
        let grown = self.with_end(new_end);
        // Past the end: the new free block and end block.
        let f = old_end;
        let f_size = new_end - MIN_BLOCK - old_end;
        let hf = grown.header(f)?;
        hf[1].store(free_check(self.salt, f), Relaxed);
        hf[0].store(f_size, Relaxed);
        grown.write_end_block(new_end, true)?;
        pause_point("alloc.grow.formatted");
        // One store links them into the chain.
        self.store(word::HEAP_END, new_end)?;
        pause_point("alloc.grow.linked");
        grown.insert(f, f_size)?;
        // The old end block goes: merged with the new block, and the last real block if
        // it is free. End blocks are not counted as allocations: count it for the free
        // to uncount.
        grown.store(word::USED, grown.load(word::USED)? + MIN_BLOCK)?;
        grown.store(word::LIVE, grown.load(word::LIVE)? + 1)?;
        grown.free(Offset::new(old + BLOCK_HEADER))?;
        pause_point("alloc.grow.merged");
        Ok(grown)
    }
}

/// The furthest a heap in `region` can ever end: its maximum size, in whole pages.
#[inline]
pub(crate) fn max_end_of(region: &crate::region::Region) -> u64 {
    region.max_len() & !(PAGE - 1) & !(GRANULE - 1)
}
