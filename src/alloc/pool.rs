//! [`Pool`]: the allocator's handle: formatting, attaching, locking, poisoning.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use super::error::AllocError;
use super::heap::Heap;
use super::layout::{
    fingerprint, free_check, word, Geometry, LOCK_BYTES, MAX_ALIGN, POISONED, POOL_MAGIC,
};
use super::recover;
use super::stats::PoolStats;
use crate::region::{Offset, Region};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{Owner, ShmMutex};

/// A handle to the allocator inside a region.
///
/// The pool's state lives entirely in the region (see the [module docs](super)), so any
/// number of handles, in any processes, share one heap; a handle holds only the region and
/// what it validated when it attached. Cloning a handle clones the `Arc`.
///
/// Every operation takes the pool lock. If the last holder died inside an operation, the
/// next one repairs the heap first (or, if it is broken beyond repair, poisons the pool:
/// from then on every operation fails with [`AllocError::Corrupted`]).
#[derive(Clone, Debug)]
pub struct Pool {
    region: Arc<Region>,
    geo: Geometry,
    salt: u64,
}

impl Pool {
    /// Formats a new pool at the region's [`data_start`](Region::data_start), owning the
    /// rest of the region, and returns a handle to it.
    ///
    /// The pool header is written first and its magic word last (a release store), so a
    /// concurrent [`attach`](Self::attach) sees either no pool or a complete one.
    ///
    /// # Errors
    ///
    /// [`AllocError::AlreadyFormatted`] if the region holds a pool already,
    /// [`AllocError::RegionTooSmall`].
    pub fn create(region: Arc<Region>) -> Result<Pool, AllocError> {
        let geo = Geometry::new(region.data_start().get(), region.len())?;
        let pool = Pool {
            salt: random_salt(&region),
            region,
            geo,
        };
        let (_, heap) = pool.view()?;
        if heap.load(word::MAGIC)? != 0 {
            return Err(AllocError::AlreadyFormatted);
        }
        for i in 0..geo.words() {
            heap.store(i, 0)?;
        }
        heap.store(word::FINGERPRINT, fingerprint())?;
        heap.store(word::SALT, pool.salt)?;
        heap.store(word::HEAP_START, geo.heap_start)?;
        heap.store(word::HEAP_END, geo.heap_end)?;
        heap.store(word::FL_COUNT, geo.fl_count)?;
        let h = heap.header(geo.heap_start)?;
        h[0].store(geo.capacity(), Ordering::Relaxed);
        h[1].store(free_check(pool.salt, geo.heap_start), Ordering::Relaxed);
        heap.insert(geo.heap_start, geo.capacity())?;
        // SYNC POINT: publishes the header and the first block to attachers (acquire load
        // of the magic in `attach`).
        pool.magic()?.store(POOL_MAGIC, Ordering::Release);
        Ok(pool)
    }

