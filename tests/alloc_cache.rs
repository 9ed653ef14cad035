//! A thread's block cache: the small blocks it frees come back to it without the pool
//! lock (also while another process holds that lock, stopped), for each of several
//! threads, and to the next thread once it exits; they count as cached, not used; freeing
//! one twice is an error; a full pool takes them back; a detaching process gives them
//! back; and a process killed at every step of the cache's protocol (also with a second
//! thread holding a cache) leaves the pool at its baseline once a survivor recovers.

// std atomics are fine here; the crate's loom shim is for library code.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::held::in_use;
use common::kills::settled;
use common::{role_entry, spawn_paused, wait_until, TestName};
use shmval::alloc::{AllocError, Pool};
use shmval::region::{Offset, Region, RegionName};
use shmval::sides::ShmMain;
use shmval::{val, PoolExt};

const BYTES: u64 = 1 << 20;

/// args: region, pause point, action. Attaches to the pool (as a registered process of
/// its own) and takes one step of the cache's protocol, pausing at the point.
fn cache_step(args: &[String]) {
    let region = Arc::new(Region::attach(&RegionName::new(args[0].clone()).unwrap()).unwrap());
    let pool = Pool::attach(region.clone()).unwrap();
    let arm = || shmval::fault::arm(&args[1]);
    match args[2].as_str() {
        // A free pushed on the cache.
        "push" => {
            let off = pool.alloc(16, 16).unwrap();
            arm();
            // SAFETY: allocated above, used by nothing.
            let _ = unsafe { pool.free(off) };
        }
        // A free pushed on the cache while another thread holds a cache of its own, with
        // blocks in it.
        "push-two-threads" => {
            let other = pool.clone();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let offs: Vec<_> = (0..8).map(|_| other.alloc(16, 16).unwrap()).collect();
                for off in offs {
                    // SAFETY: allocated above, used by nothing.
                    unsafe { other.free(off) }.unwrap();
                }
                tx.send(()).unwrap();
                loop {
                    std::thread::park();
                }
            });
            rx.recv().unwrap();
            let off = pool.alloc(16, 16).unwrap();
            arm();
            // SAFETY: allocated above, used by nothing.
            let _ = unsafe { pool.free(off) };
        }
        // An allocation popped from it.
        "pop" => {
            let off = pool.alloc(16, 16).unwrap();
            // SAFETY: as above.
            unsafe { pool.free(off) }.unwrap();
            arm();
            let _ = pool.alloc(16, 16);
        }
        // The cache given back to the heap, under the pool lock.
        "give-back" => {
            let offs: Vec<_> = (0..8).map(|_| pool.alloc(16, 16).unwrap()).collect();
            for off in offs {
                // SAFETY: as above.
                unsafe { pool.free(off) }.unwrap();
            }
            arm();
            let _ = pool.give_back_cache_now();
        }
        // The cache's table or record made, under the pool lock.
        "make" => {
            arm();
            let _ = pool.alloc(16, 16);
        }
        // An empty list filled from the heap, under the pool lock, by a value's
        // allocation (recorded: a raw allocation's block is lost with a process killed
        // before it returns, cache or not).
        "refill" => {
            // The record made first (a free pushes).
            let off = pool.alloc(150, 16).unwrap();
            // SAFETY: allocated above, used by nothing.
            unsafe { pool.free(off) }.unwrap();
            arm();
            let _ = pool.share(&val!({"a": 1}));
        }
        // A full list trimmed to half by a value's drop that found it full.
        "trim" => {
            let vs: Vec<_> = (0..100)
                .map(|i| pool.share(&val!({"a": i})).unwrap())
                .collect();
            arm();
            drop(vs);
        }
        // A value's block popped for a share: the allocation recorded in the ledger.
        "share" => {
            drop(pool.share(&val!({"a": 1})).unwrap());
            arm();
            let _ = pool.share(&val!({"a": 1}));
        }
        // A value's block pushed by its drop: the free walk's recorded free.
        "drop" => {
            let v = pool.share(&val!({"a": 1})).unwrap();
            arm();
            drop(v);
        }
        // A detaching process giving its cache and its record back.
        "detach" => {
            let off = pool.alloc(16, 16).unwrap();
            // SAFETY: as above.
            unsafe { pool.free(off) }.unwrap();
            arm();
            drop(pool);
            drop(region);
        }
        other => panic!("unknown action {other}"),
    }
    panic!("{} did not pause at {}", args[2], args[1]);
}

