//! Regions across threads and processes: the ready wait, position independence, who
//! unlinks what and when, remove_stale, and racing creators.

// The tests view words of the region as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64 as Word, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{
    blocked_in, field, put_u32, put_u64, region_image, role_entry, shm_files_of, spawn_role,
    this_thread, wait_until, write_shm_file, TestName, NOBODY,
};
use shmval::region::{AttachOptions, CreateOptions, Offset, Region, RegionError, RegionName};
use shmval::sync::{Os, Platform};

const SIZE: u64 = 64 * 1024;

fn attach(args: &[String]) -> Region {
    Region::attach(&RegionName::new(args[0].clone()).unwrap()).unwrap()
}

fn word(r: &Region, at: u64) -> &Word {
    // SAFETY: the test places only atomics at these offsets (past the header and the
    // registry, where the layers above would start); no plain payload lies there while the
    // reference is used.
    unsafe { r.resolve(Offset::new(r.data_start().get() + at)) }.unwrap()
}

// ---------------------------------------------------------------------------------------
// The ready wait

/// Writes a valid region file whose state word says "building", and maps it for the test
/// to flip later.
fn building_region(name: &TestName) -> memmap2::MmapRaw {
    let mut image = region_image(SIZE, 0);
    put_u32(&mut image, field::STATE, 0);
    write_shm_file(name, &image);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.file_path())
        .unwrap();
    memmap2::MmapRaw::map_raw(&file).unwrap()
}

fn state_of(map: &memmap2::MmapRaw) -> &AtomicU32 {
    // SAFETY: the mapping holds the whole header, is page-aligned (so the state word at
    // offset 64 is aligned for AtomicU32), and outlives the reference; every access to
    // the word, here and in other mappings, is atomic.
    unsafe { AtomicU32::from_ptr(map.as_mut_ptr().add(field::STATE).cast()) }
}

/// Attaches to `name` on another thread with `opts`; returns the thread once it sleeps
/// on the state word (a futex), waiting for the region to become ready.
fn waiting_attacher(
    name: &TestName,
    opts: AttachOptions,
) -> std::thread::JoinHandle<Result<Region, RegionError>> {
    let n = RegionName::new(name.as_str().to_string()).unwrap();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let attacher = std::thread::spawn(move || {
        tid_tx.send(this_thread()).unwrap();
        opts.attach(&n)
    });
    let (pid, tid) = (std::process::id(), tid_rx.recv().unwrap());
    assert!(
        wait_until(Duration::from_secs(30), || blocked_in(
            pid,
            tid,
            &[libc::SYS_futex]
        )),
        "the attacher never waited for the region to be ready"
    );
    attacher
}

#[test]
fn a_futex_wake_ends_the_ready_wait_at_once() {
    let name = TestName::new("ready-wake");
    let map = building_region(&name);
    // The waiter would not wake on its own for 120 s: only the wake can end the wait
    // within the bound below.
    let attacher = waiting_attacher(
        &name,
        AttachOptions::new()
            .timeout(Duration::from_secs(600))
            .micro_sleep(Duration::from_secs(120)),
    );
    let t = Instant::now();
    let state = state_of(&map);
    state.store(1, Ordering::Release);
    Os::wake(state, u32::MAX);
    let r = attacher.join().unwrap().unwrap();
    let took = t.elapsed();
    println!("the woken attacher returned {took:?} after the wake");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(r.len(), SIZE);
}

