//! ShmMain, ServerSide and ClientSide: start orders, waiting, the break checker, the
//! directory's lifecycle.

// The shared test helpers count with std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{blocked_in, role_entry, spawn_role, this_thread, wait_until, TestName};
use shmval::queue::{SendError, SendTimeoutError, TrySendError};
use shmval::region::{AttachOptions, Region, RegionError};
use shmval::sides::{ClientSide, ServerSide, ShmMain, SidesError, MAX_PIPES};
use shmval::{PoolExt, Val};

const BYTES: u64 = 1 << 20;

/// The system calls a wait for a region's file sleeps in (poll on an inotify watch).
#[cfg(target_arch = "x86_64")]
const POLL: &[libc::c_long] = &[libc::SYS_poll, libc::SYS_ppoll];
#[cfg(not(target_arch = "x86_64"))]
const POLL: &[libc::c_long] = &[libc::SYS_ppoll];

#[test]
fn child_role() {
    role_entry(&[("persisted_main", persisted_main)]);
}

/// Creates a persisted pool and exits without unlinking it, as a crashed creator would.
fn persisted_main(args: &[String]) {
    let m = ShmMain::new(args[0].clone(), BYTES)
        .persist(true)
        .start()
        .unwrap();
    std::mem::forget(m);
}

#[test]
fn server_then_client_share_one_pipe() {
    let name = TestName::new("sides-order1");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "pipe1", 4).start().unwrap();
    let client = ClientSide::new(name.as_str(), "pipe1")
        .timeout(Duration::from_secs(5))
        .start()
        .unwrap();
    assert_eq!(server.pipe().offset(), client.pipe().offset());
    assert_eq!(client.pipe().capacity(), 4);
    let pipes = main.pipes().unwrap();
    assert_eq!(pipes.len(), 1);
    assert_eq!(pipes[0].name.as_str(), "pipe1");
    assert_eq!(pipes[0].users, 2);
}

/// How long a wait below sleeps unless woken: far past any bound the tests assert, so
/// only a wake-up can end it in time. (A wait for the region sleeps at most 65 s a slice.)
const NEVER: Duration = Duration::from_secs(120);

#[test]
fn a_client_started_first_waits_for_the_region_and_the_pipe() {
    let name = TestName::new("sides-order2");
    let n = name.as_str().to_string();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        tid_tx.send(this_thread()).unwrap();
        ClientSide::new(n, "p")
            .timeout(Duration::from_secs(600))
            .micro_sleep(NEVER)
            .start()
    });
    let (pid, tid) = (std::process::id(), tid_rx.recv().unwrap());
    // The client sleeps on its inotify watch for the region to appear...
    assert!(
        wait_until(Duration::from_secs(30), || blocked_in(pid, tid, POLL)),
        "the client never waited for the region"
    );
    let t = Instant::now();
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    // ...then on the directory's change word for the pipe.
    assert!(
        wait_until(Duration::from_secs(30), || blocked_in(
            pid,
            tid,
            &[libc::SYS_futex]
        )),
        "the client never waited for the pipe"
    );
    let server = ServerSide::new(name.as_str(), "p", 2).start().unwrap();
    let client = client.join().unwrap().unwrap();
    // The waits were woken by the region's creation (inotify) and the directory's change
    // (futex): left alone, either would have slept past the bound.
    let took = t.elapsed();
    println!("the waiting client started {took:?} after the region was created");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(client.pipe().offset(), server.pipe().offset());
}

