//! Deferred frees: a drop that cannot have the pool lock soon hands its block to a list
//! in the pool header, which the next holder of the lock frees (see the module docs).

use std::time::Duration;

use super::error::AllocError;
use super::heap::region_view;
use super::heap::Heap;
use super::layout::word;
use crate::fault::pause_point;
use crate::region::{Offset, Region};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{ShmMutex, ShmMutexGuard};

/// Hands the used block at `off` of the pool in `region` to the pool's deferred frees
/// (see [`Pool::free_soon`](super::Pool::free_soon)), given only the region: for a region handle giving back what
/// it kept, as it goes, when no [`Pool`](super::Pool) handle is left.
///
/// # Errors
///
/// As for [`Pool::free`](super::Pool::free); [`AllocError::BadMagic`] if the region holds no pool.
///
/// # Safety
///
/// As for [`Pool::free`](super::Pool::free).
pub(crate) unsafe fn defer_free_in(region: &Region, off: Offset) -> Result<(), AllocError> {
    let (_, heap) = region_view(region)?;
    defer_free(&heap.current()?, off)
}

/// How long a drop waits for the pool lock before it defers its free.
const DEFER_AFTER: Duration = Duration::from_micros(200);

/// Puts the used block at `off` on the deferred list: its first payload word links to the
/// old head, then one compare-and-swap makes it the head. Needs no lock: only the lock
/// holder takes blocks off, and pushes only ever replace the head.
pub(super) fn defer_free(heap: &Heap<'_>, off: Offset) -> Result<(), AllocError> {
    // Only a block of this pool's: a link written into anything else would be corruption.
    heap.used_block(off)?;
    let head = heap.word(word::DEFERRED)?;
    let link = heap.resolve::<AtomicU64>(off.get())?;
    let mut old = head.load(Ordering::Relaxed);
    loop {
        link.store(old, Ordering::Relaxed);
        // SYNC POINT: release, so the drainer that takes the block (acquire) reads the
        // link stored above.
        match head.compare_exchange_weak(old, off.get(), Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(now) => old = now,
        }
    }
}

/// Frees every deferred block, one at a time: each is named in `DRAINING` while it is taken
/// off the list and freed, so a holder killed in between loses nothing
/// ([`finish_draining`](super::recover::finish_draining)). Called under the lock.
#[inline]
pub(super) fn drain_deferred(heap: &Heap<'_>) -> Result<(), AllocError> {
    let head = heap.word(word::DEFERRED)?;
    // SYNC POINT: pairs with the release push in `defer_free`.
    if head.load(Ordering::Acquire) == 0 {
        return Ok(());
    }
    drain_deferred_slow(heap, head)
}

#[cold]
fn drain_deferred_slow(heap: &Heap<'_>, head: &AtomicU64) -> Result<(), AllocError> {
    let mut budget = heap.geo.capacity() / super::MIN_BLOCK + 1;
    loop {
        // SYNC POINT: pairs with the release push in `defer_free`.
        let b = head.load(Ordering::Acquire);
        if b == 0 {
            return Ok(());
        }
        budget = budget
            .checked_sub(1)
            .ok_or_else(|| AllocError::corrupted("the deferred frees loop"))?;
        heap.used_block(Offset::new(b))
            .map_err(|e| AllocError::corrupted(format!("deferred free of {b:#x}: {e}")))?;
        let next = heap.resolve::<AtomicU64>(b)?.load(Ordering::Relaxed);
        heap.store(word::DRAINING, b)?;
        if head
            .compare_exchange(b, next, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // A push came in meanwhile: start again from the new head.
            heap.store(word::DRAINING, 0)?;
            continue;
        }
        pause_point("alloc.deferred.taken");
        heap.free(Offset::new(b))?;
        heap.store(word::DRAINING, 0)?;
    }
}

/// The pool lock as a drop takes it: at once if it is free; else, unless `hurry`, within
/// [`DEFER_AFTER`] while a live thread holds it; `None` otherwise. The clock is read only
/// when the lock is busy.
pub(super) fn lock_soon(lock: &ShmMutex, hurry: bool) -> Option<ShmMutexGuard<'_>> {
    match lock.try_lock_free() {
        Some(g) => Some(g),
        None if hurry => None,
        None => lock.lock_timeout(DEFER_AFTER).ok(),
    }
}
