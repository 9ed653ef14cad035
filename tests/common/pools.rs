//! Pools for the shared-value tests, and the words of their regions.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use shmval::alloc::{Pool, PoolStats};
use shmval::region::{Offset, Region};

use super::TestName;

/// A new pool of `size` bytes in a region named after `tag`, removed when the name drops.
pub fn new_pool(tag: &str, size: u64) -> (TestName, Pool) {
    let name = TestName::new(tag);
    let region = Arc::new(Region::create(&name, size).unwrap());
    (name, Pool::create(region).unwrap())
}

/// The stats that must come back after everything is freed (the high-water mark stays).
pub fn baseline(pool: &Pool) -> (u64, u64, u64, u64) {
    let s: PoolStats = pool.stats().unwrap();
    (s.used, s.live_allocations, s.free_blocks, s.largest_free)
}

/// The region word at byte offset `at`, as another process would write it.
pub fn word(pool: &Pool, at: u64) -> &AtomicU64 {
    // SAFETY: the tests use these words to corrupt values deliberately; no plain view (string or
    // array slice) of them lives while they are written.
    unsafe { pool.region().resolve(Offset::new(at)) }.unwrap()
}

/// The usable size of the live block at `off`, as the pool lists it.
pub fn usable_size(pool: &Pool, off: Offset) -> u64 {
    pool.used_blocks()
        .unwrap()
        .into_iter()
        .find(|b| b.offset == off)
        .expect("a live block")
        .size
}
