//! The pool's entry points to this process's block cache (see `cache`).

use std::sync::OnceLock;
use std::time::Instant;

use super::cache::{self, CacheGiven, Taken, MAX_BLOCK, MIN_CAPACITY};
use super::deferred::lock_soon;
use super::error::AllocError;
use super::heap::region_view;
use super::heap::Heap;
use super::layout::{block_size, word, Geometry, GRANULE};
use super::pool::{locked_in, Pool, UNKNOWN};
use crate::region::{ExtLayer, Offset, Region, RegionExt};
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};

impl Pool {
    /// This process's cache record, made on first use (if the pool lock is free then:
    /// never waited for, so a call with a deadline, or a drop, does not wait for it here):
    /// `None` in a small pool, in a process without a registry slot (a forked child), if
    /// the pool has no room for the record, or while the record is not made.
    #[inline]
    fn cache_at(&self) -> Option<u64> {
        if !self.region.made_in_this_process() {
            return None;
        }
        let mut at = self.cache.load(Relaxed);
        if at == UNKNOWN {
            at = self.shared_cache_at()?;
            self.cache.store(at, Relaxed);
        }
        (at != 0).then_some(at)
    }

    /// The record's offset as every pool handle of this region handle knows it (a value's
    /// handle carries a copy of its pool made before the record was): made on first use.
    #[inline]
    fn shared_cache_at(&self) -> Option<u64> {
        let known = Pool::ext(&self.region).map(|c| &c.at);
        match known.map(|k| k.load(Relaxed)) {
            Some(at) if at != UNKNOWN => Some(at),
            _ => {
                let at = self.make_cache()?;
                if let Some(k) = known {
                    k.store(at, Relaxed);
                }
                Some(at)
            }
        }
    }

    /// The record's offset (0: this handle keeps no cache), or `None` if the pool lock is
    /// busy now.
    #[cold]
    fn make_cache(&self) -> Option<u64> {
        // The most the heap grows to.
        if self.region.max_len().saturating_sub(self.geo.heap_start) < MIN_CAPACITY {
            return Some(0);
        }
        let Some(slot) = self.region.process_slot() else {
            return Some(0);
        };
        let slots = self.region.registry_slots();
        let (lock, heap) = self.view().ok()?;
        let guard = lock_soon(lock, true)?;
        let made = locked_in(&self.region, guard, &heap, true, |h| {
            cache::ensure_record(h, slots, slot)
        });
        Some(made.ok().flatten().unwrap_or(0))
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
        let t = Taken::take(&heap, at)?;
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
        let Some(t) = Taken::take(&heap, at) else {
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

    /// Under the lock: this process's cache record, if this handle has one and no other
    /// thread of the process holds it.
    fn own_taken<'h>(&self, h: &Heap<'h>) -> Option<Taken<'h>> {
        let at = self.cache.load(Relaxed);
        if at == 0 || at == UNKNOWN || !self.region.made_in_this_process() {
            return None;
        }
        Taken::take(h, at)
    }

    /// Under the lock, after a free to the heap: gives the heap half of every full list
    /// of this process's cache (best effort, as a refill).
    pub(super) fn trim_own(&self, h: &Heap<'_>) {
        if let Some(t) = self.own_taken(h) {
            let _ = cache::trim(h, &t);
        }
    }

    /// Under the lock: gives this process's cache back to the heap (unless another of its
    /// threads holds it); the bytes freed.
    fn give_back_own(&self, h: &Heap<'_>) -> Result<u64, AllocError> {
        let Some(t) = self.own_taken(h) else {
            return Ok(0);
        };
        Ok(cache::give_back_own(h, &t)?.bytes)
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
        self.with_heap_by(deadline, |h| cache::give_back_slot(h, slot))
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
    pub fn without_cache(self) -> Pool {
        self.cache.store(0, Relaxed);
        self
    }

    /// Gives this process's cached blocks back to the pool, so that other processes can
    /// have them and [`stats`](Self::stats) shows them free. Waits for the pool lock as
    /// long as a live thread holds it. A block cache is kept per process in pools of at
    /// least 512 KiB (or that may grow to it): small blocks a process frees are kept for
    /// its next allocations, which then need no lock; they are given back by themselves
    /// when the process detaches, dies, or finds the pool full.
    ///
    /// # Errors
    ///
    /// [`AllocError::Corrupted`].
    pub fn give_back_cache_now(&self) -> Result<(), AllocError> {
        self.with_heap(|h| self.give_back_own(h).map(|_| ()))
    }
}

/// The allocator's state with a region handle: the offset of the process's cache record
/// once known (shared by the handle's pools), the pool's layout as the first attach
/// checked it, and the give-back when the handle goes.
struct CacheExt {
    at: AtomicU64,
    attached: OnceLock<(Geometry, u64)>,
}

impl Default for CacheExt {
    fn default() -> CacheExt {
        CacheExt {
            at: AtomicU64::new(UNKNOWN),
            attached: OnceLock::new(),
        }
    }
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
/// holder); otherwise the blocks stay with the registry slot, for its next process or
/// its reclaimer.
fn give_back_cache_in(region: &Region) {
    let Some(slot) = region.process_slot() else {
        return;
    };
    let Ok((lock, heap)) = region_view(region) else {
        return;
    };
    let Some(guard) = lock_soon(lock, false) else {
        return;
    };
    let _ = locked_in(region, guard, &heap, false, |h| {
        cache::give_back_slot(h, slot)
    });
}
