//! A pipe cannot outlive its memory: handles and directory entries count references to the
//! pipe's block, the last one drops what is queued and frees it, and the directory lists
//! snapshots rather than handles.

mod common;

use std::time::Duration;

use common::{role_entry, spawn_paused, TestName};
use shmval::alloc::Pool;
use shmval::queue::{Pipe, PipeError};
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{PoolExt, Val};

const BYTES: u64 = 1 << 20;

/// What a pool's use comes back to once everything is freed.
fn in_use(pool: &Pool) -> (u64, u64) {
    // What this process's ledgers keep grows with the values held at once, and stays.
    let s = pool.stats().unwrap();
    let k = shmval::ledger::kept(pool);
    (s.used - k.bytes, s.live_allocations - k.blocks)
}

/// args: region, pipe. Starts the only side of a new pipe and drops it, paused where its
/// user count is off the directory entry but the entry is not yet marked as unused.
fn last_user(args: &[String]) {
    let side = ServerSide::new(args[0].clone(), args[1].clone(), 4)
        .timeout(Duration::from_secs(30))
        .start()
        .expect("the pipe");
    shmval::fault::arm("dir.release.counted");
    drop(side);
    panic!("the side's drop did not pause at dir.release.counted");
}

#[test]
fn child_role() {
    role_entry(&[("last_user", last_user)]);
}

/// The last user of a pipe killed between taking its count off the directory entry and
/// marking the entry unused: holders of the directory lock meanwhile look past it (its
/// mark is not there yet), and recovery of the dead process marks it, so the next holder
/// removes the pipe and its block comes back.
#[test]
fn a_last_user_killed_before_marking_its_entry_still_has_its_pipe_removed() {
    let name = TestName::new("pipe-last-user-killed");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let base = in_use(main.pool());
    let child = spawn_paused("last_user", &[name.as_str(), "solo"], "dir.release.counted");
    // Paused: the entry has no user, and no holder of the lock looks at it.
    let listed = main.pipes().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].users, 0);
    child.kill();
    main.recover();
    assert!(
        main.pipes().unwrap().is_empty(),
        "the dead user's pipe is removed"
    );
    assert_eq!(in_use(main.pool()), base);
    main.pool().verify().unwrap();
}

#[test]
fn a_cloned_pipe_outlives_its_sides_and_frees_its_block_last() {
    let name = TestName::new("pipe-clone-outlives");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let base = in_use(main.pool());
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let client = ClientSide::new(name.as_str(), "p")
        .timeout(Duration::from_secs(5))
        .start()
        .unwrap();
    let pipe = client.pipe().clone();
    // Two sides, the entry, and this clone.
    assert_eq!(pipe.ref_count(), 4);
    drop(server);
    drop(client);
    // Its last user gone and nothing in it, the pipe has left the directory, but the clone
    // still works on a live block.
    assert!(main.pipes().unwrap().is_empty());
    assert_eq!(pipe.ref_count(), 1);
    let v = main.pool().share(&Val::from("queued")).unwrap();
    pipe.try_enqueue(v).unwrap();
    let got = pipe.try_dequeue().unwrap();
    assert_eq!(got.to_val().unwrap(), Val::from("queued"));
    drop(got);
    let v = main.pool().share(&Val::from(7)).unwrap();
    pipe.try_enqueue(v).unwrap();
    // The last reference drops the value still queued and frees the block.
    drop(pipe);
    assert_eq!(in_use(main.pool()), base);
    main.pool().verify().unwrap();
}

#[test]
fn the_directory_lists_snapshots_not_handles() {
    let name = TestName::new("pipe-list-snapshot");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let base = in_use(main.pool());
    let server = ServerSide::new(name.as_str(), "p", 8).start().unwrap();
    let v = server.pool().share(&Val::from(1)).unwrap();
    server.pipe().try_enqueue(v).unwrap();
    let listed = main.pipes().unwrap();
    assert_eq!(listed.len(), 1);
    let e = &listed[0];
    assert_eq!(
        (e.name.as_str(), e.offset, e.users, e.persist),
        ("p", server.pipe().offset(), 1, false)
    );
    assert_eq!((e.stats.capacity, e.stats.len, e.stats.enqueued), (8, 1, 1));
    // Listing took no reference: the side and the entry hold the pipe.
    assert_eq!(server.pipe().ref_count(), 2);
    drop(server);
    // The value queued keeps the pipe listed after its last user went.
    assert_eq!(main.pipes().unwrap()[0].users, 0);
    assert!(main.remove_pipe("p").unwrap());
    // The snapshot outlives the pipe harmlessly.
    assert_eq!(listed[0].stats.len, 1);
    assert_eq!(in_use(main.pool()), base);
}

#[test]
fn a_pipe_whose_block_was_freed_cannot_be_opened() {
    let name = TestName::new("pipe-stale-open");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let pool = main.pool();
    let base = in_use(pool);
    let pipe = Pipe::create(pool, 4).unwrap();
    let off = pipe.offset();
    // SAFETY: `pipe` keeps the block alive during the call.
    let again = unsafe { Pipe::open(pool, off) }.unwrap();
    assert_eq!(pipe.ref_count(), 2);
    drop(again);
    drop(pipe);
    assert_eq!(in_use(pool), base);
    // The block is gone (its magic cleared): opening its offset again is refused.
    // SAFETY: nothing else uses the freed block meanwhile (this test is its only user), so
    // the read of its old bytes races with no writer.
    let stale = unsafe { Pipe::open(pool, off) };
    assert!(matches!(stale, Err(PipeError::BadPipe(_))), "{stale:?}");
    // Reused for a value, the block still does not pass for a pipe.
    let _filler = pool.array::<u64>(20).unwrap();
    // SAFETY: as above; the array's handle is only held, not written, meanwhile.
    let stale = unsafe { Pipe::open(pool, off) };
    assert!(stale.is_err(), "{stale:?}");
}
