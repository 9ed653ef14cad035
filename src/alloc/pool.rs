//! [`Pool`]: the allocator's handle: formatting, attaching, locking, poisoning.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use super::deferred::{defer_free, drain_deferred, lock_soon};
use super::error::AllocError;
use super::grow::max_end_of;
use super::heap::{free_with_record, used_block_in, Heap};
use super::layout::{
    fingerprint, free_check, word, Geometry, CACHES_LEFT, LOCK_BYTES, MAX_ALIGN, MIN_BLOCK,
    POISONED, POOL_MAGIC,
};
use super::recover;
use super::stats::{PoolStats, UsedBlock};
use crate::region::{Offset, Region};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{Owner, ShmMutex, ShmMutexGuard};

/// A handle to the allocator inside a region.
///
/// The pool's state lives entirely in the region (see the [module docs](super)), so any
/// number of handles, in any processes, share one heap; a handle holds only the region and
/// what it validated when it attached. Cloning a handle clones the `Arc`.
///
/// Every operation takes the pool lock. If the last holder died inside an operation, the
/// next one repairs the heap first (or, if it is broken beyond repair, poisons the pool:
/// from then on every operation fails with [`AllocError::Corrupted`]).
#[derive(Debug, Clone)]
pub struct Pool {
    pub(super) region: Arc<Region>,
    pub(super) geo: Geometry,
    pub(super) salt: u64,
    /// Whether this handle uses the threads' block caches (see `cache`; `false`: made
    /// [`without_cache`](Self::without_cache)).
    pub(super) cache: bool,
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
        let geo = Geometry::new(region.data_start().get(), region.len(), region.max_len())?;
        let pool = Pool {
            salt: random_salt(&region),
            region,
            geo,
            cache: true,
        };
        let heap = pool.view_unformatted()?;
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
        // One free block, then the block that ends the heap (see `grow`).
        let first = geo.capacity() - MIN_BLOCK;
        let h = heap.header(geo.heap_start)?;
        h[0].store(first, Ordering::Relaxed);
        h[1].store(free_check(pool.salt, geo.heap_start), Ordering::Relaxed);
        heap.insert(geo.heap_start, first)?;
        heap.write_end_block(geo.heap_end, true)?;
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
    /// Through one region handle the header is checked by the first attach that succeeds;
    /// later ones reuse what it read (a pool's layout never changes once made), so that
    /// starting a side costs no header check.
    ///
    /// # Errors
    ///
    /// [`AllocError::BadMagic`] (0 if the region holds no pool yet),
    /// [`AllocError::LayoutMismatch`], [`AllocError::Corrupted`],
    /// [`AllocError::RegionTooSmall`].
    pub fn attach(region: Arc<Region>) -> Result<Pool, AllocError> {
        if let Some((geo, salt)) = Pool::attached_before(&region) {
            return Ok(Pool {
                region,
                geo,
                salt,
                cache: true,
            });
        }
        let mut geo = Geometry::new(region.data_start().get(), region.len(), region.max_len())?;
        let fixed =
            region.at_slice::<AtomicU64>(Offset::new(geo.base + LOCK_BYTES), word::FIXED as u64)?;
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
        let salt = fixed[word::SALT].load(Ordering::Relaxed);
        geo.heap_end = Heap::new(&region, geo, salt, fixed).current()?.geo.heap_end;
        for (name, i, want) in [
            ("heap start", word::HEAP_START, geo.heap_start),
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
        if flags & !(POISONED | CACHES_LEFT) != 0 {
            return Err(AllocError::corrupted(format!(
                "unknown pool flags {flags:#x}"
            )));
        }
        Pool::remember_attached(&region, geo, salt);
        Ok(Pool {
            region,
            geo,
            salt,
            cache: true,
        })
    }

    /// The region the pool lives in.
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// Allocates a block of at least `size` bytes whose offset is a multiple of `align`,
    /// and returns its offset: raw memory that belongs to the caller until it gives it back
    /// with [`free`](Self::free). [`alloc_block`](Self::alloc_block) gives the same memory
    /// as an owned [`Block`](super::Block), freed safely.
    ///
    /// Every block is 16-aligned; `align` may ask for 32 or 64. A request of 0 bytes gets a
    /// minimal block. Waits for the pool lock as long as a live thread holds it.
    ///
    /// # Errors
    ///
    /// [`AllocError::BadAlign`] unless `align` is a power of two of at most 64;
    /// [`AllocError::TooLarge`] if `size` exceeds the whole heap;
    /// [`AllocError::OutOfMemory`] if no free block holds it now (the pool is unchanged);
    /// [`AllocError::Corrupted`].
    pub fn alloc(&self, size: u64, align: u64) -> Result<Offset, AllocError> {
        self.alloc_flagged(size, align, false)
    }

    /// Like [`alloc`](Self::alloc), for a value object: the block's first payload words
    /// are the object's header, accessed only through atomics, which lets diagnostics read
    /// them under the pool lock ([`UsedBlock::object`]).
    pub(crate) fn alloc_object(&self, size: u64) -> Result<Offset, AllocError> {
        self.alloc_flagged(size, 16, true)
    }

    /// Like [`alloc`](Self::alloc) (for a value object if `object`), writing the block's
    /// offset into `record` (the word at region offset `at`, 0 before) inside the pool's
    /// critical section, before the block is marked used. A holder killed in between is
    /// resolved by the next locker, after its repair: the record keeps the offset only if
    /// the block was marked used. So whoever reads the record after the call, or after
    /// the caller's death, finds the block exactly when it is allocated to the caller:
    /// how the ledger gives back what a process had just allocated.
    ///
    /// Waits for the pool lock as long as a live thread holds it, or until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`alloc`](Self::alloc), and [`AllocError::TimedOut`] at the deadline; the record
    /// is then still 0.
    pub(crate) fn alloc_recorded(
        &self,
        size: u64,
        align: u64,
        object: bool,
        (at, record): (Offset, &AtomicU64),
        deadline: Option<Instant>,
    ) -> Result<Offset, AllocError> {
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(AllocError::BadAlign { align });
        }
        let size = self.cache_rounded(size, align);
        if let Some(off) = self.cached_alloc((size, align), object, Some((at, record))) {
            return Ok(off);
        }
        self.with_heap_by(deadline, |h| {
            self.heap_alloc(h, size, align, object, Some((at, record)))
        })
    }

