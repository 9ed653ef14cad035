//! Processes that fork without exec, as the original recommends: a child inherits copies of
//! the parent's handles, and dropping them there (or ending a thread that holds a block
//! cache) releases nothing of the parent's.
//!
//! Each test runs in a child process of its own (re-executed test binary), which then
//! forks: the fork happens in a small process rather than in the multi-threaded harness.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::Duration;

use common::{role_entry, spawn_role, TestName};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use shmval::queue::TrySendError;
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{val, PoolExt, Val};

const BYTES: u64 = 1 << 20;

#[test]
fn child_role() {
    role_entry(&[
        ("fork_and_drop", fork_and_drop),
        ("stale_pipe_in_a_child", stale_pipe_in_a_child),
        ("fork_in_a_caching_thread", fork_in_a_caching_thread),
    ]);
}

/// Runs `child` in a forked child, which exits 0 if it returns and 1 if it panics; waits
/// for it and asserts it succeeded.
fn in_forked_child(child: impl FnOnce()) {
    // SAFETY: the calling process is a small test child; the forked child runs only the
    // closure (which drops what it inherited, as returning from `main` would) and then
    // leaves with `_exit`, never returning into the caller's frames.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).is_ok();
            // SAFETY: `_exit` ends the process at once; nothing of the parent's runs here.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, 0) => {}
            other => panic!("the forked child failed: {other:?}"),
        },
    }
}

/// Builds a region with a pipe, two sides, a queued value, a held value and a raw block;
/// forks; the child drops every copy it inherited; the parent finds everything as before.
fn fork_and_drop(args: &[String]) {
    let name = &args[0];
    let main = ShmMain::new(name.clone(), BYTES).start().unwrap();
    let server = ServerSide::new(name.clone(), "p", 4).start().unwrap();
    let client = ClientSide::new(name.clone(), "p")
        .timeout(Duration::from_secs(10))
        .start()
        .unwrap();
    let pipe = client.pipe().clone();
    let queued = server.pool().share(&val!({"seq": 1})).unwrap();
    server.pipe().try_enqueue(queued).unwrap();
    let held = server.pool().share(&val!([1, 2, 3])).unwrap();
    let mut block = main.pool().alloc_block(64, 16).unwrap();
    block.as_bytes_mut().fill(0xab);
    let before = main.pool().stats().unwrap();
    let refs = pipe.ref_count();

    in_forked_child(|| {
        // SAFETY: in the forked child each value is read out of the child's own copy of
        // the parent's memory once and dropped once, as the child's `main` returning
        // would drop it; the child never touches the originals again (it `_exit`s).
        unsafe {
            drop(std::ptr::read(&pipe));
            drop(std::ptr::read(&client));
            drop(std::ptr::read(&server));
            drop(std::ptr::read(&held));
            drop(std::ptr::read(&block));
            drop(std::ptr::read(&main));
        }
    });
    // The child's drops were no-ops: the parent's copies are all still there.

    assert!(main.region().is_current(), "the child unlinked the region");
    let pipes = main.pipes().unwrap();
    assert_eq!((pipes.len(), pipes[0].users), (1, 2), "{pipes:?}");
    assert_eq!(pipe.ref_count(), refs);
    assert_eq!(held.ref_count(), 1);
    assert_eq!(held.to_val().unwrap(), val!([1, 2, 3]));
    assert!(block.as_bytes().iter().all(|&b| b == 0xab));
    let after = main.pool().stats().unwrap();
    assert_eq!(
        (after.used, after.live_allocations),
        (before.used, before.live_allocations)
    );
    assert_eq!(
        client.pipe().try_dequeue().unwrap().to_val().unwrap(),
        val!({"seq": 1})
    );
    // And the parent's own drops still release everything.
    drop((pipe, client, server, held, block));
    let end = main.pool().stats().unwrap();
    main.pool().verify().unwrap();
    assert!(end.used < before.used);
    let region = main.region().clone();
    drop(main);
    assert!(!region.is_current(), "the parent's drop unlinks the name");
}

