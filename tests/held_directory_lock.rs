//! The pipe directory while a child process holds its lock, paused in the middle of
//! adding a pipe (its entry filled in but not yet live), then stopped as well: every side
//! that needs the directory gives up at its deadline, dropping a side returns at once,
//! values still move through the pipes. Once the writer is killed, the next user of the
//! directory repairs it: the half-made entry is never seen, its name can be made again,
//! and only sound entries are listed. Each timing test prints its slack table
//! (`-- --nocapture`).

mod common;

use std::time::{Duration, Instant};

use common::held::{in_use, Bound, Holder, Slack, BOUND, RUNS};
use common::{role_entry, spawn_paused, ChildGuard, TestName};
use nix::sys::signal::Signal;
use shmval::sides::{ClientSide, ServerSide, ShmMain, SidesError};
use shmval::{PoolExt, Val};

const BYTES: u64 = 1 << 20;
const POINT: &str = "dir.create.filled";
/// The pipe the paused writer is adding.
const FRESH: &str = "fresh";

/// args: region, pipe. Arms `dir.create.filled` and starts a server side of a new pipe: it
/// pauses inside the directory's lock with the entry filled in but not live, reports it
/// through the parent's notice, and sleeps there until killed.
fn dir_writer(args: &[String]) {
    shmval::fault::arm(POINT);
    let r = ServerSide::new(args[0].clone(), args[1].clone(), 4)
        .timeout(Duration::from_secs(30))
        .start();
    panic!("the pipe's creation did not pause at {POINT}: {r:?}");
}

#[test]
fn child_role() {
    role_entry(&[("dir_writer", dir_writer)]);
}

/// A region with pipe "p", and a child paused adding pipe [`FRESH`] to its directory.
/// Returns the pool's use before the child started and the block of the half-made pipe
/// (bytes, blocks), which the child allocated before it paused.
fn paused_writer(name: &TestName, main: &ShmMain) -> (ChildGuard, (u64, u64)) {
    let before = in_use(main.pool());
    let child = spawn_paused("dir_writer", &[name.as_str(), FRESH], POINT);
    // The pool's lock is free: the writer holds only the directory's. Besides the
    // half-made pipe, it took a chunk for its ledger (given back once it is dead).
    let now = in_use(main.pool());
    let ledger = shmval::ledger::kept_by(main.pool(), child.pid());
    let half = (
        now.0 - before.0 - ledger.bytes,
        now.1 - before.1 - ledger.blocks,
    );
    assert_eq!(half.1, 1, "the half-made pipe is one block");
    (child, half)
}

/// The names of the pipes the directory lists, sorted.
fn listed(main: &ShmMain) -> Vec<String> {
    let mut names: Vec<String> = main
        .pipes()
        .unwrap()
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    names.sort();
    names
}

/// After the writer is killed: the next user of the directory takes its lock over and
/// repairs it. The half-made pipe is not listed and cannot be found; the name can be made
/// again; the half-made pipe's block stays allocated (nothing refers to it any more: the
/// documented cost of a writer killed there). Returns how long the repair took.
fn assert_repaired(name: &TestName, main: &ShmMain, want: &[&str]) -> Duration {
    let t = Instant::now();
    let names = listed(main);
    let took = t.elapsed();
    assert_eq!(names, want, "only sound entries are listed");
    let e = ClientSide::new(name.as_str(), FRESH)
        .timeout(BOUND)
        .start()
        .unwrap_err();
    assert!(matches!(e, SidesError::Timeout { .. }), "{e:?}");
    let again = ServerSide::new(name.as_str(), FRESH, 4)
        .timeout(Duration::from_secs(30))
        .start()
        .expect("the half-made pipe's name can be made again");
    let client = ClientSide::new(name.as_str(), FRESH)
        .timeout(Duration::from_secs(30))
        .start()
        .unwrap();
    let v = main
        .pool()
        .share(&Val::from("through the new pipe"))
        .unwrap();
    again.pipe().try_enqueue(v).unwrap();
    assert_eq!(
        client.pipe().try_dequeue().unwrap().to_val().unwrap(),
        Val::from("through the new pipe")
    );
    let mut with_fresh: Vec<&str> = want.iter().copied().chain([FRESH]).collect();
    with_fresh.sort();
    assert_eq!(listed(main), with_fresh);
    drop((again, client));
    assert_eq!(listed(main), want);
    took
}

