//! Every timeout of a pipe's other users is honoured while a child process holds the
//! pipe's lock: paused inside a send or a receive, then stopped as well (a stopped process
//! is alive, so nothing may take its lock). Timed calls give up at their deadline with the
//! value back, `try_` calls answer at once, the sides come and go; once the holder is
//! killed the survivors take the lock over and the pool holds exactly what the dead child
//! held. Each test prints the slack of every call (`-- --nocapture`).

mod common;

use std::time::{Duration, Instant};

use common::held::{assert_held_by, in_use, Bound, Holder, Slack, BOUND, RUNS};
use common::{role_entry, spawn_paused, ChildGuard, TestName};
use nix::sys::signal::Signal;
use shmval::queue::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{PoolExt, ShmVal, Val};

const BYTES: u64 = 1 << 20;
/// The value a paused sender was sending.
const HELD: u64 = 77;
/// The value the parent tries to send while the lock is held.
const MINE: u64 = 500;

/// args: region, pipe, pause point, "send" or "recv". Starts a client side of the pipe,
/// arms the point and sends (a value of its own) or receives: it pauses inside the pipe's
/// lock, reports it through the parent's notice, and sleeps there until killed.
fn ring_holder(args: &[String]) {
    let c = ClientSide::new(args[0].clone(), args[1].clone())
        .timeout(Duration::from_secs(30))
        .start()
        .unwrap();
    if args[3] == "send" {
        let v = c.pool().share(&Val::from(HELD)).unwrap();
        shmval::fault::arm(&args[2]);
        let r = c.pipe().enq(v);
        panic!("the send did not pause at {}: {r:?}", args[2]);
    }
    shmval::fault::arm(&args[2]);
    let r = c.pipe().deq();
    panic!("the receive did not pause at {}: {r:?}", args[2]);
}

#[test]
fn child_role() {
    role_entry(&[("ring_holder", ring_holder)]);
}

fn int(v: &ShmVal) -> u64 {
    u64::try_from(&v.to_val().unwrap()).unwrap()
}

/// Every call of the other side while the lock is held: timed ones give up at their
/// deadline (a value comes back), `try_` ones at once, wait_idle at its timeout; nothing
/// moves through the pipe. Returns the parent's value.
fn exercise(main: &ShmMain, server: &ServerSide, t: &mut Slack, h: Holder, v: ShmVal) -> ShmVal {
    let p = server.pipe();
    let len = p.len();
    let (timeout, at_once) = (Bound::Timeout(BOUND), Bound::AtOnce);
    let v = match t.time("enqueue(v, 100 ms)", h, timeout, || p.enqueue(v, BOUND)) {
        Err(SendTimeoutError::Timeout(v)) => v,
        r => panic!("enqueue behind the holder: {r:?}"),
    };
    let r = t.time("dequeue(100 ms)", h, timeout, || p.dequeue(BOUND));
    assert_eq!(r.map(|v| int(&v)), Err(RecvTimeoutError::Timeout));
    let mut out = Vec::new();
    let r = t.time("dequeue_batch(4, 100 ms)", h, timeout, || {
        p.dequeue_batch(&mut out, 4, BOUND)
    });
    assert_eq!(r, Err(RecvTimeoutError::Timeout));
    assert!(out.is_empty());
    let v = match t.time("try_enqueue(v)", h, at_once, || p.try_enqueue(v)) {
        Err(TrySendError::Full(v)) => v,
        r => panic!("try_enqueue behind the holder: {r:?}"),
    };
    let r = t.time("try_dequeue()", h, at_once, || p.try_dequeue());
    assert_eq!(r.map(|v| int(&v)), Err(TryRecvError::Empty));
    let r = t.time("try_dequeue_batch(4)", h, at_once, || {
        p.try_dequeue_batch(&mut out, 4)
    });
    assert_eq!(r, Err(TryRecvError::Empty));
    let r = t.time("ShmMain::wait_idle(100 ms)", h, timeout, || {
        main.wait_idle(BOUND)
    });
    assert!(!r.unwrap(), "sides are attached: never idle");
    // The sides need only the directory's lock (and a new pipe the pool's).
    let c = t.time("ClientSide::start (100 ms timeout)", h, at_once, || {
        ClientSide::new(main.region().name().as_str(), "p")
            .timeout(BOUND)
            .start()
    });
    t.time("drop(ClientSide)", h, at_once, || drop(c.unwrap()));
    let s = t.time("ServerSide::start (new pipe, 100 ms)", h, at_once, || {
        ServerSide::new(main.region().name().as_str(), "other", 2)
            .timeout(BOUND)
            .start()
    });
    t.time("drop(ServerSide) (its pipe destroyed)", h, at_once, || {
        drop(s.unwrap())
    });
    assert_eq!(p.len(), len, "nothing moved through the held pipe");
    assert_eq!(int(&v), MINE);
    v
}