    /// Attaches to the pool formatted in `region`.
    ///
    /// The header is untrusted: the magic and layout fingerprint must match this build,
    /// and the heap bounds and class count must be exactly those this build derives from
    /// the region's size (which the region took from the file, not from its header).
    ///
    /// # Errors
    ///
    /// [`AllocError::BadMagic`] (0 if the region holds no pool yet),
    /// [`AllocError::LayoutMismatch`], [`AllocError::Corrupted`],
    /// [`AllocError::RegionTooSmall`].
    pub fn attach(region: Arc<Region>) -> Result<Pool, AllocError> {
        let geo = Geometry::new(region.data_start().get(), region.len())?;
        let fixed = region
            .resolve_slice::<AtomicU64>(Offset::new(geo.base + LOCK_BYTES), word::FIXED as u64)?;
        // SYNC POINT: pairs with the release store of the magic in `create`.
        let magic = fixed[word::MAGIC].load(Ordering::Acquire);
        if magic != POOL_MAGIC {
            return Err(AllocError::BadMagic { found: magic });
        }
        let found = fixed[word::FINGERPRINT].load(Ordering::Relaxed);
        let expected = fingerprint();
        if found != expected {
            return Err(AllocError::LayoutMismatch { found, expected });
        }
        for (name, i, want) in [
            ("heap start", word::HEAP_START, geo.heap_start),
            ("heap end", word::HEAP_END, geo.heap_end),
            ("class count", word::FL_COUNT, geo.fl_count),
        ] {
            let got = fixed[i].load(Ordering::Relaxed);
            if got != want {
                return Err(AllocError::corrupted(format!(
                    "pool header says {name} {got:#x}; a region of {} bytes has {want:#x}",
                    region.len()
                )));
            }
        }
        let flags = fixed[word::FLAGS].load(Ordering::Relaxed);
        if flags & !POISONED != 0 {
            return Err(AllocError::corrupted(format!(
                "unknown pool flags {flags:#x}"
            )));
        }
        let salt = fixed[word::SALT].load(Ordering::Relaxed);
        Ok(Pool { region, geo, salt })
    }