/// A child keeps its inherited copy of a pipe handle while the parent's last reference
/// goes and a new pipe takes the block: the copy is stale, and using it is an error, never
/// a write into the new pipe.
fn stale_pipe_in_a_child(args: &[String]) {
    let name = &args[0];
    let main = ShmMain::new(name.clone(), BYTES).start().unwrap();
    let server = ServerSide::new(name.clone(), "old", 4).start().unwrap();
    let old = server.pipe().offset();
    let (go_rx, go_tx): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    let mut go_rx = std::fs::File::from(go_rx);
    let mut go_tx = std::fs::File::from(go_tx);

    // SAFETY: as in `in_forked_child`; the child waits for the parent's byte, then uses
    // its inherited handle and leaves with `_exit`.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut b = [0u8];
                go_rx.read_exact(&mut b).unwrap();
                let v = server.pool().share(&Val::from("late")).unwrap();
                let e = server.pipe().try_enqueue(v).unwrap_err();
                assert!(matches!(e, TrySendError::Corrupted(_)), "{e:?}");
                assert!(server.pipe().try_dequeue().is_err());
            }))
            .is_ok();
            // SAFETY: `_exit` ends the child at once.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        ForkResult::Parent { child } => {
            drop(server);
            // The old pipe is gone; a new one of the same size most likely takes its block.
            let fresh = ServerSide::new(name.clone(), "new", 4).start().unwrap();
            assert_eq!(fresh.pipe().offset(), old, "the new pipe reuses the block");
            go_tx.write_all(&[1]).unwrap();
            match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, 0) => {}
                other => panic!("the forked child failed: {other:?}"),
            }
            let s = fresh.pipe().stats().unwrap();
            assert_eq!((s.len, s.enqueued), (0, 0), "the stale handle wrote: {s:?}");
            drop(fresh);
            main.pool().verify().unwrap();
        }
    }
}

/// A thread that holds a block cache (with a block in it) forks; the child's copy of the
/// thread exits normally, running its thread-local destructors; the parent's thread still
/// holds its cache: another thread of the parent gets a cache of its own, not that one.
fn fork_in_a_caching_thread(args: &[String]) {
    let main = ShmMain::new(args[0].clone(), BYTES).start().unwrap();
    let pool = main.pool().clone();
    let (cached_tx, cached_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        // The first block may come from the heap, of any size that holds 16 bytes; the
        // second comes from the cache's list of 16-byte blocks and goes back to its head.
        let mut off = pool.alloc(16, 16).unwrap();
        for _ in 0..2 {
            // SAFETY: allocated just before, used by nothing; it stays in this thread's
            // cache.
            unsafe { pool.free(off) }.unwrap();
            off = pool.alloc(16, 16).unwrap();
        }
        // SAFETY: as above.
        unsafe { pool.free(off) }.unwrap();
        // SAFETY: the child returns from this closure at once, ending its only thread
        // (and so itself) through the thread's normal exit, which runs its destructors.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => return,
            ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, 0) => {}
                other => panic!("the forked child failed: {other:?}"),
            },
        }
        cached_tx.send(off).unwrap();
        // Holds the cache until the other thread has allocated.
        let _ = done_rx.recv();
    });
    let cached = cached_rx.recv().unwrap();
    let pool = main.pool().clone();
    let other = std::thread::spawn(move || pool.alloc(16, 16).unwrap())
        .join()
        .unwrap();
    assert_ne!(
        other, cached,
        "the child's exit gave the parent thread's cache to another thread"
    );
    done_tx.send(()).unwrap();
    holder.join().unwrap();
    // SAFETY: allocated above by the other thread, used by nothing.
    unsafe { main.pool().free(other) }.unwrap();
    main.pool().verify().unwrap();
}

#[test]
fn a_forked_child_of_a_caching_thread_leaves_the_parent_its_cache() {
    let name = TestName::new("fork-cache");
    spawn_role("fork_in_a_caching_thread", &[name.as_str()]).wait_ok(Duration::from_secs(120));
}

#[test]
fn a_forked_child_dropping_what_it_inherited_releases_nothing_of_the_parent() {
    let name = TestName::new("fork-drop");
    spawn_role("fork_and_drop", &[name.as_str()]).wait_ok(Duration::from_secs(120));
}

#[test]
fn a_stale_pipe_handle_in_a_forked_child_is_an_error() {
    let name = TestName::new("fork-stale");
    spawn_role("stale_pipe_in_a_child", &[name.as_str()]).wait_ok(Duration::from_secs(120));
}
