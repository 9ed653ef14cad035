//! ShmMutex and ShmCondvar between real processes, in a real region.

// The tests view words of the region as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::time::{Duration, Instant};

use common::{role_entry, spawn_role, wait_until, TestName};
use shmval::region::{Offset, Region, RegionName};
use shmval::sync::{Acquired, ShmCondvar, ShmMutex};

use std::sync::atomic::{AtomicU64 as Word, Ordering};

/// Where the test structures sit in the region, past its header and registry.
const MUTEX: u64 = 0;
const CONDVAR: u64 = 64;
const COUNTER: u64 = 128;
const FLAG: u64 = 192;

/// Offset `at` past the header and the registry.
fn at(r: &Region, at: u64) -> Offset {
    Offset::new(r.data_start().get() + at)
}

fn parts(r: &Region) -> (&ShmMutex, &ShmCondvar, &Word, &Word) {
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    (
        unsafe { r.resolve(at(r, MUTEX)) }.unwrap(),
        // SAFETY: the test places only atomics at these offsets; no plain payload lies there while
        // the reference is used.
        unsafe { r.resolve(at(r, CONDVAR)) }.unwrap(),
        // SAFETY: the test places only atomics at these offsets; no plain payload lies there while
        // the reference is used.
        unsafe { r.resolve(at(r, COUNTER)) }.unwrap(),
        // SAFETY: the test places only atomics at these offsets; no plain payload lies there while
        // the reference is used.
        unsafe { r.resolve(at(r, FLAG)) }.unwrap(),
    )
}

fn attach(args: &[String]) -> Region {
    Region::attach(&RegionName::new(args[0].clone()).unwrap()).unwrap()
}

const INCREMENTS: u64 = 200_000;

fn incrementer(args: &[String]) {
    let r = attach(args);
    let (m, _, counter, _) = parts(&r);
    for _ in 0..INCREMENTS {
        let _g = m.lock();
        // A read then a separate write: increments are lost unless the lock excludes.
        let v = counter.load(Ordering::Relaxed);
        counter.store(v + 1, Ordering::Relaxed);
    }
}

fn hold_until_killed(args: &[String]) {
    let r = attach(args);
    let (m, _, _, flag) = parts(&r);
    let _g = m.lock();
    flag.store(1, Ordering::SeqCst);
    // Holds the lock until killed.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn wait_for_flag(args: &[String]) {
    let r = attach(args);
    let (m, cv, _, flag) = parts(&r);
    let mut g = m.lock();
    // Tell the parent we are about to wait (under the lock, so its notify comes after).
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    unsafe { r.resolve::<Word>(at(&r, COUNTER)) }
        .unwrap()
        .store(1, Ordering::SeqCst);
    while flag.load(Ordering::SeqCst) == 0 {
        let (g2, res) = cv.wait_timeout(g, Duration::from_secs(10)).unwrap();
        g = g2;
        assert!(!res.timed_out(), "no wake-up reached the child");
    }
}

#[test]
fn child_role() {
    role_entry(&[
        ("incrementer", incrementer),
        ("hold_until_killed", hold_until_killed),
        ("wait_for_flag", wait_for_flag),
    ]);
}

#[test]
fn two_processes_increment_under_the_lock_exactly() {
    let name = TestName::new("mutex-count");
    let r = Region::create(&name, 4096).unwrap();
    let a = spawn_role("incrementer", &[name.as_str()]);
    let b = spawn_role("incrementer", &[name.as_str()]);
    a.wait_ok(Duration::from_secs(120));
    b.wait_ok(Duration::from_secs(120));
    let (m, _, counter, _) = parts(&r);
    assert_eq!(m.lock().acquired(), Acquired::Clean);
    assert_eq!(counter.load(Ordering::SeqCst), 2 * INCREMENTS);
}

#[test]
fn a_killed_holder_is_detected_and_its_lock_taken_over() {
    let name = TestName::new("mutex-kill");
    let r = Region::create(&name, 4096).unwrap();
    let (m, _, _, flag) = parts(&r);
    let child = spawn_role("hold_until_killed", &[name.as_str()]);
    assert!(
        wait_until(Duration::from_secs(30), || flag.load(Ordering::SeqCst) == 1),
        "child never took the lock"
    );
    assert!(m.try_lock().is_none(), "a live holder must not be robbed");
    let holder = m.owner().unwrap();
    // The holder is a thread of the child (libtest runs the role on a worker thread).
    let task = format!("/proc/{}/task/{}", child.pid(), holder.tid());
    assert!(std::path::Path::new(&task).exists(), "{task}");
    child.kill();
    let t = Instant::now();
    // Detected at the next liveness poll (20 ms); the bound only catches a lock that is
    // never taken over.
    let mut g = m
        .lock_timeout(Duration::from_secs(30))
        .expect("the dead holder's lock is taken over");
    let took = t.elapsed();
    println!("the dead holder's lock was taken over after {took:?}");
    assert_eq!(g.acquired(), Acquired::OwnerDied);
    g.mark_consistent();
    drop(g);
    assert_eq!(m.lock().acquired(), Acquired::Clean);
}

#[test]
fn a_condvar_wake_crosses_processes() {
    let name = TestName::new("condvar");
    let r = Region::create(&name, 4096).unwrap();
    let (m, cv, counter, flag) = parts(&r);
    let child = spawn_role("wait_for_flag", &[name.as_str()]);
    assert!(wait_until(Duration::from_secs(30), || counter
        .load(Ordering::SeqCst)
        == 1));
    {
        let _g = m.lock();
        flag.store(1, Ordering::SeqCst);
        cv.notify_one();
    }
    child.wait_ok(Duration::from_secs(30));
}