    /// The region the pool lives in.
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// Allocates a block of at least `size` bytes whose offset is a multiple of `align`.
    ///
    /// Every block is 16-aligned; `align` may ask for 32 or 64. A request of 0 bytes gets a
    /// minimal block.
    ///
    /// # Errors
    ///
    /// [`AllocError::BadAlign`] unless `align` is a power of two of at most 64;
    /// [`AllocError::TooLarge`] if `size` exceeds the whole heap;
    /// [`AllocError::OutOfMemory`] if no free block holds it now (the pool is unchanged);
    /// [`AllocError::Corrupted`].
    pub fn alloc(&self, size: u64, align: u64) -> Result<Offset, AllocError> {
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(AllocError::BadAlign { align });
        }
        self.with_heap(|h| h.alloc(size, align))
    }

    /// Frees the block at `off`, which [`alloc`](Self::alloc) returned.
    ///
    /// An offset that does not name a live block is an error and changes nothing: the
    /// block's check word, keyed with the pool's random salt, must match.
    ///
    /// # Errors
    ///
    /// [`AllocError::DoubleFree`] if the block is already free (or was merged into a free
    /// neighbour since), [`AllocError::InvalidOffset`] for any other offset the pool did not
    /// hand out, [`AllocError::Corrupted`].
    pub fn free(&self, off: Offset) -> Result<(), AllocError> {
        self.with_heap(|h| h.free(off))
    }

    /// The bytes usable at `off`, a live block: at least what was asked for.
    ///
    /// # Errors
    ///
    /// As for [`free`](Self::free).
    pub fn usable_size(&self, off: Offset) -> Result<u64, AllocError> {
        self.with_heap(|h| {
            h.used_block(off)
                .map(|(_, size)| size - super::BLOCK_HEADER)
        })
    }

    /// Like [`usable_size`](Self::usable_size), without taking the pool lock: for readers
    /// that hold a reference to the block and must not contend for the lock on every read.
    ///
    /// A used block's header does not change until the block is freed, so for a block the
    /// caller keeps live the answer is exact. For any other offset it is a best effort
    /// (the header may be changing under a concurrent operation): an error, or a size read
    /// from a header with a valid check word. Nothing is modified either way, and the pool
    /// is never poisoned by this call.
    ///
    /// # Errors
    ///
    /// As for [`free`](Self::free).
    pub fn usable_size_unlocked(&self, off: Offset) -> Result<u64, AllocError> {
        let (_, heap) = self.view()?;
        heap.used_block(off)
            .map(|(_, size)| size - super::BLOCK_HEADER)
    }

    /// A snapshot of the pool's use.
    ///
    /// # Errors
    ///
    /// [`AllocError::Corrupted`] if the pool is poisoned or its lists are broken.
    pub fn stats(&self) -> Result<PoolStats, AllocError> {
        self.with_heap(PoolStats::read)
    }

    /// The blocks handed out and not yet freed, in heap order: each one's offset (as
    /// [`alloc`](Self::alloc) returned it) and usable size. Taken under the lock, for
    /// diagnostics (what holds the pool's memory); the blocks may be freed right after.
    ///
    /// # Errors
    ///
    /// [`AllocError::Corrupted`] if the pool is poisoned or its chain of blocks is broken.
    pub fn used_blocks(&self) -> Result<Vec<(Offset, u64)>, AllocError> {
        self.with_heap(super::stats::used_blocks)
    }

    /// Checks every invariant of the heap (a walk of all blocks and lists, for tests and
    /// diagnostics). A violation poisons the pool.
    ///
    /// # Errors
    ///
    /// [`AllocError::Corrupted`] naming the first violation found.
    pub fn verify(&self) -> Result<(), AllocError> {
        self.with_heap(recover::verify)
    }

    /// Whether the pool has been found broken beyond repair (a snapshot).
    pub fn is_poisoned(&self) -> bool {
        self.view()
            .and_then(|(_, h)| h.load(word::FLAGS))
            .map_or(true, |f| f & POISONED != 0)
    }

    /// The thread holding the pool lock now, if any (a snapshot, for diagnostics).
    pub fn lock_owner(&self) -> Option<Owner> {
        self.view().ok()?.0.owner()
    }

    /// Region offset of the pool header.
    pub fn offset(&self) -> Offset {
        Offset::new(self.geo.base)
    }

    fn magic(&self) -> Result<&AtomicU64, AllocError> {
        Ok(self
            .region
            .resolve(Offset::new(self.geo.base + LOCK_BYTES))?)
    }

    /// The lock and the header words. Both lie inside the region: the geometry was derived
    /// from its size.
    fn view(&self) -> Result<(&ShmMutex, Heap<'_>), AllocError> {
        let lock = self
            .region
            .resolve::<ShmMutex>(Offset::new(self.geo.base))?;
        let words = self.region.resolve_slice::<AtomicU64>(
            Offset::new(self.geo.base + LOCK_BYTES),
            self.geo.words() as u64,
        )?;
        Ok((lock, Heap::new(&self.region, self.geo, self.salt, words)))
    }

    /// Runs `op` under the pool lock: repairs first if the last holder died, refuses if
    /// the pool is poisoned, and poisons it if `op` finds corruption.
    fn with_heap<R>(
        &self,
        op: impl FnOnce(&Heap<'_>) -> Result<R, AllocError>,
    ) -> Result<R, AllocError> {
        let (lock, heap) = self.view()?;
        let mut guard = lock.lock();
        let poisoned = |h: &Heap<'_>| h.load(word::FLAGS).map(|f| f & POISONED != 0);
        if guard.owner_died() {
            let mut result = Ok(());
            if !poisoned(&heap)? {
                result = recover::rebuild(&heap);
                if result.is_err() {
                    poison(&heap)?;
                }
            }
            // Repaired or poisoned: either way the next holder need not repair.
            guard.mark_consistent();
            result?;
        }
        if poisoned(&heap)? {
            return Err(AllocError::corrupted(
                "the pool is poisoned: it was found broken earlier",
            ));
        }
        let result = op(&heap);
        if let Err(AllocError::Corrupted { .. }) = result {
            poison(&heap)?;
        }
        result
    }
}

fn poison(heap: &Heap<'_>) -> Result<(), AllocError> {
    heap.store(word::FLAGS, heap.load(word::FLAGS)? | POISONED)
}

/// A salt no earlier pool in this region used: the region's random id, this process and
/// std's randomly keyed hasher (seeded from the OS).
fn random_salt(region: &Region) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    region.id().hash(&mut h);
    std::process::id().hash(&mut h);
    std::time::SystemTime::now().hash(&mut h);
    h.finish()
}
