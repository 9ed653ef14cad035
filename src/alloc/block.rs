//! Owned blocks of a pool: bytes a caller reads and writes, freed when dropped.

use std::time::Instant;

use super::error::AllocError;
use super::layout::MAX_ALIGN;
use super::pool::Pool;
use crate::region::Offset;
use crate::sync::MadeIn;

impl Pool {
    /// Like [`alloc_block`](Self::alloc_block), but gives up at `deadline` if a live
    /// thread (a stopped or slow process) holds the pool lock until then.
    ///
    /// # Errors
    ///
    /// [`AllocError::TimedOut`], or as [`alloc`](Self::alloc).
    pub fn alloc_block_by(
        &self,
        size: u64,
        align: u64,
        deadline: Instant,
    ) -> Result<Block, AllocError> {
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(AllocError::BadAlign { align });
        }
        let off = self.with_heap_by(Some(deadline), |h| h.alloc(size, align, false, None))?;
        self.owned(off)
    }

    /// An owned block of at least `size` bytes at `align`: its bytes are the caller's to
    /// read and write, and it goes back to the pool when dropped (or by
    /// [`Block::free`]).
    ///
    /// # Errors
    ///
    /// As [`alloc`](Self::alloc).
    pub fn alloc_block(&self, size: u64, align: u64) -> Result<Block, AllocError> {
        let off = self.alloc(size, align)?;
        self.owned(off)
    }

    /// The block at `off`, just allocated by this process, as an owned [`Block`].
    fn owned(&self, off: Offset) -> Result<Block, AllocError> {
        let len = self.usable_size_unlocked(off)?;
        Ok(Block {
            pool: self.clone(),
            off,
            len,
            made_in: MadeIn::this_process(),
        })
    }
}

/// A block of a pool, owned: its bytes are the owner's, and it is freed when dropped.
///
/// From [`Pool::alloc_block`]. [`into_offset`](Self::into_offset) gives up ownership as a
/// raw offset (to pass the block to another process through the region), and
/// [`from_offset`](Self::from_offset) takes it back.
#[must_use = "dropping a block frees it"]
pub struct Block {
    pool: Pool,
    off: Offset,
    len: u64,
    /// A child forked from the owner's process does not free the owner's block.
    made_in: MadeIn,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("offset", &self.off)
            .field("len", &self.len)
            .finish()
    }
}

impl Block {
    /// The block's offset in its region.
    pub fn offset(&self) -> Offset {
        self.off
    }

    /// Its usable size in bytes (at least what was asked for).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always `false`: a block holds at least 16 bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The block's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: the block is owned by this value: no view, handle or other owner uses its
        // bytes (other processes only through a bug outside the trust model), and the
        // range is the live block the pool handed out (checked by the region's bounds).
        unsafe { self.pool.region().bytes(self.off, self.len) }.unwrap_or(&[])
    }

    /// The block's bytes, writable.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_bytes`, and `&mut self` makes this the only slice over them.
        unsafe { self.pool.region().bytes_mut(self.off, self.len) }.unwrap_or(&mut [])
    }

    /// Gives the block back to the pool now, reporting what went wrong.
    ///
    /// # Errors
    ///
    /// [`AllocError::Corrupted`] if the pool's structures do not check out.
    pub fn free(mut self) -> Result<(), AllocError> {
        let off = std::mem::replace(&mut self.off, Offset::NULL);
        // SAFETY: the block is owned by this value, which is consumed (its drop then frees
        // nothing): nothing else uses or frees it.
        unsafe { self.pool.free(off) }
    }

    /// Gives up ownership without freeing: the block stays allocated until someone takes
    /// it back with [`from_offset`](Self::from_offset) (or frees the offset).
    pub fn into_offset(mut self) -> Offset {
        // A null offset tells `drop` that the block was given up (the pool handle, and
        // with it the region, still goes).
        std::mem::replace(&mut self.off, Offset::NULL)
    }

    /// Takes ownership of the block at `off` again.
    ///
    /// # Errors
    ///
    /// [`AllocError::InvalidOffset`] or [`AllocError::DoubleFree`] unless `off` names a
    /// live block of `pool`.
    ///
    /// # Safety
    ///
    /// `off` came from [`into_offset`](Self::into_offset) (or [`Pool::alloc`]) and nothing
    /// else owns or uses the block: this is the only call that takes it back.
    pub unsafe fn from_offset(pool: &Pool, off: Offset) -> Result<Block, AllocError> {
        let len = pool.usable_size(off)?;
        Ok(Block {
            pool: pool.clone(),
            off,
            len,
            made_in: MadeIn::this_process(),
        })
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if self.off.is_null() || !self.made_in.is_this_process() {
            return;
        }
        // SAFETY: the block is owned by this value, which is going away.
        let _ = unsafe { self.pool.free_soon(self.off, false) };
    }
}