#[test]
fn child_role() {
    role_entry(&[("cache_step", cache_step)]);
}

/// Kills a process at `point` inside `action`, and checks that the survivor's recovery
/// brings the pool back to its baseline with nothing counted as a suspect.
fn kill_at(tag: &str, action: &str, point: &str) {
    let name = TestName::new(tag);
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let pool = main.pool();
    let base = settled(pool);
    pool.give_back_cache_now().unwrap();
    // This process's cache record and the table of records.
    let base_cached = pool.stats().unwrap().cached;
    let child = spawn_paused("cache_step", &[name.as_str(), point, action], point);
    child.kill();
    assert!(
        wait_until(Duration::from_secs(60), || {
            main.recover();
            settled(pool) == base
        }),
        "{action} killed at {point}: the pool holds {:?}, {:?} before",
        settled(pool),
        base
    );
    let r = main.recover();
    assert_eq!(r.total.suspects, 0, "{action} at {point}: {r:?}");
    assert_eq!(r.processes, 1, "{action} at {point}: {r:?}");
    pool.verify().unwrap();
    // Nothing of the dead process's cache is left, nor its record.
    pool.give_back_cache_now().unwrap();
    let s = pool.stats().unwrap();
    assert_eq!(s.cached, base_cached, "{action} at {point}: {s:?}");
}

/// Every step of a free pushed on the cache.
const PUSH: &[&str] = &[
    "alloc.cache.push.noted",
    "alloc.cache.push.marked",
    "alloc.cache.pushed",
];
/// Every step of an allocation popped from it.
const POP: &[&str] = &[
    "alloc.cache.pop.noted",
    "alloc.cache.popped",
    "alloc.cache.pop.used",
];

#[test]
fn a_process_killed_at_each_step_of_pushing_a_block_on_its_cache_loses_nothing() {
    for (i, point) in PUSH.iter().enumerate() {
        kill_at(&format!("cache-push-{i}"), "push", point);
    }
}

#[test]
fn a_process_killed_while_two_of_its_threads_hold_caches_loses_nothing() {
    for (i, point) in PUSH.iter().enumerate() {
        kill_at(&format!("cache-push2-{i}"), "push-two-threads", point);
    }
}

#[test]
fn a_process_killed_at_each_step_of_popping_a_block_from_its_cache_loses_nothing() {
    for (i, point) in POP.iter().enumerate() {
        kill_at(&format!("cache-pop-{i}"), "pop", point);
    }
}

#[test]
fn a_process_killed_giving_its_cache_back_loses_nothing() {
    kill_at("cache-give-0", "give-back", "alloc.cache.give.noted");
    kill_at("cache-give-1", "give-back", "alloc.cache.flushing");
}

#[test]
fn a_process_killed_filling_its_cache_from_the_heap_loses_nothing() {
    kill_at("cache-refill", "refill", "alloc.cache.refilled");
}

#[test]
fn a_process_killed_trimming_its_full_cache_loses_nothing() {
    kill_at("cache-trim", "trim", "alloc.cache.trimming");
}

#[test]
fn a_process_killed_making_its_cache_loses_nothing() {
    kill_at("cache-make", "make", "alloc.cache.made");
}

/// A recorded allocation (a value's block, named in the ledger) killed at each step, and
/// at the step after its record is written.
#[test]
fn a_process_killed_at_each_step_of_popping_a_block_for_a_value_loses_nothing() {
    let points = POP.iter().chain(&["alloc.cache.pop.recorded"]);
    for (i, point) in points.enumerate() {
        kill_at(&format!("cache-share-{i}"), "share", point);
    }
}

