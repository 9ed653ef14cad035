//! The pool between real processes: concurrent churn, and holders killed mid-operation.

// The tests view region words as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{role_entry, spawn_paused, spawn_role, TestName};
use shmval::alloc::{Pool, PoolStats};
use shmval::region::{Offset, Region, RegionName};

fn attach(name: &str) -> Pool {
    let region = Region::attach(&RegionName::new(name.to_owned()).unwrap()).unwrap();
    Pool::attach(Arc::new(region)).unwrap().without_cache()
}

fn word(pool: &Pool, at: u64) -> &AtomicU64 {
    // SAFETY: the pattern words lie in blocks this process owns and accesses only atomically.
    unsafe { pool.region().resolve(Offset::new(at)) }.unwrap()
}

/// xorshift64*: a small deterministic generator for the children.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PAIRS: u64 = 100_000;
const MAX_LIVE: u64 = 8;

/// The payload words a block's pattern covers: the first, the last, and one every 64 bytes.
fn pattern_words(off: u64, usable: u64) -> impl Iterator<Item = u64> {
    (off..off + usable)
        .step_by(64)
        .chain(std::iter::once(off + usable - 8))
}

/// Allocates and frees `PAIRS` blocks of random sizes and alignments, keeping up to
/// `MAX_LIVE` alive, filling each with a pattern and checking it before the free.
fn churn(args: &[String]) {
    let pool = attach(&args[0]);
    let mut rng = Rng(args[1].parse::<u64>().unwrap() | 1);
    let mut live: Vec<(u64, u64, u64)> = Vec::new();
    let free_one = |live: &mut Vec<(u64, u64, u64)>, i: usize| {
        let (off, usable, tag) = live.swap_remove(i);
        for w in pattern_words(off, usable) {
            assert_eq!(word(&pool, w).load(Ordering::Relaxed), tag ^ w, "{off:#x}");
        }
        // SAFETY: a block this process allocated; only it uses the block.
        unsafe { pool.free(Offset::new(off)) }.unwrap();
    };
    for _ in 0..PAIRS {
        let size = 1 + rng.below(2048);
        let align = 1 << rng.below(7);
        let off = pool.alloc(size, align).unwrap().get();
        assert_eq!(off % align, 0);
        let usable = pool
            .used_blocks()
            .unwrap()
            .into_iter()
            .find(|b| b.offset.get() == off)
            .unwrap()
            .size;
        let tag = rng.next();
        for w in pattern_words(off, usable) {
            word(&pool, w).store(tag ^ w, Ordering::Relaxed);
        }
        live.push((off, usable, tag));
        if live.len() as u64 > rng.below(MAX_LIVE) {
            let i = rng.below(live.len() as u64) as usize;
            free_one(&mut live, i);
        }
    }
    while !live.is_empty() {
        free_one(&mut live, 0);
    }
}

/// Arms a pause point, then runs one alloc or free that stops at the point (holding the
/// pool lock), reports it through the parent's notice and sleeps there until killed.
fn crash_child(args: &[String]) {
    let pool = attach(&args[0]);
    let (point, op, arg) = (&args[1], &args[2], args[3].parse::<u64>().unwrap());
    shmval::fault::arm(point);
    match op.as_str() {
        "alloc" => drop(pool.alloc(arg, 64).unwrap()),
        // SAFETY: the parent handed this block over to be freed here and uses it no more.
        "free" => unsafe { pool.free(Offset::new(arg)) }.unwrap(),
        _ => unreachable!(),
    }
    panic!("the {op} finished without pausing at {point}");
}

#[test]
fn child_role() {
    role_entry(&[("churn", churn), ("crash_child", crash_child)]);
}

fn assert_pristine(pool: &Pool, initial: &PoolStats) {
    pool.verify().unwrap();
    let s = pool.stats().unwrap();
    assert_eq!(
        (s.used, s.live_allocations, s.free_blocks, s.largest_free),
        (0, 0, 1, initial.largest_free),
        "{s:?}"
    );
}

