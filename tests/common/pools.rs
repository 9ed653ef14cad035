//! Pools for the shared-value tests, and the words of their regions.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use shmval::alloc::{Pool, PoolStats};
use shmval::region::{CreateOptions, Offset, Region};

use super::TestName;

/// A new pool of `size` bytes in a region named after `tag`, removed when the name drops.
/// The region has no process registry, so handles are not recorded in a ledger: the pool
/// holds exactly the values (see [`new_recorded_pool`] for one that records).
pub fn new_pool(tag: &str, size: u64) -> (TestName, Pool) {
    let name = TestName::new(tag);
    let region = Arc::new(
        CreateOptions::new()
            .registry(0)
            .create(&name, size)
            .unwrap(),
    );
    (name, Pool::create(region).unwrap())
}

/// A new pool of `size` bytes whose region has a registry: this process's handles are
/// recorded in its ledger, whose chunks [`recorded_use`] leaves out.
#[allow(dead_code)]
pub fn new_recorded_pool(tag: &str, size: u64) -> (TestName, Pool) {
    let name = TestName::new(tag);
    let region = Arc::new(Region::create(&name, size).unwrap());
    (name, Pool::create(region).unwrap())
}

/// The pool's use (bytes, blocks) but for this process's ledger chunks.
#[allow(dead_code)]
pub fn recorded_use(pool: &Pool) -> (u64, u64) {
    let s: PoolStats = pool.stats().unwrap();
    let k = shmval::ledger::kept(pool);
    (s.used - k.bytes, s.live_allocations - k.blocks)
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