/// A recorded free (the free walk of a value dropped) killed at each step, and at the
/// step after its record is cleared.
#[test]
fn a_process_killed_at_each_step_of_pushing_a_block_of_a_value_it_drops_loses_nothing() {
    let points = PUSH.iter().chain(&["alloc.cache.push.unrecorded"]);
    for (i, point) in points.enumerate() {
        kill_at(&format!("cache-drop-{i}"), "drop", point);
    }
}

#[test]
fn a_process_killed_giving_back_its_cache_record_loses_nothing() {
    kill_at("cache-detach", "detach", "alloc.cache.unready");
}

/// A pool of `BYTES` in a region of its own, with this process registered in it.
fn pool(tag: &str) -> (TestName, Pool) {
    let name = TestName::new(tag);
    let region = Region::create(&RegionName::new(name.as_str()).unwrap(), BYTES).unwrap();
    (name, Pool::create(Arc::new(region)).unwrap())
}

#[test]
fn cached_blocks_count_as_cached_and_come_back_to_their_process() {
    let (_name, pool) = pool("cache-stats");
    let base = pool.stats().unwrap();
    let offs: Vec<_> = (0..10)
        .map(|i| pool.alloc(16 * (i % 3), 16).unwrap())
        .collect();
    for &off in &offs {
        // SAFETY: allocated above, used by nothing.
        unsafe { pool.free(off) }.unwrap();
    }
    let s = pool.stats().unwrap();
    assert_eq!(
        (s.used, s.live_allocations),
        (base.used, base.live_allocations)
    );
    assert!(s.cached > 0, "{s:?}");
    assert_eq!(s.used + s.free, s.capacity, "{s:?}");
    assert!(s.free - s.cached < base.free, "{s:?}");
    assert!(pool.used_blocks().unwrap().is_empty());
    pool.verify().unwrap();
    // The last block freed of a size is the first handed out again (16 bytes and 0
    // take the same block).
    let again = pool.alloc(16, 16).unwrap();
    assert_eq!(again, offs[9]);
    // A block in the cache is free to its owner: freeing it again is an error that
    // changes nothing.
    let before = pool.stats().unwrap();
    // SAFETY: freed already; the pool must refuse it.
    let twice = unsafe { pool.free(offs[8]) };
    assert!(
        matches!(twice, Err(AllocError::DoubleFree { .. })),
        "{twice:?}"
    );
    assert_eq!(pool.stats().unwrap(), before);
    // SAFETY: allocated above.
    unsafe { pool.free(again) }.unwrap();
    pool.give_back_cache_now().unwrap();
    // Only the cache's record (and the table of records, 4 words per registry slot) is
    // left, at the heap's start.
    let s = pool.stats().unwrap();
    let table = 32 * u64::from(pool.region().registry_slots());
    assert!(s.cached < table + 512, "{s:?}");
    assert_eq!(s.free_blocks, 1, "{s:?}");
    assert_eq!(s.largest_free + s.cached, base.largest_free, "{s:?}");
}

#[test]
fn a_full_pool_takes_a_process_cache_back_before_it_refuses() {
    let (_name, pool) = pool("cache-full");
    let mut offs = Vec::new();
    while let Ok(off) = pool.alloc(16, 16) {
        offs.push(off);
    }
    for off in offs {
        // SAFETY: allocated above, used by nothing.
        unsafe { pool.free(off) }.unwrap();
    }
    let s = pool.stats().unwrap();
    assert!(s.cached > 1024, "{s:?}");
    // More than the heap has free outside the cache: served once the cache is back.
    let big = pool.alloc(s.largest_free + 1024, 16).unwrap();
    // The cache was given back: only its record is left.
    let left = pool.stats().unwrap().cached;
    pool.give_back_cache_now().unwrap();
    assert_eq!(pool.stats().unwrap().cached, left);
    // SAFETY: allocated above.
    unsafe { pool.free(big) }.unwrap();
    pool.verify().unwrap();
}

