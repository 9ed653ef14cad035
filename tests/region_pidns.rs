//! Regions shared across pid namespaces: the creator's namespace in the header, the mixed
//! word an attacher of another namespace sets, and what it vetoes: judging a lock owner or
//! a creator dead from a `/proc` that cannot show them.
//!
//! The tests of this binary run one at a time: a mixed region alive in this process makes
//! every lock owner count as alive here, which is what some of them check the absence of.

// The tests view words of the region as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::{
    field, own_pid_ns, put_u32, put_u64, region_image, role_entry, spawn_role, write_shm_file,
    TestName,
};
use shmval::region::{AttachOptions, CreateOptions, Offset, Region, RegionName};
use shmval::sync::{Acquired, ShmMutex};

const SIZE: u64 = 64 * 1024;

/// One test at a time (see the module docs).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes a ready region whose creator has pid namespace `ns`; `dead` makes its creator
/// one that no longer runs (this pid with another start key, as after pid reuse).
fn crafted(name: &TestName, ns: u64, dead: bool, mixed: bool) {
    let mut image = region_image(SIZE, 0);
    put_u64(&mut image, field::CREATOR_PID_NS, ns);
    if dead {
        let key = shmval::sync::process_start_key(std::process::id()).unwrap();
        put_u64(&mut image, field::CREATOR_START, key + 1);
    }
    put_u32(&mut image, field::MIXED, u32::from(mixed));
    write_shm_file(name, &image);
}

/// The mixed word as the file holds it.
fn mixed_in_file(name: &RegionName) -> u32 {
    let bytes = std::fs::read(name.file_path()).unwrap();
    u32::from_ne_bytes(bytes[field::MIXED..field::MIXED + 4].try_into().unwrap())
}

#[test]
fn the_creator_records_its_pid_namespace() {
    let _serial = serial();
    let name = TestName::new("ns-create");
    let r = Region::create(&name, SIZE).unwrap();
    assert_eq!(r.info().creator_pid_ns, own_pid_ns());
    assert!(!r.info().mixed_namespaces);
    let a = Region::attach(&name).unwrap();
    assert_eq!(a.info().creator_pid_ns, own_pid_ns());
    assert!(!a.info().mixed_namespaces, "same namespace: not mixed");
    assert_eq!(mixed_in_file(&name), 0);
}

#[test]
fn an_attacher_of_another_pid_namespace_marks_the_region_mixed() {
    let _serial = serial();
    // Another namespace, and one the creator could not read while ours is known.
    for ns in [own_pid_ns() + 1, 0] {
        let name = TestName::new("ns-attach");
        crafted(&name, ns, false, false);
        assert!(!Region::peek(&name).unwrap().mixed_namespaces);
        let a = AttachOptions::new().attach(&name).unwrap();
        assert_eq!(a.info().creator_pid_ns, ns);
        assert!(a.info().mixed_namespaces);
        assert_eq!(
            mixed_in_file(&name),
            1,
            "the mark is in the region, for all"
        );
        assert!(Region::peek(&name).unwrap().mixed_namespaces);
    }
}

#[test]
fn remove_stale_never_judges_a_creator_across_namespaces() {
    let _serial = serial();
    let ours = own_pid_ns();
    // A dead creator in another namespace, in an unknown one, or of a mixed region: each
    // counts as alive, and the region stays.
    for (ns, mixed) in [(ours + 1, false), (0, false), (ours, true)] {
        let name = TestName::new("ns-stale");
        crafted(&name, ns, true, mixed);
        assert!(Region::peek(&name).unwrap().creator_alive(), "{ns} {mixed}");
        assert!(!Region::remove_stale(&name).unwrap(), "{ns} {mixed}");
        assert!(name.file_path().exists());
    }
    // The same dead creator in our namespace, unmixed, is dead.
    let name = TestName::new("ns-stale-ours");
    crafted(&name, ours, true, false);
    assert!(!Region::peek(&name).unwrap().creator_alive());
    assert!(Region::remove_stale(&name).unwrap());
    assert!(!name.file_path().exists());
}

/// Locks the mutex at `at` in `r` from a thread that exits holding it.
fn lock_and_die(r: &Region, at: u64) {
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    let m: &ShmMutex = unsafe { r.resolve(Offset::new(at)) }.unwrap();
    std::thread::scope(|s| {
        s.spawn(|| std::mem::forget(m.lock()));
    });
    assert!(m.is_locked());
}