    /// Frees the block at `off` and clears `record` (the word at region offset `at`, which
    /// names it) in one critical section, never deferred: a holder killed in between is
    /// resolved by the next locker, which clears the record if the block is free. Whoever
    /// reads the record later finds the block exactly when it is still allocated. Waits
    /// for the pool lock as long as a live thread holds it, or until `deadline`.
    ///
    /// # Errors
    ///
    /// [`AllocError::TimedOut`] at the deadline (the block and the record as they were),
    /// or as [`free`](Self::free).
    ///
    /// # Safety
    ///
    /// As [`free`](Self::free).
    pub(crate) unsafe fn free_recorded(
        &self,
        off: Offset,
        at: Offset,
        record: &AtomicU64,
        deadline: Option<Instant>,
    ) -> Result<(), AllocError> {
        if self.cached_free(off, Some((at, record))) {
            return Ok(());
        }
        self.with_heap_by(deadline, |h| {
            free_with_record(h, off, at, record)?;
            self.trim_own(h);
            Ok(())
        })
    }

    /// [`free_recorded`](Self::free_recorded) as a drop does it: waits for the pool lock
    /// only briefly (as [`free_soon`](Self::free_soon)), and returns `Ok(false)`, the block
    /// and the record as they were, if a live thread still holds it then.
    ///
    /// # Errors
    ///
    /// As for [`free`](Self::free).
    ///
    /// # Safety
    ///
    /// As for [`free`](Self::free).
    pub(crate) unsafe fn free_recorded_soon(
        &self,
        off: Offset,
        at: Offset,
        record: &AtomicU64,
    ) -> Result<bool, AllocError> {
        if self.cached_free(off, Some((at, record))) {
            return Ok(true);
        }
        let (lock, heap) = self.view()?;
        match lock_soon(lock, false) {
            Some(g) => self.locked(g, &heap, true, |h| {
                free_with_record(h, off, at, record)?;
                self.trim_own(h);
                Ok(true)
            }),
            None => Ok(false),
        }
    }

