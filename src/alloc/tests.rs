//! In-process tests of the pool on real regions.

use std::sync::Arc;

use super::layout::{word, LOCK_BYTES};
use super::*;
use crate::region::{Offset, Region, RegionName};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::ShmMutex;

/// Frees `off` in `pool`: these tests own every block of their pools and hold no view of
/// one while it is freed.
fn free(pool: &Pool, off: Offset) -> Result<(), AllocError> {
    // SAFETY: see above; offsets that are not live are refused before anything changes.
    unsafe { pool.free(off) }
}

fn region(tag: &str, size: u64) -> Arc<Region> {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = RegionName::new(format!(
        "shmval-test-alloc-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
    .unwrap();
    Arc::new(Region::create(&name, size).unwrap())
}

fn word_at(pool: &Pool, i: usize) -> &AtomicU64 {
    // SAFETY: the pool header's words are atomics the test reads; nothing plain lies there.
    unsafe {
        pool.region()
            .resolve(Offset::new(pool.offset().get() + LOCK_BYTES + 8 * i as u64))
    }
    .unwrap()
}

/// Leaves the pool lock held by a thread that has exited, as a killed process would.
fn die_holding_the_lock(pool: &Pool) {
    let p = pool.clone();
    std::thread::spawn(move || {
        let lock: &ShmMutex = p.region().at(p.offset()).unwrap();
        std::mem::forget(lock.lock());
    })
    .join()
    .unwrap();
}

#[test]
fn pool_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Pool>();
}

#[test]
fn a_fresh_pool_is_one_free_block() {
    let pool = Pool::create(region("fresh", 1 << 16)).unwrap();
    let s = pool.stats().unwrap();
    assert_eq!(s.used, 0);
    assert_eq!(s.free, s.capacity);
    assert_eq!(s.largest_free, s.capacity - BLOCK_HEADER);
    assert_eq!(s.free_blocks, 1);
    assert_eq!(s.live_allocations, 0);
    assert!(s.capacity > 60_000);
    pool.verify().unwrap();
}

#[test]
fn create_twice_is_refused_and_attach_sees_the_same_heap() {
    let r = region("attach", 1 << 16);
    let a = Pool::create(r.clone()).unwrap();
    assert!(matches!(
        Pool::create(r.clone()),
        Err(AllocError::AlreadyFormatted)
    ));
    let b = Pool::attach(r).unwrap();
    let off = a.alloc(100, 8).unwrap();
    assert_eq!(b.usable_size(off).unwrap(), 112);
    free(&b, off).unwrap();
    assert_eq!(a.stats().unwrap().used, 0);
}

#[test]
fn attach_checks_the_header() {
    let r = region("badhdr", 1 << 16);
    assert!(matches!(
        Pool::attach(r.clone()),
        Err(AllocError::BadMagic { found: 0 })
    ));
    let pool = Pool::create(r.clone()).unwrap();
    let fp = word_at(&pool, word::FINGERPRINT);
    fp.fetch_xor(1, Ordering::Relaxed);
    assert!(matches!(
        Pool::attach(r.clone()),
        Err(AllocError::LayoutMismatch { .. })
    ));
    fp.fetch_xor(1, Ordering::Relaxed);
    let end = word_at(&pool, word::HEAP_END);
    end.fetch_add(16, Ordering::Relaxed);
    let e = Pool::attach(r.clone()).unwrap_err();
    assert!(e.to_string().contains("heap end"), "{e}");
    end.fetch_sub(16, Ordering::Relaxed);
    Pool::attach(r).unwrap();
}

#[test]
fn a_region_handle_checks_the_header_once() {
    let r = region("once", 1 << 16);
    let pool = Pool::create(r.clone()).unwrap();
    Pool::attach(r.clone()).unwrap();
    let fp = word_at(&pool, word::FINGERPRINT);
    fp.fetch_xor(1, Ordering::Relaxed);
    // The same handle: what its first attach checked stands.
    let again = Pool::attach(r.clone()).unwrap();
    let off = again.alloc(16, 8).unwrap();
    free(&again, off).unwrap();
    // Another handle of the region checks for itself.
    let other = Arc::new(Region::attach(r.name()).unwrap());
    assert!(matches!(
        Pool::attach(other),
        Err(AllocError::LayoutMismatch { .. })
    ));
    fp.fetch_xor(1, Ordering::Relaxed);
}

#[test]
fn blocks_are_aligned_sized_and_disjoint() {
    let pool = Pool::create(region("align", 1 << 16)).unwrap();
    let mut live: Vec<(u64, u64)> = Vec::new();
    for (i, align) in [1, 2, 4, 8, 16, 32, 64, 64, 32, 1].into_iter().enumerate() {
        let size = 1 + 37 * i as u64;
        let off = pool.alloc(size, align).unwrap();
        assert_eq!(off.get() % align.max(16), 0);
        let usable = pool.usable_size(off).unwrap();
        assert!(usable >= size);
        for &(o, u) in &live {
            assert!(off.get() + usable <= o || o + u <= off.get());
        }
        live.push((off.get(), usable));
        pool.verify().unwrap();
    }
    assert!(matches!(
        pool.alloc(8, 128),
        Err(AllocError::BadAlign { align: 128 })
    ));
    assert!(matches!(
        pool.alloc(8, 3),
        Err(AllocError::BadAlign { align: 3 })
    ));
    assert!(matches!(
        pool.alloc(8, 0),
        Err(AllocError::BadAlign { align: 0 })
    ));
    for (o, _) in live {
        free(&pool, Offset::new(o)).unwrap();
        pool.verify().unwrap();
    }
    assert_eq!(pool.stats().unwrap().free_blocks, 1);
}

#[test]
fn bad_frees_are_errors_and_change_nothing() {
    let pool = Pool::create(region("badfree", 1 << 16)).unwrap();
    let a = pool.alloc(64, 8).unwrap();
    let b = pool.alloc(64, 8).unwrap();
    let c = pool.alloc(64, 8).unwrap();
    let before = pool.stats().unwrap();
    for off in [
        0,
        8,
        16,
        a.get() + 16,
        a.get() + 1,
        1 << 20,
        u64::MAX,
        u64::MAX - 15,
    ] {
        assert!(
            matches!(
                free(&pool, Offset::new(off)),
                Err(AllocError::InvalidOffset { .. })
            ),
            "{off:#x}"
        );
    }
    free(&pool, b).unwrap();
    assert!(matches!(free(&pool, b), Err(AllocError::DoubleFree { .. })));
    // Merged into its free predecessor: its header is a tombstone.
    free(&pool, c).unwrap();
    assert!(matches!(free(&pool, c), Err(AllocError::DoubleFree { .. })));
    assert!(matches!(
        pool.usable_size(c),
        Err(AllocError::DoubleFree { .. })
    ));
    assert_ne!(pool.stats().unwrap(), before);
    pool.verify().unwrap();
    free(&pool, a).unwrap();
    assert_eq!(pool.stats().unwrap().free_blocks, 1);
    assert!(!pool.is_poisoned());
}

#[test]
fn out_of_memory_reports_the_largest_free_block_exactly() {
    let pool = Pool::create(region("oom", 1 << 16)).unwrap();
    let cap = pool.stats().unwrap().capacity;
    assert!(matches!(
        pool.alloc(cap, 1),
        Err(AllocError::TooLarge { .. })
    ));
    assert!(matches!(
        pool.alloc(u64::MAX, 1),
        Err(AllocError::TooLarge { .. })
    ));
    let mut offs = Vec::new();
    while let Ok(o) = pool.alloc(1000, 8) {
        offs.push(o);
    }
    let s = pool.stats().unwrap();
    match pool.alloc(1000, 8) {
        Err(AllocError::OutOfMemory {
            requested: 1000,
            largest_free,
        }) => assert_eq!(largest_free, s.largest_free),
        other => panic!("{other:?}"),
    }
    // The largest free block is usable to its last byte.
    if s.largest_free > 0 {
        let o = pool.alloc(s.largest_free, 1).unwrap();
        assert_eq!(pool.stats().unwrap().largest_free, 0);
        free(&pool, o).unwrap();
    }
    // Free every other block: the holes are 1008 bytes of payload each.
    for o in offs.iter().step_by(2) {
        free(&pool, *o).unwrap();
    }
    assert!(pool.stats().unwrap().largest_free >= 1008);
    let o = pool.alloc(1008, 16).unwrap();
    free(&pool, o).unwrap();
    for o in offs.iter().skip(1).step_by(2) {
        free(&pool, *o).unwrap();
    }
    let s = pool.stats().unwrap();
    assert_eq!((s.used, s.free_blocks), (0, 1));
    pool.verify().unwrap();
}

#[test]
fn a_dead_holder_is_repaired_by_the_next_operation() {
    let pool = Pool::create(region("repair", 1 << 16)).unwrap();
    let a = pool.alloc(100, 8).unwrap();
    let b = pool.alloc(100, 8).unwrap();
    let _c = pool.alloc(100, 8).unwrap();
    free(&pool, b).unwrap();
    // Scramble everything derived: lists, bitmaps, counters.
    for i in [word::FL_BITMAP, word::USED, word::LIVE, word::FREE_BLOCKS] {
        word_at(&pool, i).store(12345, Ordering::Relaxed);
    }
    word_at(&pool, word::HIGH_WATER).store(99_999, Ordering::Relaxed);
    die_holding_the_lock(&pool);
    let d = pool.alloc(50, 8).unwrap();
    pool.verify().unwrap();
    let s = pool.stats().unwrap();
    assert_eq!(s.live_allocations, 3);
    assert_eq!(
        s.high_water, 99_999,
        "the high-water mark keeps the larger value"
    );
    free(&pool, a).unwrap();
    free(&pool, d).unwrap();
    pool.verify().unwrap();
}

#[test]
fn a_broken_chain_poisons_the_pool() {
    let pool = Pool::create(region("poison", 1 << 16)).unwrap();
    let a = pool.alloc(100, 8).unwrap();
    // Overwrite a's size word, as a stray write from a neighbour would.
    let size: &AtomicU64 = pool.region().at(Offset::new(a.get() - 16)).unwrap();
    size.store(24, Ordering::Relaxed);
    die_holding_the_lock(&pool);
    assert!(matches!(
        pool.alloc(10, 8),
        Err(AllocError::Corrupted { .. })
    ));
    assert!(pool.is_poisoned());
    assert!(matches!(free(&pool, a), Err(AllocError::Corrupted { .. })));
    assert!(matches!(pool.stats(), Err(AllocError::Corrupted { .. })));
}

#[test]
fn an_overwritten_neighbour_header_is_found_and_poisons() {
    let pool = Pool::create(region("neighbour", 1 << 16)).unwrap();
    let a = pool.alloc(100, 8).unwrap();
    let b = pool.alloc(100, 8).unwrap();
    let check: &AtomicU64 = pool.region().at(Offset::new(b.get() - 8)).unwrap();
    check.store(0, Ordering::Relaxed);
    assert!(matches!(free(&pool, a), Err(AllocError::Corrupted { .. })));
    assert!(pool.is_poisoned());
}

#[test]
fn the_header_size_is_as_documented() {
    let pool = Pool::create(region("hdrsize", 1 << 20)).unwrap();
    let s = pool.stats().unwrap();
    // Less the block that ends the heap (32 bytes).
    let header = (1 << 20) - s.capacity - 32 - pool.region().data_start().get();
    // 16-byte lock + (14 + 33 * 12) words, rounded up to 64.
    assert_eq!(header, (16 + 8 * (14 + 33 * 12) as u64).div_ceil(64) * 64);
}

#[test]
fn used_blocks_lists_exactly_the_live_allocations() {
    let pool = Pool::create(region("used-blocks", 1 << 16)).unwrap();
    assert_eq!(pool.used_blocks().unwrap(), vec![]);
    let a = pool.alloc(10, 16).unwrap();
    let b = pool.alloc(300, 64).unwrap();
    let c = pool.alloc(40, 16).unwrap();
    free(&pool, a).unwrap();
    let blocks = pool.used_blocks().unwrap();
    let mut want = vec![b, c];
    want.sort_by_key(|o| o.get());
    assert_eq!(blocks.iter().map(|b| b.offset).collect::<Vec<_>>(), want);
    for b in &blocks {
        assert_eq!(b.size, pool.usable_size(b.offset).unwrap());
        assert!(!b.object);
    }
    let s = pool.stats().unwrap();
    assert_eq!(blocks.len() as u64, s.live_allocations);
    assert_eq!(
        blocks.iter().map(|b| b.size + BLOCK_HEADER).sum::<u64>(),
        s.used
    );
}

/// What a pool's use comes back to when everything is freed (the high-water mark stays).
fn at_rest_of(s: PoolStats) -> (u64, u64, u64, u64) {
    (s.used, s.live_allocations, s.free_blocks, s.deferred_frees)
}

fn at_rest(pool: &Pool) -> (u64, u64, u64, u64) {
    at_rest_of(pool.stats().unwrap())
}

/// Holds the pool lock in another thread until the returned sender is dropped, as a
/// process stopped inside an operation would.
fn hold_the_lock(pool: &Pool) -> std::sync::mpsc::Sender<()> {
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let p = pool.clone();
    std::thread::spawn(move || {
        let lock: &ShmMutex = p.region().at(p.offset()).unwrap();
        let _g = lock.lock();
        held_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    held_rx.recv().unwrap();
    release_tx
}

#[test]
fn a_block_owns_its_bytes_and_goes_back_when_dropped() {
    let pool = Pool::create(region("block", 1 << 16)).unwrap();
    let base = pool.stats().unwrap();
    let mut b = pool.alloc_block(100, 64).unwrap();
    assert_eq!(b.offset().get() % 64, 0);
    assert!(b.len() >= 100);
    b.as_bytes_mut().fill(7);
    assert!(b.as_bytes().iter().all(|&x| x == 7));
    assert_eq!(pool.stats().unwrap().live_allocations, 1);
    drop(b);
    assert_eq!(at_rest(&pool), at_rest_of(base));
    // Given up as an offset and taken back.
    let off = pool.alloc_block(10, 16).unwrap().into_offset();
    assert_eq!(pool.stats().unwrap().live_allocations, 1);
    // SAFETY: the offset was given up just above and is taken back once.
    let b = unsafe { Block::from_offset(&pool, off) }.unwrap();
    b.free().unwrap();
    assert_eq!(at_rest(&pool), at_rest_of(base));
    pool.verify().unwrap();
}

#[test]
fn a_drop_behind_a_stopped_lock_holder_is_deferred_then_freed() {
    let pool = Pool::create(region("deferred", 1 << 16)).unwrap();
    let base = pool.stats().unwrap();
    let blocks: Vec<Block> = (0..3)
        .map(|i| pool.alloc_block(16 + 40 * i, 16).unwrap())
        .collect();
    let release = hold_the_lock(&pool);
    // Each drop returns although the lock stays held: its free is deferred.
    drop(blocks);
    drop(release);
    let s = pool.stats().unwrap();
    assert_eq!((s.deferred_frees, s.live_allocations), (3, 3), "{s:?}");
    pool.verify().unwrap();
    // The next allocation frees them first.
    let b = pool.alloc_block(16, 16).unwrap();
    let s = pool.stats().unwrap();
    assert_eq!((s.deferred_frees, s.live_allocations), (0, 1), "{s:?}");
    drop(b);
    assert_eq!(at_rest(&pool), at_rest_of(base));
    pool.verify().unwrap();
}

#[test]
fn a_holder_killed_while_freeing_a_deferred_block_loses_nothing() {
    let pool = Pool::create(region("draining", 1 << 16)).unwrap();
    let base = pool.stats().unwrap();
    let keep = pool.alloc_block(32, 16).unwrap();
    let a = pool.alloc_block(48, 16).unwrap();
    // `a` goes on the deferred list, as a drop behind a held lock does.
    let release = hold_the_lock(&pool);
    drop(a);
    drop(release);
    let s = pool.stats().unwrap();
    assert_eq!(s.deferred_frees, 1);
    // A drainer that took it off the list and died before freeing it: the list is empty,
    // DRAINING names the block, and the lock's owner is dead.
    let d = word_at(&pool, word::DEFERRED).swap(0, Ordering::SeqCst);
    word_at(&pool, word::DRAINING).store(d, Ordering::SeqCst);
    die_holding_the_lock(&pool);
    let s = pool.stats().unwrap();
    assert_eq!((s.deferred_frees, s.live_allocations), (0, 1), "{s:?}");
    assert_eq!(word_at(&pool, word::DRAINING).load(Ordering::SeqCst), 0);
    drop(keep);
    assert_eq!(pool.stats().unwrap().used, base.used);
    pool.verify().unwrap();
}

#[test]
fn the_previous_free_flag_follows_every_change() {
    // verify() checks each block's flag against the chain; exercise splits, merges on both
    // sides, alignment gaps and a full free.
    let pool = Pool::create(region("prev-free", 1 << 16)).unwrap();
    let offs: Vec<Offset> = (0..12)
        .map(|i| pool.alloc(16 + 32 * (i % 4), 16 << (i % 3)).unwrap())
        .collect();
    pool.verify().unwrap();
    for i in [1, 3, 2, 7, 5, 6, 0, 11, 9, 10, 8, 4] {
        free(&pool, offs[i]).unwrap();
        pool.verify().unwrap();
        let a = pool.alloc(8, 64).unwrap();
        pool.verify().unwrap();
        free(&pool, a).unwrap();
        pool.verify().unwrap();
    }
    assert_eq!(pool.stats().unwrap().free_blocks, 1);
}