#[test]
fn a_mixed_region_makes_a_dead_threads_lock_count_as_held() {
    let _serial = serial();
    let name = TestName::new("ns-veto");
    let r = Region::create(&name, SIZE).unwrap();
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    let m: &ShmMutex = unsafe { r.resolve(Offset::new(256)) }.unwrap();

    // Unmixed: the dead owner is found and the lock taken over.
    lock_and_die(&r, 256);
    let g = m.lock_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(g.acquired(), Acquired::OwnerDied);
    drop(g);

    // While a mixed region is mapped here, its owner might be a thread /proc cannot show:
    // it counts as alive, well past the liveness poll.
    lock_and_die(&r, 320);
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    let m2: &ShmMutex = unsafe { r.resolve(Offset::new(320)) }.unwrap();
    let other = TestName::new("ns-veto-other");
    crafted(&other, own_pid_ns() + 1, false, false);
    let mixed = Region::attach(&other).unwrap();
    assert!(mixed.info().mixed_namespaces);
    assert!(m2.lock_timeout(Duration::from_millis(300)).is_err());
    // The veto goes with the last mapping of the mixed region.
    drop(mixed);
    let g = m2.lock_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(g.acquired(), Acquired::OwnerDied);
    drop(g);

    // A creator's own handle carries the veto too, once the word is set.
    lock_and_die(&r, 384);
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    let m3: &ShmMutex = unsafe { r.resolve(Offset::new(384)) }.unwrap();
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    let word: &AtomicU32 = unsafe { r.resolve(Offset::new(field::MIXED as u64)) }.unwrap();
    word.store(1, Ordering::SeqCst);
    assert!(r.info().mixed_namespaces);
    assert!(m3.lock_timeout(Duration::from_millis(300)).is_err());
}

// ---------------------------------------------------------------------------------------
// Real pid namespaces (root)

/// Moves future children into a new pid namespace, then runs role `args[0]` there (as
/// its pid 1) with the remaining arguments.
fn in_new_pid_namespace(args: &[String]) {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID).expect("unshare(CLONE_NEWPID)");
    let rest: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    spawn_role(&args[0], &rest).wait_ok(Duration::from_secs(60));
}

fn attach_from_namespace(args: &[String]) {
    assert_eq!(
        std::process::id(),
        1,
        "the first process of a new pid namespace"
    );
    let name = RegionName::new(args[0].clone()).unwrap();
    let r = Region::attach(&name).unwrap();
    assert_ne!(r.info().creator_pid_ns, own_pid_ns());
    assert!(r.info().mixed_namespaces);
}

fn create_from_namespace(args: &[String]) {
    let name = RegionName::new(args[0].clone()).unwrap();
    drop(
        CreateOptions::new()
            .persist(true)
            .create(&name, SIZE)
            .unwrap(),
    );
}

#[test]
#[cfg_attr(not(shmval_root), ignore = "needs root")]
fn a_process_of_another_pid_namespace_marks_our_region_mixed() {
    let _serial = serial();
    let name = TestName::new("ns-real-attach");
    let r = Region::create(&name, SIZE).unwrap();
    spawn_role(
        "in_new_pid_namespace",
        &["attach_from_namespace", name.as_str()],
    )
    .wait_ok(Duration::from_secs(60));
    assert!(r.info().mixed_namespaces);
}

#[test]
#[cfg_attr(not(shmval_root), ignore = "needs root")]
fn a_region_created_in_another_pid_namespace_is_never_stale_here() {
    let _serial = serial();
    let name = TestName::new("ns-real-create");
    spawn_role(
        "in_new_pid_namespace",
        &["create_from_namespace", name.as_str()],
    )
    .wait_ok(Duration::from_secs(60));
    // Its creator was pid 1 of a namespace now gone; here pid 1 is another process, with
    // another start time. Judged from here it would look dead, or alive by chance: it is
    // not judged at all.
    let info = Region::peek(&name).unwrap();
    assert_eq!(info.creator_pid, 1);
    assert_ne!(info.creator_pid_ns, own_pid_ns());
    assert!(info.creator_alive());
    assert!(!Region::remove_stale(&name).unwrap());
    assert!(name.file_path().exists());
    assert!(Region::attach(&name).unwrap().info().mixed_namespaces);
}

#[test]
fn child_role() {
    role_entry(&[
        ("in_new_pid_namespace", in_new_pid_namespace),
        ("attach_from_namespace", attach_from_namespace),
        ("create_from_namespace", create_from_namespace),
    ]);
}