/// A child paused at `point` inside a `op` ("send" or "recv") of a pipe of 4 slots that
/// holds items 1 and 2: every call of the parent keeps its bound while the child is
/// paused and while it is stopped. After SIGCONT and SIGKILL the parent sends again;
/// returns what the pipe then holds, in order, with the values the dead child kept
/// allocated once recovery has run (checked against the pool exactly).
fn held_pipe(point: &str, op: &str, leaked: u64) -> Vec<u64> {
    let name = TestName::new("held-pipe");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let pool = main.pool();
    let base = in_use(pool);
    let one = pool.share(&Val::from(0u64)).unwrap();
    let unit = (in_use(pool).0 - base.0, in_use(pool).1 - base.1);
    drop(one);
    for i in [1u64, 2] {
        let v = pool.share(&Val::from(i)).unwrap();
        server.pipe().try_enqueue(v).unwrap();
    }
    let mut mine = pool.share(&Val::from(MINE)).unwrap();

    let child: ChildGuard = spawn_paused("ring_holder", &[name.as_str(), "p", point, op], point);
    assert_held_by(server.pipe().lock_owner(), child.pid(), "the pipe's lock");
    let mut table = Slack::new(
        format!("pipe lock held by a {op} paused at {point}"),
        child.pid(),
    );
    for holder in [Holder::Paused, Holder::Stopped] {
        if holder == Holder::Stopped {
            child.stop();
        }
        for _ in 0..RUNS {
            mine = exercise(&main, &server, &mut table, holder, mine);
        }
        // A stopped holder keeps the lock: it is alive.
        assert_held_by(server.pipe().lock_owner(), child.pid(), "the pipe's lock");
    }
    child.signal(Signal::SIGCONT);
    child.kill();

    // The survivor takes the lock over from the dead holder.
    let t = Instant::now();
    server
        .pipe()
        .enqueue(mine, Duration::from_secs(30))
        .expect("the survivor sends again");
    println!(
        "{point}: the parent sent again {:?} after the kill",
        t.elapsed()
    );
    table.print();
    let mut got = Vec::new();
    while let Ok(v) = server.pipe().try_dequeue() {
        got.push(int(&v));
    }
    pool.verify().unwrap();
    assert_eq!(
        in_use(pool),
        (base.0 + leaked * unit.0, base.1 + leaked * unit.1),
        "{point}: the pool should hold exactly the {leaked} values the dead child held"
    );
    got
}

#[test]
fn every_timeout_holds_against_a_sender_paused_before_its_commit() {
    // The dead sender's value never entered the pipe; it held the value's only reference,
    // which recovery drops.
    let got = held_pipe("ring.send.slot_written", "send", 0);
    assert_eq!(got, [1, 2, MINE]);
}

#[test]
fn every_timeout_holds_against_a_sender_paused_after_its_commit() {
    let got = held_pipe("ring.send.committed", "send", 0);
    assert_eq!(got, [1, 2, HELD, MINE]);
}

#[test]
fn every_timeout_holds_against_a_receiver_paused_before_its_commit() {
    let got = held_pipe("ring.recv.read", "recv", 0);
    assert_eq!(got, [1, 2, MINE]);
}

#[test]
fn every_timeout_holds_against_a_receiver_paused_after_its_commit() {
    // Item 1 was the dead receiver's from its commit on: recovery drops it.
    let got = held_pipe("ring.recv.committed", "recv", 0);
    assert_eq!(got, [2, MINE]);
}
