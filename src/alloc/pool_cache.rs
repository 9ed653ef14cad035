//! The pool's entry points to this process's block cache (see `cache`).

use std::sync::OnceLock;
use std::time::Instant;

use super::cache::{self, CacheGiven, Taken, MAX_BLOCK, MIN_CAPACITY};
use super::cache_table;
use super::deferred::lock_soon;
use super::error::AllocError;
use super::heap::region_view;
use super::heap::Heap;
use super::layout::{block_size, word, Geometry, BLOCK_HEADER, GRANULE};
use super::pool::{locked_in, Pool};
use super::thread_record;
use crate::fault::pause_point;
use crate::region::{ExtLayer, Offset, Region, RegionExt};
use crate::sync::atomic::AtomicU64;

/// The largest alignment whose requests are rounded to cached sizes: a cache line.
const CACHED_ALIGN: u64 = 64;

impl Pool {
    /// The cache record this thread holds in this handle's region, claimed (or made, if
    /// the pool lock is free now: never waited for, so a call with a deadline, or a drop,
    /// does not wait for it here) on first use: `None` in a small pool, in a process
    /// without a registry slot (a forked child), in a handle made `without_cache`, and
    /// while every record of the process is held by other threads or none can be made.
    #[inline]
    fn cache_at(&self) -> Option<u64> {
        if !self.uses_cache() {
            return None;
        }
        let at = match thread_record::last(self.region.handle_id()) {
            Some(at) => at,
            None => self.find_record(),
        };
        (at != 0).then_some(at)
    }

    /// [`cache_at`](Self::cache_at) past its first look: the record this thread noted, or
    /// one it claims now (0: none).
    #[cold]
    fn find_record(&self) -> u64 {
        if let Some(at) = thread_record::held(self.region.handle_id()) {
            return at;
        }
        self.claim_and_keep(None).unwrap_or(0)
    }

    /// Whether this handle's threads use block caches here: made in this process (not
    /// a forked child's copy) and not `without_cache`.
    #[inline]
    fn uses_cache(&self) -> bool {
        self.region.made_in_this_process() && self.cache
    }

    /// Whether the pool is large enough to keep caches (at the most the heap grows to).
    #[inline]
    fn pool_caches(&self) -> bool {
        self.region.max_len().saturating_sub(self.geo.heap_start) >= MIN_CAPACITY
    }

    /// [`claim_record`](Self::claim_record), noted for this thread (a thread found
    /// without one is noted too, so its next look is quick). `None` when it gets none,
    /// or when it is exiting (then the record it claimed goes back at once).
    fn claim_and_keep(&self, h: Option<&Heap<'_>>) -> Option<u64> {
        let at = self.claim_record(h).unwrap_or(0);
        if !thread_record::keep(&self.region, at) {
            if at != 0 {
                cache::release(&self.region, at);
            }
            return None;
        }
        (at != 0).then_some(at)
    }

    /// Claims a record no thread holds for this thread, or makes one: under the lock `h`
    /// if given, else under the lock if it is free now. `None` if the handle keeps no
    /// caches, or none is to be had.
    fn claim_record(&self, h: Option<&Heap<'_>>) -> Option<u64> {
        if !self.pool_caches() {
            return None;
        }
        let slot = self.region.process_slot()?;
        let slots = self.region.registry_slots();
        // The handle's state, which gives the records back when the handle closes.
        Pool::ext(&self.region)?;
        if let Some(h) = h {
            return cache_table::claim_or_make(h, slots, slot).ok().flatten();
        }
        if let Some(at) = cache_table::claim(&self.block_view().ok()?, slot) {
            return Some(at);
        }
        let (lock, heap) = self.view().ok()?;
        let guard = lock_soon(lock, true)?;
        locked_in(&self.region, guard, &heap, true, |h| {
            cache_table::claim_or_make(h, slots, slot)
        })
        .ok()
        .flatten()
    }

