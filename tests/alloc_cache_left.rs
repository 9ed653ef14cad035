//! A process that detaches while another holds the pool lock does not wait behind it: it
//! leaves its block cache marked in the pool, and the next holder of the lock gives the
//! cache back, also after a holder killed while giving it back, and after the detacher
//! itself is killed once it marked its cache left. Either way the pool ends at its
//! baseline, with no block and no record left cached.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::held::{assert_held_by, in_use};
use common::{role_entry, spawn_paused, TestName};
use shmval::alloc::Pool;
use shmval::fault::Notice;
use shmval::region::{AttachOptions, Region, RegionName};
use shmval::sides::ShmMain;

const BYTES: u64 = 1 << 20;

/// args: region, pause point, marker file. Attaches to the pool, fills a block cache,
/// says so by making the marker file, waits for another process to hold the pool lock,
/// arms the point and detaches: it pauses while leaving its cache.
fn detacher(args: &[String]) {
    let region = Arc::new(Region::attach(&RegionName::new(args[0].clone()).unwrap()).unwrap());
    let pool = Pool::attach(region.clone()).unwrap();
    fill_cache(&pool);
    std::fs::write(&args[2], b"filled").unwrap();
    // This process holds no lock now: a holder is another process.
    assert!(
        common::wait_until(Duration::from_secs(30), || pool.lock_owner().is_some()),
        "nobody took the pool lock"
    );
    shmval::fault::arm(&args[1]);
    drop(pool);
    drop(region);
    panic!("the detach did not pause at {}", args[1]);
}

/// Allocates and frees a few small blocks of several sizes: they stay in this thread's
/// block cache.
fn fill_cache(pool: &Pool) {
    let blocks: Vec<_> = (0..16)
        .map(|i| pool.alloc(16 + 16 * (i % 4), 16).unwrap())
        .collect();
    for b in blocks {
        // SAFETY: allocated above, used by nothing.
        unsafe { pool.free(b) }.unwrap();
    }
}

/// args: region, pause point. Attaches to the pool, arms the point and takes the pool
/// lock: by an allocation too large for any cache (paused inside it), or by a look at the
/// pool's figures (which gives back what was left on the way).
fn lock_taker(args: &[String]) {
    let region = Region::attach(&RegionName::new(args[0].clone()).unwrap()).unwrap();
    let pool = Pool::attach(Arc::new(region)).unwrap();
    shmval::fault::arm(&args[1]);
    if args[1] == "alloc.unlinked" {
        let r = pool.alloc(4096, 16);
        panic!("the allocation did not pause: {r:?}");
    }
    let r = pool.stats();
    panic!("the look did not pause at {}: {r:?}", args[1]);
}

#[test]
fn child_role() {
    role_entry(&[("lock_taker", lock_taker), ("detacher", detacher)]);
}

/// What a pool looks like settled: its bytes and blocks in use, what its caches hold, and
/// its free space (free blocks, largest).
type Shape = ((u64, u64), u64, (u64, u64));

fn shape(pool: &Pool) -> Shape {
    let s = pool.stats().unwrap();
    (in_use(pool), s.cached, (s.free_blocks, s.largest_free))
}

/// A region `name` with a pool whose own cache was given back, and the pool's shape.
fn start(name: &TestName) -> (ShmMain, Shape) {
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    main.pool().give_back_cache_now().unwrap();
    let base = shape(main.pool());
    (main, base)
}

/// Asserts the pool is back at `base`, whole, with nothing recovery would doubt.
fn assert_back(main: &ShmMain, base: Shape) {
    let pool = main.pool();
    assert_eq!(shape(pool), base);
    pool.verify().unwrap();
    let r = main.recover();
    assert_eq!(r.total.suspects, 0, "{r:?}");
}

/// A second handle of region `name` in this process (a registry slot of its own) whose
/// thread fills a block cache, then detaches while a child holds the pool lock, paused.
/// Returns the holder, still paused, and checks the cache was left, not waited for.
fn leave_a_cache(name: &TestName, pool: &Pool) -> common::ChildGuard {
    let other = Arc::new(AttachOptions::new().attach(name).unwrap());
    let p = Pool::attach(other.clone()).unwrap();
    fill_cache(&p);
    let holder = spawn_paused(
        "lock_taker",
        &[name.as_str(), "alloc.unlinked"],
        "alloc.unlinked",
    );
    assert_held_by(pool.lock_owner(), holder.pid(), "the pool lock");
    let t = Instant::now();
    drop(p);
    drop(other);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the detach waited {:?} behind the held lock",
        t.elapsed()
    );
    holder
}

#[test]
fn a_cache_left_by_a_process_detaching_behind_a_held_lock_comes_back_at_the_next_lock() {
    let name = TestName::new("cache-left");
    let (main, base) = start(&name);
    let pool = main.pool();
    let holder = leave_a_cache(&name, pool);
    holder.kill();
    // The next holder (this look) repairs after the dead holder and gives the cache back.
    assert_back(&main, base);
}

#[test]
fn a_holder_killed_giving_back_a_cache_left_leaves_it_to_the_next() {
    let name = TestName::new("cache-left-kill");
    let (main, base) = start(&name);
    let pool = main.pool();
    let holder = leave_a_cache(&name, pool);
    holder.kill();
    // The next holder dies giving the cache back, after its first record.
    let point = "alloc.cache.left.given";
    let taker = spawn_paused("lock_taker", &[name.as_str(), point], point);
    taker.kill();
    assert_back(&main, base);
}

#[test]
fn a_process_killed_after_marking_its_cache_left_loses_nothing() {
    let name = TestName::new("cache-left-marked");
    let (main, base) = start(&name);
    let marker = std::env::temp_dir().join(format!("{}.filled", name.as_str()));
    let _ = std::fs::remove_file(&marker);
    let point = "alloc.cache.left.marked";
    let notice = Notice::new().unwrap();
    let detacher = common::spawn_role_env(
        "detacher",
        &[name.as_str(), point, marker.to_str().unwrap()],
        &[notice.env()],
    );
    assert!(
        common::wait_until(Duration::from_secs(30), || marker.exists()),
        "the detacher did not fill its cache"
    );
    let holder = spawn_paused(
        "lock_taker",
        &[name.as_str(), "alloc.unlinked"],
        "alloc.unlinked",
    );
    let r = notice
        .wait(Duration::from_secs(30))
        .expect("the detacher reached its point");
    assert_eq!((r.point.as_str(), r.pid), (point, detacher.pid()));
    detacher.kill();
    holder.kill();
    let _ = std::fs::remove_file(&marker);
    // The dead detacher's slot is reclaimed, and what it marked is given back.
    main.recover();
    assert_back(&main, base);
}