#[test]
fn two_processes_churn_and_leave_the_pool_as_they_found_it() {
    let name = TestName::new("alloc-churn");
    let region = Arc::new(Region::create(&name, 1 << 20).unwrap());
    let pool = Pool::create(region).unwrap().without_cache();
    let initial = pool.stats().unwrap();
    let a = spawn_role("churn", &[name.as_str(), "1"]);
    let b = spawn_role("churn", &[name.as_str(), "2"]);
    a.wait_ok(Duration::from_secs(300));
    b.wait_ok(Duration::from_secs(300));
    assert_pristine(&pool, &initial);
    assert!(pool.stats().unwrap().high_water > 0);
}

/// What the killed child was doing.
#[derive(Clone, Copy, Debug)]
enum Victim {
    /// Allocating 3000 bytes at alignment 64 from the large free block at the heap's end,
    /// which needs a leading gap and a split.
    Alloc,
    /// Freeing a block between two free blocks, which merges with both.
    Free,
}

/// Parent side of a crash test: sets up blocks, lets a child stop at `point` inside an
/// operation and kills it there, then checks that the next operation repairs the pool
/// and that freeing everything the parent owns leaves one free block (or, if the child
/// had finished handing out its block, exactly that block in use).
fn crash_at(point: &str, victim: Victim) {
    let name = TestName::new("alloc-crash");
    let region = Arc::new(Region::create(&name, 1 << 20).unwrap());
    let pool = Pool::create(region).unwrap().without_cache();
    let initial = pool.stats().unwrap();
    // 48-byte requests take 64-byte blocks: the heap's end stays 64-aligned, so an
    // allocation at alignment 64 there needs a leading gap.
    let mut mine: Vec<Offset> = (0..10).map(|_| pool.alloc(48, 8).unwrap()).collect();
    let arg = match victim {
        Victim::Alloc => 3000,
        Victim::Free => {
            // SAFETY: blocks this test allocated above and uses no more.
            unsafe { pool.free(mine[3]) }.unwrap();
            // SAFETY: as above.
            unsafe { pool.free(mine[5]) }.unwrap();
            let given = mine[4];
            mine.drain(3..6);
            given.get()
        }
    };
    let op = match victim {
        Victim::Alloc => "alloc",
        Victim::Free => "free",
    };
    let child = spawn_paused(
        "crash_child",
        &[name.as_str(), point, op, &arg.to_string()],
        point,
    );
    // Paused at the point, the child holds the pool lock.
    let held_by_child = pool.lock_owner().is_some_and(|o| {
        std::path::Path::new(&format!("/proc/{}/task/{}", child.pid(), o.tid())).exists()
    });
    assert!(
        held_by_child,
        "{point}: the child does not hold the pool lock"
    );
    child.kill();

    // The next operation finds the owner dead and repairs.
    let extra = pool.alloc(100, 8).unwrap();
    pool.verify().unwrap();
    let s = pool.stats().unwrap();
    let leaked = u64::from(matches!(victim, Victim::Alloc) && point == "alloc.used");
    assert_eq!(
        s.live_allocations,
        mine.len() as u64 + 1 + leaked,
        "{point}: {s:?}"
    );
    assert!(s.high_water >= s.used);
    for o in mine.into_iter().chain([extra]) {
        // SAFETY: blocks this test allocated and uses no more (the child is dead).
        unsafe { pool.free(o) }.unwrap();
    }
    if leaked == 1 {
        let s = pool.stats().unwrap();
        assert_eq!((s.live_allocations, s.used), (1, 3024), "{point}: {s:?}");
        pool.verify().unwrap();
    } else {
        assert_pristine(&pool, &initial);
    }
}

#[test]
fn a_holder_killed_inside_alloc_is_repaired() {
    for point in [
        "alloc.unlinked",
        "alloc.split.remainder",
        "alloc.split.shrunk",
        "alloc.mark_used",
        "alloc.used",
    ] {
        crash_at(point, Victim::Alloc);
    }
}

#[test]
fn a_holder_killed_inside_free_is_repaired() {
    for point in [
        "free.cleared",
        "free.merge_next",
        "free.merge_prev",
        "free.linked",
    ] {
        crash_at(point, Victim::Free);
    }
}