    fn alloc_flagged(&self, size: u64, align: u64, object: bool) -> Result<Offset, AllocError> {
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(AllocError::BadAlign { align });
        }
        let size = self.cache_rounded(size, align);
        if let Some(off) = self.cached_alloc((size, align), object, None) {
            return Ok(off);
        }
        self.with_heap(|h| self.heap_alloc(h, size, align, object, None))
    }

    /// Frees the block at `off`, which [`alloc`](Self::alloc) returned. Waits for the pool
    /// lock as long as a live thread holds it.
    ///
    /// An offset that does not name a live block is an error and changes nothing: the
    /// block's check word, keyed with the pool's random salt, must match.
    ///
    /// # Errors
    ///
    /// [`AllocError::DoubleFree`] if the block is already free (or was merged into a free
    /// neighbour since), [`AllocError::InvalidOffset`] for any other offset the pool did not
    /// hand out, [`AllocError::Corrupted`].
    ///
    /// # Safety
    ///
    /// The block is the caller's: nothing (a view or slice of a value, a handle, a pipe,
    /// another process) still uses its bytes, and nobody else frees it. Freeing a block
    /// under a live view would let the pool hand the bytes out again while they are read.
    pub unsafe fn free(&self, off: Offset) -> Result<(), AllocError> {
        if self.cached_free(off, None) {
            return Ok(());
        }
        self.with_heap(|h| {
            h.free(off)?;
            self.trim_own(h);
            Ok(())
        })
    }

    /// Frees the block at `off` now if the pool lock can be had within a short bound, and
    /// otherwise hands it to the pool's deferred frees, which the next operation of any
    /// process that takes the lock frees: a drop never blocks behind a holder of the lock
    /// that is stopped (SIGSTOP, a debugger) or slow. `hurry` skips even the short wait
    /// (a caller that found the lock unavailable a moment ago). Returns whether the free
    /// was deferred.
    ///
    /// # Safety
    ///
    /// As for [`free`](Self::free).
    pub(crate) unsafe fn free_soon(&self, off: Offset, hurry: bool) -> Result<bool, AllocError> {
        if self.cached_free(off, None) {
            return Ok(false);
        }
        let (lock, heap) = self.view()?;
        match lock_soon(lock, hurry) {
            Some(g) => self.locked(g, &heap, true, |h| {
                h.free(off)?;
                self.trim_own(h);
                Ok(false)
            }),
            None => {
                defer_free(&heap, off)?;
                Ok(true)
            }
        }
    }

    /// The bytes usable at `off`, a live block: at least what was asked for.
    ///
    /// # Errors
    ///
    /// As for [`free`](Self::free).
    pub(crate) fn usable_size(&self, off: Offset) -> Result<u64, AllocError> {
        self.with_heap(|h| {
            h.used_block(off)
                .map(|(_, size)| size - super::BLOCK_HEADER)
        })
    }

    /// Like [`usable_size`](Self::usable_size), without taking the pool lock: for readers
    /// that hold a reference to the block and must not contend for the lock on every read.
    ///
    /// A used block's header does not change until the block is freed (but for the flag
    /// saying whether the block before it is free), so for a block the caller keeps live
    /// the answer is exact. For any other offset it is a best effort (the header may be
    /// changing under a concurrent operation): an error, or a size read from a header with
    /// a valid check word. Nothing is modified either way, and the pool is never poisoned
    /// by this call.
    ///
    /// # Errors
    ///
    /// As for [`free`](Self::free).
    #[inline]
    pub(crate) fn usable_size_unlocked(&self, off: Offset) -> Result<u64, AllocError> {
        let geo = self.unlocked_geometry();
        used_block_in(&self.region, &geo, self.salt, off)
            .map(|(_, size)| size - super::BLOCK_HEADER)
    }

    /// Frees now what was deferred (see [`PoolStats::deferred_frees`]): blocks other
    /// processes gave back without waiting for the lock, among them the ledger chunks of
    /// processes that left. Any allocation or free does it too; this is for a monitor
    /// about to read [`stats`](Self::stats). Waits for the pool lock as long as a live
    /// thread holds it.
    ///
    /// # Errors
    ///
    /// [`AllocError::Corrupted`] if the pool is poisoned or its lists are broken.
    pub fn free_deferred(&self) -> Result<(), AllocError> {
        self.with_heap(|_| Ok(()))
    }

    /// A snapshot of the pool's use. Waits for the pool lock as long as a live thread
    /// holds it (a monitor that may itself have stopped that thread must not call it then).
    ///
    /// # Errors
    ///
    /// [`AllocError::Corrupted`] if the pool is poisoned or its lists are broken.
    pub fn stats(&self) -> Result<PoolStats, AllocError> {
        self.looking(PoolStats::read)
    }

    /// The blocks handed out and not yet freed, in heap order (waiting for the pool lock
    /// as [`stats`](Self::stats) does). Taken under the lock, for
    /// diagnostics (what holds the pool's memory); the blocks may be freed right after.
    ///
    /// # Errors
    ///
    /// [`AllocError::Corrupted`] if the pool is poisoned or its chain of blocks is broken.
    pub fn used_blocks(&self) -> Result<Vec<UsedBlock>, AllocError> {
        let mut out = Vec::new();
        self.for_each_used_block(|b| out.push(b))?;
        Ok(out)
    }

    /// Calls `f` on each used block, in heap order, holding the pool lock: no block is
    /// handed out or freed meanwhile, so `f` may read the header words of an
    /// [`object`](UsedBlock::object) block. `f` must not call into the pool.
    pub(crate) fn for_each_used_block(&self, f: impl FnMut(UsedBlock)) -> Result<(), AllocError> {
        self.looking(|h| super::stats::each_used_block(h, f))
    }

    /// Checks every invariant of the heap, waiting for the pool lock as
    /// [`stats`](Self::stats) does (a walk of all blocks and lists, for tests and
    /// diagnostics). A violation poisons the pool.
    ///
    /// # Errors
    ///
    /// [`AllocError::Corrupted`] naming the first violation found.
    pub fn verify(&self) -> Result<(), AllocError> {
        self.looking(recover::verify)
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
        Ok(self.region.at(Offset::new(self.geo.base + LOCK_BYTES))?)
    }

    /// The lock and the header words. Both lie inside the region: the geometry was derived
    /// from its size.
    pub(super) fn view(&self) -> Result<(&ShmMutex, Heap<'_>), AllocError> {
        let lock = self.region.at::<ShmMutex>(Offset::new(self.geo.base))?;
        Ok((lock, self.block_view()?))
    }

    /// The heap as [`view`](Self::view) gives it, without the lock: for the block cache,
    /// which writes only blocks it holds and reads one header word, and for checking the
    /// header of a block the caller holds a reference to.
    ///
    /// Without the lock the heap's end is not read (another process may be moving it):
    /// reads reach as far as the region's maximum, each through the region's checked
    /// resolver (which refuses what the file does not hold) and each block's check word.
    /// Under the lock, `locked` reads the end itself.
    #[inline]
    pub(super) fn block_view(&self) -> Result<Heap<'_>, AllocError> {
        let words = self.region.at_slice::<AtomicU64>(
            Offset::new(self.geo.base + LOCK_BYTES),
            self.geo.words() as u64,
        )?;
        Ok(Heap::new(
            &self.region,
            self.unlocked_geometry(),
            self.salt,
            words,
        ))
    }

    /// The geometry with the heap reaching as far as it can ever end (see
    /// [`block_view`](Self::block_view)).
    #[inline]
    fn unlocked_geometry(&self) -> Geometry {
        Geometry {
            heap_end: max_end_of(&self.region).max(self.geo.heap_end),
            ..self.geo
        }
    }

    /// The header words with the heap's end of the geometry: for formatting a new pool.
    fn view_unformatted(&self) -> Result<Heap<'_>, AllocError> {
        let words = self.region.at_slice::<AtomicU64>(
            Offset::new(self.geo.base + LOCK_BYTES),
            self.geo.words() as u64,
        )?;
        Ok(Heap::new(&self.region, self.geo, self.salt, words))
    }

    /// Runs `op` under the pool lock: repairs first if the last holder died, refuses if
    /// the pool is poisoned, frees what was deferred, and poisons the pool if `op` finds
    /// corruption.
    pub(super) fn with_heap<R>(
        &self,
        op: impl FnOnce(&Heap<'_>) -> Result<R, AllocError>,
    ) -> Result<R, AllocError> {
        let (lock, heap) = self.view()?;
        self.locked(lock.lock(), &heap, true, op)
    }

    /// [`with_heap`](Self::with_heap), giving up at `deadline` (if any) while a live
    /// thread holds the lock ([`AllocError::TimedOut`]).
    pub(super) fn with_heap_by<R>(
        &self,
        deadline: Option<Instant>,
        op: impl FnOnce(&Heap<'_>) -> Result<R, AllocError>,
    ) -> Result<R, AllocError> {
        let (lock, heap) = self.view()?;
        let guard = match deadline {
            Some(d) => lock.lock_deadline(d).map_err(|_| AllocError::TimedOut)?,
            None => lock.lock(),
        };
        self.locked(guard, &heap, true, op)
    }

    /// [`with_heap`](Self::with_heap) for diagnostics: leaves the deferred frees for the
    /// next allocation or free, so that they can be seen.
    fn looking<R>(
        &self,
        op: impl FnOnce(&Heap<'_>) -> Result<R, AllocError>,
    ) -> Result<R, AllocError> {
        let (lock, heap) = self.view()?;
        self.locked(lock.lock(), &heap, false, op)
    }

    /// [`with_heap`](Self::with_heap) with the lock already taken; `drain` frees what was
    /// deferred first.
    fn locked<R>(
        &self,
        guard: ShmMutexGuard<'_>,
        heap: &Heap<'_>,
        drain: bool,
        op: impl FnOnce(&Heap<'_>) -> Result<R, AllocError>,
    ) -> Result<R, AllocError> {
        locked_in(&self.region, guard, heap, drain, op)
    }
}

/// [`Pool::with_heap`] with the lock already taken, given the region: repairs first if the
/// last holder died, refuses if the pool is poisoned, frees what was deferred if `drain`,
/// gives back the caches detached processes left behind, and poisons the pool if `op`
/// finds corruption.
pub(super) fn locked_in<R>(
    region: &Region,
    mut guard: ShmMutexGuard<'_>,
    heap: &Heap<'_>,
    drain: bool,
    op: impl FnOnce(&Heap<'_>) -> Result<R, AllocError>,
) -> Result<R, AllocError> {
    let poisoned = |h: &Heap<'_>| h.load(word::FLAGS).map(|f| f & POISONED != 0);
    // The heap's end as it is now, under the lock.
    let current = match heap.current() {
        Ok(h) => h,
        Err(e) => {
            poison(heap)?;
            return Err(e);
        }
    };
    let heap = &current;
    if guard.owner_died() {
        region.note_death();
        let mut result = Ok(());
        if !poisoned(heap)? {
            result = recover::rebuild(heap)
                .and_then(|()| recover::resolve_op(heap))
                .and_then(|()| recover::finish_draining(heap));
            if result.is_err() {
                poison(heap)?;
            }
        }
        // A holder may have died giving back caches left: look for them again below.
        super::cache_table::look_for_left(heap);
        // Repaired or poisoned: either way the next holder need not repair.
        guard.mark_consistent();
        result?;
    }
    if poisoned(heap)? {
        return Err(AllocError::corrupted(
            "the pool is poisoned: it was found broken earlier",
        ));
    }
    let drained = if drain { drain_deferred(heap) } else { Ok(()) };
    let drained = drained.and_then(|()| super::cache_table::give_back_left(heap));
    let result = drained.and_then(|()| op(heap));
    if let Err(AllocError::Corrupted { .. }) = result {
        poison(heap)?;
    }
    result
}

fn poison(heap: &Heap<'_>) -> Result<(), AllocError> {
    heap.word(word::FLAGS)?
        .fetch_or(POISONED, Ordering::Relaxed);
    Ok(())
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