#[test]
fn every_timeout_holds_against_a_directory_writer_paused_inside_its_lock() {
    let name = TestName::new("held-dir");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let base = in_use(main.pool());
    let region = name.as_str();
    // Sides to drop behind the holder: a client of "p", and the only user of a pipe of
    // its own (whose removal is then left to the next holder of the lock).
    let mut clients: Vec<ClientSide> = (0..2)
        .map(|_| ClientSide::new(region, "p").start().unwrap())
        .collect();
    let mut servers: Vec<ServerSide> = (0..2)
        .map(|i| {
            ServerSide::new(region, format!("gone-{i}"), 2)
                .start()
                .unwrap()
        })
        .collect();
    let mut mine = Some(main.pool().share(&Val::from(500u64)).unwrap());

    let (child, half) = paused_writer(&name, &main);
    let mut t = Slack::new(
        format!("directory lock held by a server side paused at {POINT}"),
        child.pid(),
    );
    let (timeout, at_once) = (Bound::Timeout(BOUND), Bound::AtOnce);
    for h in [Holder::Paused, Holder::Stopped] {
        if h == Holder::Stopped {
            child.stop();
        }
        for _ in 0..RUNS {
            for (call, pipe) in [
                ("ClientSide::start (100 ms timeout)", "p"),
                ("ClientSide::start (the half-made pipe)", FRESH),
            ] {
                let r = t.time(call, h, timeout, || {
                    ClientSide::new(region, pipe).timeout(BOUND).start()
                });
                match r {
                    Err(SidesError::Timeout { what, .. }) => {
                        assert!(what.contains("directory"), "{what}")
                    }
                    r => panic!("{call} behind the directory lock: {r:?}"),
                }
            }
            let r = t.time("ServerSide::start (100 ms timeout)", h, timeout, || {
                ServerSide::new(region, "other", 4).timeout(BOUND).start()
            });
            match r {
                Err(SidesError::Timeout { what, .. }) => {
                    assert!(what.contains("directory"), "{what}")
                }
                r => panic!("a server side behind the directory lock: {r:?}"),
            }
            let r = t.time("ShmMain::wait_idle(100 ms)", h, timeout, || {
                main.wait_idle(BOUND)
            });
            assert!(!r.unwrap(), "sides are attached: never idle");
            // The pipes need only their own locks.
            let p = server.pipe();
            let v = mine.take().unwrap();
            t.time("enqueue(v, 100 ms)", h, at_once, || p.enqueue(v, BOUND))
                .unwrap();
            mine = Some(
                t.time("dequeue(100 ms)", h, at_once, || p.dequeue(BOUND))
                    .unwrap(),
            );
        }
        let c = clients.pop().unwrap();
        t.time("drop(ClientSide)", h, at_once, || drop(c));
        let s = servers.pop().unwrap();
        t.time(
            "drop(ServerSide) (its pipe's last user)",
            h,
            at_once,
            || drop(s),
        );
    }
    child.signal(Signal::SIGCONT);
    child.kill();

    // The dropped server sides' pipes are removed by the repairing locker too.
    let took = assert_repaired(&name, &main, &["p"]);
    println!("{POINT}: the directory was repaired {took:?} after the kill");
    t.print();
    drop(mine);
    main.pool().verify().unwrap();
    assert_eq!(
        in_use(main.pool()),
        (base.0 + half.0, base.1 + half.1),
        "the pool holds the half-made pipe's block, nothing else"
    );
}

#[test]
fn a_directory_writer_killed_mid_update_is_repaired_by_the_next_user() {
    let name = TestName::new("dir-repair");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let base = in_use(main.pool());
    let (child, half) = paused_writer(&name, &main);
    // What stays once the writer is dead: everything now but its ledger's chunk (one: it
    // holds two entries), which recovery gives back.
    let chunk = main
        .region()
        .slots()
        .iter()
        .find(|s| s.pid == child.pid())
        .map(|s| s.data[0])
        .unwrap();
    let mut leaked: Vec<_> = main.pool().used_blocks().unwrap();
    leaked.retain(|b| b.offset.get() != chunk);
    child.kill();

    assert_repaired(&name, &main, &["p"]);
    // The pipe that was there before works on.
    let v = main.pool().share(&Val::from(1u64)).unwrap();
    server.pipe().try_enqueue(v).unwrap();
    assert_eq!(
        server.pipe().try_dequeue().unwrap().to_val().unwrap(),
        Val::from(1u64)
    );
    main.pool().verify().unwrap();
    // Exactly the half-made pipe's block stays allocated, where the writer left it.
    assert_eq!(in_use(main.pool()), (base.0 + half.0, base.1 + half.1));
    assert_eq!(main.pool().used_blocks().unwrap(), leaked);
}