#[test]
fn a_detaching_process_gives_its_cache_back() {
    let name = TestName::new("cache-detach-ok");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let pool = main.pool();
    pool.give_back_cache_now().unwrap();
    let base = in_use(pool);
    let base_stats = pool.stats().unwrap();
    let region = Arc::new(Region::attach(&RegionName::new(name.as_str()).unwrap()).unwrap());
    let other = Pool::attach(region.clone()).unwrap();
    let offs: Vec<_> = (0..20).map(|_| other.alloc(40, 16).unwrap()).collect();
    for off in offs {
        // SAFETY: allocated above, used by nothing.
        unsafe { other.free(off) }.unwrap();
    }
    assert!(pool.stats().unwrap().cached > 0);
    drop(other);
    drop(region);
    let s = pool.stats().unwrap();
    assert_eq!(in_use(pool), base);
    assert_eq!(
        (s.cached, s.free_blocks),
        (base_stats.cached, base_stats.free_blocks),
        "{s:?}"
    );
}

/// Allocates and frees a block of `size` bytes through `pool`: the calling thread's
/// cache holds one then.
fn prime(pool: &Pool, (size, align): (u64, u64)) {
    let off = pool.alloc(size, align).unwrap();
    // SAFETY: allocated above, used by nothing.
    unsafe { pool.free(off) }.unwrap();
}

/// Whether every one of `users` gets and gives back a block of `size` bytes at `align`
/// (within 30 s), each on a thread of its own, while another process, stopped, holds the pool
/// lock of region `name`. Each thread first primes its cache through the pool given with
/// it, if any (with the lock free).
fn served_while_locked(
    name: &TestName,
    (size, align): (u64, u64),
    users: Vec<(Option<Pool>, Pool)>,
) -> bool {
    let (primed_tx, primed) = std::sync::mpsc::channel();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut go = Vec::new();
    let mut workers = Vec::new();
    for (primer, user) in users {
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let (primed_tx, tx) = (primed_tx.clone(), tx.clone());
        go.push(go_tx);
        workers.push(std::thread::spawn(move || {
            if let Some(p) = primer {
                prime(&p, (size, align));
            }
            primed_tx.send(()).unwrap();
            if go_rx.recv().is_err() {
                return;
            }
            let again = user.alloc(size, align).unwrap();
            // SAFETY: allocated just above.
            unsafe { user.free(again) }.unwrap();
            tx.send(again).unwrap();
        }));
    }
    for _ in 0..workers.len() {
        primed.recv().unwrap();
    }
    let holder = spawn_paused(
        "cache_step",
        &[name.as_str(), "alloc.cache.made", "make"],
        "alloc.cache.made",
    );
    holder.stop();
    for g in &go {
        g.send(()).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let served = (0..workers.len()).all(|_| {
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .is_ok()
    });
    // Killing the holder lets a blocked worker finish either way.
    holder.kill();
    for w in workers {
        w.join().unwrap();
    }
    served
}

#[test]
fn a_small_block_comes_back_while_a_stopped_process_holds_the_pool_lock() {
    let name = TestName::new("cache-held");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let pool = main.pool();
    assert!(
        served_while_locked(&name, (16, 16), vec![(Some(pool.clone()), pool.clone())]),
        "the cached block waited for the pool lock"
    );
}

#[test]
fn blocks_up_to_2_kib_come_back_while_a_stopped_process_holds_the_pool_lock() {
    // Sizes cached exactly, and sizes between two cached ones (rounded up).
    for size in [200, 240, 300, 500, 1000, 2032] {
        let name = TestName::new(&format!("cache-mid-{size}"));
        let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
        let pool = main.pool();
        assert!(
            served_while_locked(&name, (size, 16), vec![(Some(pool.clone()), pool.clone())]),
            "a cached block of {size} bytes waited for the pool lock"
        );
        pool.give_back_cache_now().unwrap();
        pool.verify().unwrap();
    }
}

#[test]
fn a_block_aligned_to_a_cache_line_comes_back_while_a_stopped_process_holds_the_pool_lock() {
    // Pipe blocks are so aligned: a pipe made after one was dropped needs no pool lock.
    for size in [240, 500, 1000] {
        let name = TestName::new(&format!("cache-line-{size}"));
        let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
        let pool = main.pool();
        assert!(
            served_while_locked(&name, (size, 64), vec![(Some(pool.clone()), pool.clone())]),
            "a cached block of {size} bytes at 64 waited for the pool lock"
        );
        pool.give_back_cache_now().unwrap();
        pool.verify().unwrap();
    }
}

#[test]
fn threads_of_one_process_each_keep_a_cache_of_their_own() {
    let name = TestName::new("cache-threads");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let users = (0..4)
        .map(|_| (Some(main.pool().clone()), main.pool().clone()))
        .collect();
    assert!(
        served_while_locked(&name, (16, 16), users),
        "a thread's cached block waited for the pool lock"
    );
}

#[test]
fn a_thread_that_exits_leaves_its_cache_to_the_next_thread() {
    let name = TestName::new("cache-next");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let pool = main.pool().clone();
    std::thread::spawn(move || prime(&pool, (16, 16)))
        .join()
        .unwrap();
    // The next thread claims the record the first one left, with the block in it,
    // without the lock.
    assert!(
        served_while_locked(&name, (16, 16), vec![(None, main.pool().clone())]),
        "the next thread waited for the pool lock"
    );
}

#[test]
fn threads_past_a_process_records_use_the_heap() {
    let (_name, pool) = pool("cache-many");
    let base = pool.stats().unwrap();
    // More threads than a process has records, all holding theirs at once.
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..100 {
                        prime(&pool, (16, 16));
                    }
                    barrier.wait();
                    let offs: Vec<_> = (0..50).map(|_| pool.alloc(48, 16).unwrap()).collect();
                    for off in offs {
                        // SAFETY: allocated above, used by nothing.
                        unsafe { pool.free(off) }.unwrap();
                    }
                })
            })
            .collect();
        // Joined each: a thread's caches go back when its thread-local state is
        // destroyed, which the scope's own end does not wait for.
        for t in threads {
            t.join().unwrap();
        }
    });
    let s = pool.stats().unwrap();
    assert_eq!(
        (s.used, s.live_allocations),
        (base.used, base.live_allocations)
    );
    pool.verify().unwrap();
    // The records the threads left, none held now, all given back.
    pool.give_back_cache_now().unwrap();
    let table = 32 * u64::from(pool.region().registry_slots());
    assert!(
        pool.stats().unwrap().cached < table + 4 * 512,
        "{:?}",
        pool.stats()
    );
}