#[test]
fn a_plain_store_is_seen_at_the_next_micro_sleep() {
    let name = TestName::new("ready-poll");
    let map = building_region(&name);
    // Polled every 10 ms; without the poll, only the 600 s timeout would end the wait.
    let attacher = waiting_attacher(
        &name,
        AttachOptions::new()
            .timeout(Duration::from_secs(600))
            .micro_sleep(Duration::from_millis(10)),
    );
    let t = Instant::now();
    state_of(&map).store(1, Ordering::Release);
    let r = attacher.join().unwrap();
    let took = t.elapsed();
    drop(r.unwrap());
    println!("the polling attacher saw the store after {took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
}

// ---------------------------------------------------------------------------------------
// Position independence

/// Where the address report, the two list heads, and the two lists sit (past the header
/// and the registry).
const ADDRESS: u64 = 0;
const CHILD_HEAD: u64 = 8;
const PARENT_HEAD: u64 = 16;
const PARENT_NODES: u64 = 4096;
const CHILD_NODES: u64 = 16384;
const NODES: u64 = 50;
const NODE_STRIDE: u64 = 64;

/// Builds a list of `NODES` nodes at `base`, linked from the last node to the first, each
/// `[next: Offset, value]`, with values `value(i)` in list order. Returns the head.
fn build_list(r: &Region, base: u64, value: impl Fn(u64) -> u64) -> Offset {
    let mut next = Offset::NULL;
    for i in (0..NODES).rev() {
        // Place the nodes out of order so a walk cannot succeed by striding.
        let at = base + ((i * 7) % NODES) * NODE_STRIDE;
        word(r, at).store(next.get(), Ordering::Relaxed);
        word(r, at + 8).store(value(i), Ordering::Relaxed);
        next = Offset::new(r.data_start().get() + at);
    }
    next
}

/// Walks the list from `head` through `Region::resolve`, at most `limit` nodes.
fn walk_list(r: &Region, head: Offset, limit: u64) -> Result<Vec<u64>, RegionError> {
    let mut values = Vec::new();
    let mut at = head;
    while !at.is_null() && (values.len() as u64) < limit {
        // SAFETY: the test places only atomics at these offsets; no plain payload lies there while
        // the reference is used.
        let node = unsafe { r.resolve_slice::<Word>(at, 2) }?;
        values.push(node[1].load(Ordering::Relaxed));
        at = Offset::new(node[0].load(Ordering::Relaxed));
    }
    Ok(values)
}

fn child_list_value(i: u64) -> u64 {
    1000 + i * 3
}

/// Maps memory of a pid-derived size first, so the region lands elsewhere than in the
/// parent; checks the parent's list, builds its own, and reports its mapping address.
fn list_builder(args: &[String]) {
    let pages = 1 + (std::process::id() as usize % 97);
    let _spacer = memmap2::MmapMut::map_anon(pages * 64 * 1024).unwrap();
    let r = attach(args);
    let head = Offset::new(word(&r, PARENT_HEAD).load(Ordering::Acquire));
    let theirs = walk_list(&r, head, NODES + 1).unwrap();
    assert_eq!(theirs, (0..NODES).map(|i| i * i).collect::<Vec<_>>());
    let head = build_list(&r, CHILD_NODES, child_list_value);
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    let here = unsafe { r.resolve::<Word>(r.data_start()) }.unwrap() as *const Word as u64;
    word(&r, ADDRESS).store(here, Ordering::Relaxed);
    word(&r, CHILD_HEAD).store(head.get(), Ordering::Release);
}

#[test]
fn two_processes_at_different_addresses_share_a_linked_list() {
    assert_eq!(ADDRESS, 0, "the address report is the word at data_start");
    let name = TestName::new("pic");
    let r = Region::create(&name, SIZE).unwrap();
    let head = build_list(&r, PARENT_NODES, |i| i * i);
    word(&r, PARENT_HEAD).store(head.get(), Ordering::Release);
    spawn_role("list_builder", &[name.as_str()]).wait_ok(Duration::from_secs(30));

    let theirs = word(&r, ADDRESS).load(Ordering::Relaxed);
    // SAFETY: the test places only atomics at these offsets; no plain payload lies there while the
    // reference is used.
    let ours = unsafe { r.resolve::<Word>(r.data_start()) }.unwrap() as *const Word as u64;
    assert_ne!(theirs, 0, "the child reported no address");
    assert_ne!(
        theirs, ours,
        "both processes mapped the region at {ours:#x}"
    );
    let head = Offset::new(word(&r, CHILD_HEAD).load(Ordering::Acquire));
    let values = walk_list(&r, head, NODES + 1).unwrap();
    assert_eq!(values, (0..NODES).map(child_list_value).collect::<Vec<_>>());
}

#[test]
fn a_corrupt_link_is_an_error_not_a_crash() {
    let name = TestName::new("badlink");
    let r = Region::create(&name, SIZE).unwrap();
    let head = build_list(&r, PARENT_NODES, |i| i);
    // Point the second node past the end of the region.
    let rel = |off: u64| off - r.data_start().get();
    let second = word(&r, rel(head.get())).load(Ordering::Relaxed);
    word(&r, rel(second)).store(SIZE + 64, Ordering::Relaxed);
    let e = walk_list(&r, head, NODES + 1).unwrap_err();
    assert!(matches!(e, RegionError::BadOffset { offset, .. } if offset == SIZE + 64));
}

// ---------------------------------------------------------------------------------------
// Who unlinks

#[test]
fn the_creator_unlinks_on_drop() {
    let name = TestName::new("unlink");
    let r = Region::create(&name, SIZE).unwrap();
    assert!(r.is_creator());
    assert!(name.file_path().exists());
    drop(r);
    assert!(!name.file_path().exists());
    let e = Region::attach(&name).unwrap_err();
    assert!(matches!(e, RegionError::NotFound(_)), "{e}");
}

#[test]
fn a_persisted_region_outlives_its_creator_handle() {
    let name = TestName::new("persist");
    let r = CreateOptions::new()
        .persist(true)
        .create(&name, SIZE)
        .unwrap();
    assert!(r.is_creator());
    let id = r.id();
    word(&r, 256).store(42, Ordering::Relaxed);
    drop(r);
    assert!(name.file_path().exists());
    let a = Region::attach(&name).unwrap();
    assert_eq!(a.id(), id);
    assert_eq!(word(&a, 256).load(Ordering::Relaxed), 42);
    // TestName removes the file.
}

#[test]
fn an_attacher_never_unlinks() {
    let name = TestName::new("attacher");
    let r = Region::create(&name, SIZE).unwrap();
    let a = Region::attach(&name).unwrap();
    assert!(!a.is_creator());
    drop(a);
    assert!(name.file_path().exists());
    drop(Region::attach(&name).unwrap());
    drop(r);
    assert!(!name.file_path().exists());
}

/// Flags the parent sees through the region.
const STEP: u64 = 256;
const COUNT: u64 = 264;

/// Attaches, then keeps working in the region after the parent dropped its creator handle.
fn outlive_creator(args: &[String]) {
    let r = attach(args);
    let step = word(&r, STEP);
    step.store(1, Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(30), || step
        .load(Ordering::SeqCst)
        == 2));
    // The name is gone, the mapping is not.
    let e = Region::attach(r.name()).unwrap_err();
    assert!(matches!(e, RegionError::NotFound(_)), "{e}");
    for _ in 0..1000 {
        word(&r, COUNT).fetch_add(1, Ordering::SeqCst);
    }
    step.store(3, Ordering::SeqCst);
}