    /// The payload size to allocate for a request of `size` bytes at `align`: rounded up
    /// to fill a cached block size, when past [`LINEAR_MAX`](cache::LINEAR_MAX) and this
    /// handle may cache it, so that the block can go to a cache when freed (at most a
    /// quarter more); `size` itself otherwise. Blocks aligned to a cache line (pipe
    /// blocks) are rounded too: a list's first block serves such a request when it happens
    /// to be so aligned, as the block of a pipe just dropped is.
    #[inline]
    pub(super) fn cache_rounded(&self, size: u64, align: u64) -> u64 {
        if !self.cache || align > CACHED_ALIGN || !self.pool_caches() {
            return size;
        }
        match block_size(size).and_then(cache::class_block) {
            Some(b) if b > cache::LINEAR_MAX => b - BLOCK_HEADER,
            _ => size,
        }
    }

    /// A block of `size` bytes from the cache, without the lock, if it holds one (see
    /// `cache::pop`).
    #[inline]
    pub(super) fn cached_alloc(
        &self,
        (size, align): (u64, u64),
        object: bool,
        record: Option<(Offset, &AtomicU64)>,
    ) -> Option<Offset> {
        let bsize = block_size(size).filter(|&b| b <= MAX_BLOCK)?;
        let at = self.cache_at()?;
        // Anything amiss here (the header out of reach) is for the locked path to report.
        let heap = self.block_view().ok()?;
        // Blocks waiting on the deferred frees: the lock, which frees them, goes first.
        if heap.load(word::DEFERRED).ok()? != 0 {
            return None;
        }
        let t = Taken::held(&heap, at)?;
        cache::pop(&heap, &t, (bsize, align), object, record)
    }

    /// Puts the used block at `off` in the cache, without the lock, if it is one to keep
    /// (see `cache::push`); `false` leaves it to the heap.
    #[inline]
    pub(super) fn cached_free(&self, off: Offset, record: Option<(Offset, &AtomicU64)>) -> bool {
        let Some(at) = self.cache_at() else {
            return false;
        };
        let Ok(heap) = self.block_view() else {
            return false;
        };
        if heap.load(word::DEFERRED).map_or(true, |d| d != 0) {
            return false;
        }
        let Some(t) = Taken::held(&heap, at) else {
            return false;
        };
        cache::push(&heap, &t, off, record)
    }