#[test]
fn every_pool_handle_of_a_region_handle_uses_the_cache_made_by_one_of_them() {
    // A value received from a pipe carries a copy of the receiver's pool handle, which
    // may never have allocated: its frees must find the cache without the pool lock.
    let name = TestName::new("cache-shared");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let early = Pool::attach(main.region().clone()).unwrap();
    // The thread's cache is made through one handle and used through the other.
    let users = vec![(Some(main.pool().clone()), early)];
    assert!(
        served_while_locked(&name, (16, 16), users),
        "the other handle waited for the pool lock"
    );
}

#[test]
fn a_cached_block_overwritten_by_a_buggy_process_poisons_the_pool() {
    let (_name, pool) = pool("cache-corrupt");
    let off = pool.alloc(16, 16).unwrap();
    // SAFETY: allocated above, used by nothing.
    unsafe { pool.free(off) }.unwrap();
    // A process writes over the header of a block it no longer owns: the check word.
    // SAFETY: the word is accessed only atomically, here and by the pool.
    let check = unsafe {
        pool.region()
            .resolve::<AtomicU64>(Offset::new(off.get() - 8))
    };
    check.unwrap().store(0x5eed, Ordering::Relaxed);
    let r = pool.alloc(16, 16);
    assert!(matches!(r, Err(AllocError::Corrupted { .. })), "{r:?}");
    assert!(pool.is_poisoned());
}