#[test]
fn attached_processes_keep_working_after_the_creator_is_gone() {
    let name = TestName::new("outlive");
    let creator = Region::create(&name, SIZE).unwrap();
    // A second handle of our own, to watch the child after the creator handle is gone.
    let watcher = Region::attach(&name).unwrap();
    let child = spawn_role("outlive_creator", &[name.as_str()]);
    let step = word(&watcher, STEP);
    assert!(wait_until(Duration::from_secs(30), || step
        .load(Ordering::SeqCst)
        == 1));
    drop(creator);
    assert!(!name.file_path().exists());
    step.store(2, Ordering::SeqCst);
    child.wait_ok(Duration::from_secs(30));
    assert_eq!(step.load(Ordering::SeqCst), 3);
    assert_eq!(word(&watcher, COUNT).load(Ordering::SeqCst), 1000);
}

#[test]
fn drop_leaves_a_replacement_under_the_same_name_alone() {
    let name = TestName::new("replaced");
    let first = Region::create(&name, SIZE).unwrap();
    std::fs::remove_file(name.file_path()).unwrap();
    let second = Region::create(&name, SIZE).unwrap();
    drop(first);
    assert!(
        name.file_path().exists(),
        "the first handle unlinked the second file"
    );
    assert_eq!(Region::attach(&name).unwrap().id(), second.id());
    drop(second);
    assert!(!name.file_path().exists());

    // A plain file that replaced a region is left alone too.
    let third = Region::create(&name, SIZE).unwrap();
    std::fs::remove_file(name.file_path()).unwrap();
    write_shm_file(&name, b"someone else's");
    drop(third);
    assert_eq!(std::fs::read(name.file_path()).unwrap(), b"someone else's");
}