#[test]
fn the_break_checker_ends_a_blocked_client_start() {
    let name = TestName::new("sides-break");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let asked = Arc::new(AtomicU64::new(0));
    let (s2, a2) = (stop.clone(), asked.clone());
    let n = name.as_str().to_string();
    let client = std::thread::spawn(move || {
        ClientSide::new(n, "never")
            .micro_sleep(Duration::from_millis(50))
            .break_checker(move || {
                a2.fetch_add(1, Ordering::SeqCst);
                s2.load(Ordering::SeqCst)
            })
            .start()
    });
    // The checker is asked before each sleep of the wait for the pipe: once asked, the
    // start is waiting.
    assert!(
        wait_until(Duration::from_secs(30), || asked.load(Ordering::SeqCst) > 0),
        "the start never waited"
    );
    let t = Instant::now();
    stop.store(true, Ordering::SeqCst);
    let r = client.join().unwrap();
    assert!(matches!(r, Err(SidesError::Broken(_))), "{r:?}");
    // Asked every 50 ms; the bound only catches a wait the checker cannot end.
    let took = t.elapsed();
    println!("the blocked start ended {took:?} after the checker said stop");
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn a_missing_region_times_out_with_a_clear_error() {
    let name = TestName::new("sides-timeout");
    let t = Instant::now();
    let r = ClientSide::new(name.as_str(), "p")
        .timeout(Duration::from_millis(150))
        .start();
    let took = t.elapsed();
    let e = r.unwrap_err();
    assert!(matches!(e, SidesError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains(name.as_str()), "{e}");
    println!("a 150 ms start timed out after {took:?}");
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn a_live_pipe_name_is_refused_unless_reattaching() {
    let name = TestName::new("sides-exists");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let first = ServerSide::new(name.as_str(), "p", 2).start().unwrap();
    let e = ServerSide::new(name.as_str(), "p", 2).start().unwrap_err();
    assert!(
        matches!(e, SidesError::PipeExists(ref p) if p == "p"),
        "{e:?}"
    );
    let again = ServerSide::new(name.as_str(), "p", 8)
        .reattach(true)
        .start()
        .unwrap();
    assert_eq!(again.pipe().offset(), first.pipe().offset());
    assert_eq!(again.pipe().capacity(), 2);
}

#[test]
fn the_last_user_removes_a_pipe_unless_persisted() {
    let name = TestName::new("sides-last");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    // What this process's ledger keeps is left out: it grows with what is held, and stays.
    let used = || main.pool().stats().unwrap().used - shmval::ledger::kept(main.pool()).bytes;
    let baseline = used();
    let server = ServerSide::new(name.as_str(), "gone", 2).start().unwrap();
    let client = ClientSide::new(name.as_str(), "gone").start().unwrap();
    drop(server);
    assert_eq!(main.pipes().unwrap().len(), 1, "the client still uses it");
    drop(client);
    assert!(main.pipes().unwrap().is_empty());
    assert_eq!(used(), baseline);

    let kept = ServerSide::new(name.as_str(), "kept", 2)
        .persist(true)
        .start()
        .unwrap();
    drop(kept);
    let pipes = main.pipes().unwrap();
    assert_eq!(pipes.len(), 1);
    assert!(pipes[0].persist);
    assert_eq!(pipes[0].users, 0);
    let back = ClientSide::new(name.as_str(), "kept").start().unwrap();
    assert_eq!(back.pipe().offset(), pipes[0].offset);
}

#[test]
fn shm_main_unlinks_on_drop_and_attached_sides_keep_working() {
    let name = TestName::new("sides-unlink");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 2).start().unwrap();
    drop(main);
    assert!(!name.file_path().exists());
    // The mapping still works: values still move through the pipe.
    let v = server.pool().share(&Val::from("still here")).unwrap();
    server.pipe().try_enqueue(v).unwrap();
    let back = server.pipe().try_dequeue().unwrap();
    assert_eq!(back.to_val().unwrap(), Val::from("still here"));
}

#[test]
fn a_side_started_after_its_region_was_replaced_uses_the_new_one() {
    let name = TestName::new("sides-replaced");
    let first = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let old_id = first.region().id();
    // A side on the first region keeps it mapped, and this process's handle of it in use,
    // after its main unlinks the name.
    let old = ServerSide::new(name.as_str(), "p", 2).start().unwrap();
    drop(first);
    let second = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    // Started at once: the handle's last look at the file is recent, but the header says
    // the name was unlinked.
    let new = ServerSide::new(name.as_str(), "p", 2).start().unwrap();
    assert_eq!(new.pool().region().id(), second.region().id());
    assert_ne!(new.pool().region().id(), old_id);
    assert_eq!(old.pool().region().id(), old_id);
}

#[test]
fn a_persisted_main_keeps_the_name() {
    let name = TestName::new("sides-persist");
    let main = ShmMain::new(name.as_str(), BYTES)
        .persist(true)
        .start()
        .unwrap();
    drop(main);
    assert!(name.file_path().exists());
    // A client can still find the pool and make pipes in it.
    let _s = ServerSide::new(name.as_str(), "p", 2).start().unwrap();
}

#[test]
fn a_stale_region_is_replaced_by_the_next_main() {
    let name = TestName::new("sides-stale");
    spawn_role("persisted_main", &[name.as_str()]).wait_ok(Duration::from_secs(30));
    // An observer: a registered handle would make the region live.
    let old = AttachOptions::new().register(false).attach(&name).unwrap();
    assert!(!old.info().creator_alive());
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    assert_ne!(main.region().id(), old.id());
    assert!(!old.is_current());
}

#[test]
fn a_live_main_is_not_replaced() {
    let name = TestName::new("sides-live");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let e = ShmMain::new(name.as_str(), BYTES).start().unwrap_err();
    assert!(
        matches!(e, SidesError::Region(RegionError::AlreadyExists(_))),
        "{e:?}"
    );
}

#[test]
fn a_region_without_a_directory_is_refused() {
    let name = TestName::new("sides-nodir");
    let _plain = Region::create(&name, BYTES).unwrap();
    let e = ClientSide::new(name.as_str(), "p")
        .timeout(Duration::from_secs(1))
        .start()
        .unwrap_err();
    // A bare region holds no pool either.
    assert!(
        matches!(e, SidesError::Alloc(_) | SidesError::NoDirectory(_)),
        "{e:?}"
    );
}

#[test]
fn bad_names_and_capacities_are_errors() {
    let name = TestName::new("sides-bad");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    assert!(matches!(
        ServerSide::new(name.as_str(), "a b", 2).start(),
        Err(SidesError::BadPipeName { .. })
    ));
    assert!(matches!(
        ServerSide::new(name.as_str(), "p", 0).start(),
        Err(SidesError::Pipe(_))
    ));
    assert!(matches!(
        ShmMain::new("bad/name", BYTES).start(),
        Err(SidesError::Region(RegionError::BadName { .. }))
    ));
}

#[test]
fn wait_idle_returns_once_every_side_is_gone() {
    let name = TestName::new("sides-idle");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 2).start().unwrap();
    assert!(!main.wait_idle(Duration::from_millis(50)).unwrap());
    std::thread::scope(|s| {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let main = &main;
        let waiter = s.spawn(move || {
            tid_tx.send(this_thread()).unwrap();
            main.wait_idle(Duration::from_secs(600)).unwrap()
        });
        // Drop the side while wait_idle sleeps on the directory's change word.
        let (pid, tid) = (std::process::id(), tid_rx.recv().unwrap());
        assert!(
            wait_until(Duration::from_secs(30), || blocked_in(
                pid,
                tid,
                &[libc::SYS_futex]
            )),
            "wait_idle never waited"
        );
        drop(server);
        assert!(waiter.join().unwrap());
    });
}

#[test]
fn a_value_of_another_region_is_refused_with_the_value_back() {
    let (na, nb) = (
        TestName::new("sides-wrong-a"),
        TestName::new("sides-wrong-b"),
    );
    let ma = ShmMain::new(na.as_str(), BYTES).start().unwrap();
    let mb = ShmMain::new(nb.as_str(), BYTES).start().unwrap();
    let sa = ServerSide::new(na.as_str(), "p", 4).start().unwrap();
    let sb = ServerSide::new(nb.as_str(), "p", 4).start().unwrap();
    let mut v = sa.pool().share(&Val::from("of region a")).unwrap();
    let at = v.offset();
    let before = (ma.pool().stats().unwrap(), mb.pool().stats().unwrap());
    let b = sb.pipe();
    for how in ["try_enqueue", "enqueue", "enq"] {
        v = match how {
            "try_enqueue" => match b.try_enqueue(v) {
                Err(TrySendError::WrongRegion(v)) => v,
                r => panic!("{how} of another region's value: {r:?}"),
            },
            "enqueue" => match b.enqueue(v, Duration::from_millis(100)) {
                Err(SendTimeoutError::WrongRegion(v)) => v,
                r => panic!("{how} of another region's value: {r:?}"),
            },
            _ => match b.enq(v) {
                Err(SendError::WrongRegion(v)) => v,
                r => panic!("{how} of another region's value: {r:?}"),
            },
        };
        assert_eq!(v.offset(), at, "{how}: the same value comes back");
    }
    // Nothing changed in either pool or either pipe.
    assert_eq!(
        (ma.pool().stats().unwrap(), mb.pool().stats().unwrap()),
        before
    );
    let s = b.stats().unwrap();
    assert_eq!((s.enqueued, s.len), (0, 0));
    assert_eq!(sa.pipe().len(), 0);
    ma.pool().verify().unwrap();
    mb.pool().verify().unwrap();
    // The value still moves through its own region's pipe.
    sa.pipe().try_enqueue(v).unwrap();
    let back = sa.pipe().try_dequeue().unwrap();
    assert_eq!(back.to_val().unwrap(), Val::from("of region a"));
}

#[test]
fn a_full_directory_refuses_a_pipe_until_one_goes() {
    let name = TestName::new("sides-full");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let mut sides: Vec<ServerSide> = (0..MAX_PIPES)
        .map(|i| {
            ServerSide::new(name.as_str(), format!("p{i}"), 1)
                .start()
                .unwrap()
        })
        .collect();
    assert_eq!(main.pipes().unwrap().len(), MAX_PIPES);
    let used = main.pool().stats().unwrap().used;
    let e = ServerSide::new(name.as_str(), "late", 1)
        .start()
        .unwrap_err();
    assert!(
        matches!(e, SidesError::DirectoryFull(n) if n == MAX_PIPES),
        "{e:?}"
    );
    // Refused before any block was taken for it.
    assert_eq!(main.pool().stats().unwrap().used, used);
    // One pipe goes (its last user drops): another can be made, and then no more.
    drop(sides.remove(17));
    let late = ServerSide::new(name.as_str(), "late", 1).start().unwrap();
    let names: Vec<String> = main
        .pipes()
        .unwrap()
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    assert_eq!(names.len(), MAX_PIPES);
    assert!(names.iter().any(|n| n == "late") && !names.iter().any(|n| n == "p17"));
    let e = ServerSide::new(name.as_str(), "later", 1)
        .start()
        .unwrap_err();
    assert!(matches!(e, SidesError::DirectoryFull(_)), "{e:?}");
    drop((late, sides));
    assert!(main.pipes().unwrap().is_empty());
    main.pool().verify().unwrap();
}