    /// Allocates from the heap under the lock (with `record`, as `alloc_recorded` does);
    /// if the heap has no room, gives this process's cache back to it and tries again.
    pub(super) fn heap_alloc(
        &self,
        h: &Heap<'_>,
        size: u64,
        align: u64,
        object: bool,
        record: Option<(Offset, &AtomicU64)>,
    ) -> Result<Offset, AllocError> {
        let go = |h: &Heap<'_>| match record {
            Some(r) => h.alloc_recorded(size, align, object, r),
            None => h.alloc(size, align, object, None),
        };
        let off = match go(h) {
            Err(AllocError::OutOfMemory { .. }) if self.give_back_own(h)? > 0 => go(h),
            r => r,
        }?;
        // A small block taken from the heap: the cache's list of its size is empty, so
        // fill it for the next ones (best effort: a refill that fails leaves the list as
        // it got it).
        if let (true, Some(bsize)) = (align <= GRANULE, block_size(size)) {
            if let Some(t) = self.own_taken(h) {
                let _ = cache::refill(h, &t, bsize);
            }
        }
        Ok(off)
    }

    /// Under the lock: the cache record this thread holds, claimed (or made) now if it
    /// holds none yet, so that a thread that found every record held gets one that
    /// another thread gave back since.
    fn own_taken<'h>(&self, h: &Heap<'h>) -> Option<Taken<'h>> {
        if !self.uses_cache() {
            return None;
        }
        let id = self.region.handle_id();
        let at = match thread_record::last(id).or_else(|| thread_record::held(id)) {
            Some(at) if at != 0 => at,
            _ => self.claim_and_keep(Some(h))?,
        };
        Taken::held(h, at)
    }

    /// Under the lock, after a free to the heap: gives the heap half of every full list
    /// of this process's cache (best effort, as a refill).
    pub(super) fn trim_own(&self, h: &Heap<'_>) {
        if let Some(t) = self.own_taken(h) {
            let _ = cache::trim(h, &t);
        }
    }

    /// Under the lock: gives back to the heap what this thread's cache record holds and
    /// what every record of the process that no thread holds holds; the bytes freed.
    fn give_back_own(&self, h: &Heap<'_>) -> Result<u64, AllocError> {
        let mut bytes = match self.own_taken(h) {
            Some(t) => cache::give_back_own(h, &t)?.bytes,
            None => 0,
        };
        if let Some(slot) = self.region.process_slot() {
            bytes += cache_table::give_back_unheld(h, slot)?.bytes;
        }
        Ok(bytes)
    }

    /// Gives back what the cache of registry slot `slot` holds, a dead process's: for
    /// the reclaimer of that slot. Waits for the pool lock until `deadline` (if any).
    ///
    /// # Errors
    ///
    /// [`AllocError::TimedOut`] at the deadline, [`AllocError::Corrupted`].
    pub(crate) fn give_back_cache(
        &self,
        slot: u32,
        deadline: Option<Instant>,
    ) -> Result<CacheGiven, AllocError> {
        self.with_heap_by(deadline, |h| cache_table::give_back_slot(h, slot))
    }

    /// The allocator's state kept with `region`'s handle, made on first use.
    fn ext(region: &Region) -> Option<&CacheExt> {
        region
            .ext_or_init(ExtLayer::Alloc, || Box::new(CacheExt::default()))
            .as_any()
            .downcast_ref::<CacheExt>()
    }

    /// The geometry and salt an earlier [`attach`](Self::attach) through this region
    /// handle checked, if any.
    pub(super) fn attached_before(region: &Region) -> Option<(Geometry, u64)> {
        Pool::ext(region)?.attached.get().copied()
    }

    /// Keeps what [`attach`](Self::attach) checked, for the handle's later attaches.
    pub(super) fn remember_attached(region: &Region, geo: Geometry, salt: u64) {
        if let Some(ext) = Pool::ext(region) {
            let _ = ext.attached.set((geo, salt));
        }
    }

    /// This handle without the block cache: its allocations and frees all go to the heap
    /// under the pool lock, where blocks are placed and merged as the module docs say.
    /// For a program that wants the heap's exact behaviour (a test of its placement, a
    /// pool too tight to leave blocks to one process); others keep the cache, which makes
    /// most small allocations several times faster.
    #[must_use]
    pub fn without_cache(mut self) -> Pool {
        self.cache = false;
        self
    }

    /// Gives the calling thread's cached blocks back to the pool, with those of every
    /// cache of this process that no thread holds (its threads that exited), so that
    /// other processes can have them and [`stats`](Self::stats) shows them free. Other
    /// live threads keep theirs. Waits for the pool lock as long as a live thread holds
    /// it. A block cache is kept per thread in pools of at least 512 KiB (or that may
    /// grow to it): small blocks a thread frees are kept for its next allocations, which
    /// then need no lock; they are given back by themselves when the process detaches,
    /// dies, or finds the pool full.
    ///
    /// # Errors
    ///
    /// [`AllocError::Corrupted`].
    pub fn give_back_cache_now(&self) -> Result<(), AllocError> {
        self.with_heap(|h| self.give_back_own(h).map(|_| ()))
    }
}

/// The allocator's state with a region handle: the pool's layout as the first attach
/// checked it, and the give-back of the handle's cache records when the handle goes.
#[derive(Default)]
struct CacheExt {
    attached: OnceLock<(Geometry, u64)>,
}

impl RegionExt for CacheExt {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn detach(&self, region: &Region) {
        give_back_cache_in(region);
    }
}

/// Gives back this process's cache in the pool of `region` as a detaching handle does:
/// only if the pool lock is to be had soon (a drop does not wait behind a stopped
/// holder); otherwise the records are marked left, and the pool flagged
/// (`CACHES_LEFT`) for the next holder of its lock to give them back. Either way no
/// thread holds the records any more: none can use this handle now.
fn give_back_cache_in(region: &Region) {
    let Some(slot) = region.process_slot() else {
        return;
    };
    let Ok((lock, heap)) = region_view(region) else {
        return;
    };
    cache_table::release_slot(&heap, slot);
    let Some(guard) = lock_soon(lock, false) else {
        // The next holder of the lock gives the blocks back.
        cache_table::leave_slot(&heap, slot);
        pause_point("alloc.cache.left.marked");
        cache_table::look_for_left(&heap);
        return;
    };
    let _ = locked_in(region, guard, &heap, false, |h| {
        cache_table::give_back_slot(h, slot)
    });
}