/// A region is current while its name stands for its file: not once unlinked (by hand
/// too) or replaced, and with a second name, only while the first still leads to it.
#[test]
fn a_region_is_current_while_its_name_leads_to_it() {
    let name = TestName::new("current");
    let r = Region::create(&name, SIZE).unwrap();
    assert!(r.is_current());
    std::fs::remove_file(name.file_path()).unwrap();
    assert!(!r.is_current(), "unlinked by hand");
    let newer = Region::create(&name, SIZE).unwrap();
    assert!(!r.is_current(), "replaced under its name");
    assert!(newer.is_current());

    // More names than one: its own is looked up.
    let aliases = [
        TestName::new("current-alias"),
        TestName::new("current-alias"),
    ];
    for a in &aliases {
        std::fs::hard_link(name.file_path(), a.file_path()).unwrap();
    }
    assert!(newer.is_current());
    let other = TestName::new("current-other");
    let third = Region::create(&other, SIZE).unwrap();
    std::fs::remove_file(name.file_path()).unwrap();
    std::fs::hard_link(other.file_path(), name.file_path()).unwrap();
    assert!(!newer.is_current(), "its name leads to another file");
    drop(third);
    std::fs::remove_file(name.file_path()).unwrap();
    for a in &aliases {
        std::fs::remove_file(a.file_path()).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// remove_stale

/// Creates a persisted region and exits, leaving it behind.
fn create_persisted(args: &[String]) {
    let name = RegionName::new(args[0].clone()).unwrap();
    let r = CreateOptions::new()
        .persist(true)
        .create(&name, SIZE)
        .unwrap();
    word(&r, 256).store(7, Ordering::Relaxed);
}

#[test]
fn remove_stale_removes_a_dead_creators_region() {
    let name = TestName::new("stale");
    let child = spawn_role("create_persisted", &[name.as_str()]);
    let pid = child.pid();
    child.wait_ok(Duration::from_secs(30));
    assert!(name.file_path().exists());
    // An observer: a registered handle would make the region live.
    let a = AttachOptions::new().register(false).attach(&name).unwrap();
    assert_eq!(a.info().creator_pid, pid);
    assert!(!a.info().creator_alive());
    assert_eq!(word(&a, 256).load(Ordering::Relaxed), 7);
    assert!(Region::remove_stale(&name).unwrap());
    assert!(!name.file_path().exists());
    // The mapping outlives the name.
    assert_eq!(word(&a, 256).load(Ordering::Relaxed), 7);
    // Nothing left to remove.
    assert!(!Region::remove_stale(&name).unwrap());
}

#[test]
fn remove_stale_keeps_a_region_a_live_process_is_attached_to_whatever_its_creator() {
    let name = TestName::new("stale-attached");
    let child = spawn_role("create_persisted", &[name.as_str()]);
    child.wait_ok(Duration::from_secs(30));
    // Its creator is dead, but a registered process (this one) is attached.
    let attached = Region::attach(&name).unwrap();
    assert!(!attached.info().creator_alive());
    assert!(!Region::remove_stale(&name).unwrap());
    assert!(name.file_path().exists());
    // Once nobody is attached it is stale (polled: a child that another test thread is
    // forking may hold the file's lock until it execs).
    drop(attached);
    assert!(wait_until(Duration::from_secs(10), || {
        Region::remove_stale(&name).unwrap()
    }));
    assert!(!name.file_path().exists());
}

#[test]
fn remove_stale_keeps_a_live_creators_region() {
    let name = TestName::new("live");
    let r = Region::create(&name, SIZE).unwrap();
    assert!(r.info().creator_alive());
    assert!(!Region::remove_stale(&name).unwrap());
    assert!(name.file_path().exists());
}

#[test]
fn remove_stale_refuses_a_file_that_is_not_a_region() {
    let name = TestName::new("notregion");
    write_shm_file(&name, &[0u8; 4096]);
    let e = Region::remove_stale(&name).unwrap_err();
    assert!(matches!(e, RegionError::BadMagic(_)), "{e}");
    write_shm_file(&name, b"short");
    let e = Region::remove_stale(&name).unwrap_err();
    assert!(matches!(e, RegionError::BadMagic(_)), "{e}");
    assert!(name.file_path().exists());
}

#[test]
#[cfg_attr(not(shmval_root), ignore = "needs root")]
fn remove_stale_refuses_another_owners_region() {
    let name = TestName::new("theirs");
    // A region whose creator is dead: our pid under another start key.
    let mut image = region_image(SIZE, 0);
    let key = shmval::sync::process_start_key(std::process::id()).unwrap();
    put_u64(&mut image, field::CREATOR_START, key + 1);
    write_shm_file(&name, &image);
    let path = name.file_path();
    std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    match Region::remove_stale(&name).unwrap_err() {
        RegionError::WrongOwner { found, .. } => assert_eq!(found, NOBODY),
        e => panic!("{e}"),
    }
    assert!(path.exists());
    // The owner was the only obstacle.
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    assert!(Region::remove_stale(&name).unwrap());
    assert!(!path.exists());
}

// ---------------------------------------------------------------------------------------
// Racing creators

#[test]
fn racing_creators_one_wins_and_no_private_names_remain() {
    for round in 0..20 {
        let name = TestName::new("race");
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (name, barrier) = (name.name.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Region::create(&name, SIZE)
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(matches!(e, RegionError::AlreadyExists(_)), "{e}");
            }
        }
        assert_eq!(shm_files_of(&name), vec![name.as_str().to_string()]);
        drop(results);
        assert!(shm_files_of(&name).is_empty(), "{:?}", shm_files_of(&name));
    }
}

#[test]
fn child_role() {
    role_entry(&[
        ("list_builder", list_builder),
        ("outlive_creator", outlive_creator),
        ("create_persisted", create_persisted),
    ]);
}

// ---------------------------------------------------------------------------------------
// Two-phase creation

/// The files a build in progress has in `/dev/shm`: none when built in an unnamed file,
/// the private name in the fallback.
fn files_while_building(private: bool) -> usize {
    if private {
        1
    } else {
        0
    }
}

#[test]
fn an_unpublished_region_is_invisible_until_published() {
    for private in [false, true] {
        let name = TestName::new("unpublished");
        let building = CreateOptions::new()
            .private_build_name(private)
            .build(&name, SIZE)
            .unwrap();
        // The creator formats it; nobody can open it under its name yet.
        word(building.region(), 4096).store(42, Ordering::SeqCst);
        assert!(matches!(
            Region::attach(&name),
            Err(RegionError::NotFound(_))
        ));
        assert_eq!(
            shm_files_of(&name).len(),
            files_while_building(private),
            "{:?}",
            shm_files_of(&name)
        );
        let created = building.publish().unwrap();
        let other = Region::attach(&name).unwrap();
        assert_eq!(word(&other, 4096).load(Ordering::SeqCst), 42);
        assert_eq!(shm_files_of(&name), vec![name.as_str().to_string()]);
        drop(other);
        drop(created);
        assert!(shm_files_of(&name).is_empty());
    }
}

#[test]
fn dropping_an_unpublished_region_leaves_nothing() {
    for private in [false, true] {
        let name = TestName::new("unpublished-drop");
        let building = CreateOptions::new()
            .private_build_name(private)
            .build(&name, SIZE)
            .unwrap();
        assert_eq!(shm_files_of(&name).len(), files_while_building(private));
        drop(building);
        assert!(shm_files_of(&name).is_empty());
    }
}

#[test]
fn publishing_onto_a_taken_name_fails_and_cleans_up() {
    for private in [false, true] {
        let name = TestName::new("unpublished-taken");
        let building = CreateOptions::new()
            .private_build_name(private)
            .build(&name, SIZE)
            .unwrap();
        let winner = Region::create(&name, SIZE).unwrap();
        assert!(matches!(
            building.publish(),
            Err(RegionError::AlreadyExists(_))
        ));
        assert_eq!(shm_files_of(&name), vec![name.as_str().to_string()]);
        drop(winner);
    }
}
