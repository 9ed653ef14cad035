//! The pool's accounting after a consumer process is killed: between receives it leaves
//! nothing behind; holding a packet it received, it leaves exactly that packet.

mod common;

use std::time::Duration;

use common::held::in_use;
use common::{role_entry, spawn_role, wait_until, TestName};
use shmval::queue::RecvError;
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{val, PoolExt, Val};

const BYTES: u64 = 1 << 20;

/// args: region, pipe, n, then. Receives `n` values, then by `then`: "exit" (each dropped
/// as received), "wait" (each dropped, then waits in the next receive until killed),
/// "hold" (keeps the last one while it waits in the next receive until killed).
fn consume(args: &[String]) {
    let c = ClientSide::new(args[0].clone(), args[1].clone())
        .timeout(Duration::from_secs(30))
        .start()
        .unwrap();
    let n: u64 = args[2].parse().unwrap();
    let mut held = None;
    for _ in 0..n {
        let v = c.pipe().deq().unwrap();
        if args[3] == "hold" {
            held = Some(v);
        }
    }
    if args[3] == "exit" {
        return;
    }
    let r = c.pipe().deq();
    if matches!(r, Err(RecvError::Closed | RecvError::Disconnected)) {
        // A test may close the pipe before it kills this process: it goes on holding what
        // it holds until the kill comes.
        std::thread::sleep(Duration::from_secs(60));
    }
    panic!("received {r:?} while waiting to be killed (holding {held:?})");
}

/// args: region, in, out. Receives one value from `in` and forwards it to `out`, which is
/// full: it waits in the send until killed.
fn forward(args: &[String]) {
    let c = ClientSide::new(args[0].clone(), args[1].clone())
        .timeout(Duration::from_secs(30))
        .start()
        .unwrap();
    let out = ClientSide::new(args[0].clone(), args[2].clone())
        .timeout(Duration::from_secs(30))
        .start()
        .unwrap();
    let v = c.pipe().deq().unwrap();
    let r = out.pipe().enq(v);
    panic!("sent ({r:?}) while waiting to be killed");
}

#[test]
fn child_role() {
    role_entry(&[("consume", consume), ("forward", forward)]);
}

/// Waits until the consumers have taken `n` items and one sleeps waiting for the next.
fn wait_for_receiver(server: &ServerSide, n: u64) {
    assert!(
        wait_until(Duration::from_secs(60), || {
            let s = server.pipe().stats().unwrap();
            s.dequeued == n && s.receivers_waiting > 0
        }),
        "the consumer never took {n} items and waited: {:?}",
        server.pipe().stats()
    );
}

/// The pool's use once this process's ledger has its first chunk (which it keeps while
/// the region handle lives).
fn baseline(pool: &shmval::alloc::Pool) -> (u64, u64) {
    drop(pool.share(&Val::from(0u64)).unwrap());
    in_use(pool)
}

#[test]
fn a_consumer_killed_between_receives_leaves_the_pool_at_its_baseline() {
    let name = TestName::new("kill-consumer");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let pool = main.pool();
    // The pipe is made and empty.
    let base = baseline(pool);
    let first = spawn_role("consume", &[name.as_str(), "p", "3", "wait"]);
    for i in 0..3u64 {
        server
            .pipe()
            .enq(pool.share(&Val::from(i)).unwrap())
            .unwrap();
    }
    // It has dropped what it received and sleeps in its next receive.
    wait_for_receiver(&server, 3);
    first.kill();
    // What it held is given back: its records, its pipe handle and ends, its user count,
    // its count as a waiter.
    let r = main.recover();
    assert_eq!(r.processes, 1, "{r:?}");
    assert_eq!(r.total.suspects, 0, "{r:?}");
    let s = server.pipe().stats().unwrap();
    assert_eq!((s.receivers, s.receivers_waiting), (0, 0), "{s:?}");
    assert_eq!(
        main.pipes().unwrap()[0].users,
        1,
        "only the server uses the pipe"
    );
    assert_eq!(in_use(pool), base, "the pool is back at its baseline");
    // The producer goes on; another consumer takes the rest.
    let second = spawn_role("consume", &[name.as_str(), "p", "5", "exit"]);
    for i in 3..8u64 {
        server
            .pipe()
            .enq(pool.share(&Val::from(i)).unwrap())
            .unwrap();
    }
    second.wait_ok(Duration::from_secs(60));
    let s = server.pipe().stats().unwrap();
    assert_eq!((s.enqueued, s.dequeued, s.len), (8, 8, 0));
    pool.verify().unwrap();
    // The second consumer left normally: its ledger's chunk went to the pool's deferred
    // frees, which the next allocation drains.
    assert_eq!(baseline(pool), base, "the pool is back at its baseline");
    // The last user leaves an empty pipe: it goes.
    drop(server);
    assert_eq!(main.pipes().unwrap().len(), 0);
}

#[test]
fn a_consumer_killed_holding_a_packet_leaves_the_pool_at_its_baseline() {
    let name = TestName::new("kill-holder");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let pool = main.pool();
    let base = baseline(pool);
    let packet = pool
        .share(&val!({"seq": 1, "xs": [1.5, 2.5], "name": "a packet of several blocks"}))
        .unwrap();
    let with_packet = in_use(pool);
    assert!(with_packet.1 > base.1 + 1, "the packet is several blocks");
    let consumer = spawn_role("consume", &[name.as_str(), "p", "1", "hold"]);
    server.pipe().enq(packet).unwrap();
    // It holds the packet it received and sleeps in its next receive.
    wait_for_receiver(&server, 1);
    consumer.kill();
    let r = main.recover();
    assert_eq!(
        (r.processes, r.total.handles, r.total.suspects),
        (1, 1, 0),
        "{r:?}"
    );
    assert!(r.last_bytes > 0, "{r:?}");
    // The pipe works on.
    let v = pool.share(&Val::from(2u64)).unwrap();
    server.pipe().try_enqueue(v).unwrap();
    assert_eq!(
        server.pipe().try_dequeue().unwrap().to_val().unwrap(),
        Val::from(2u64)
    );
    pool.verify().unwrap();
    assert_eq!(
        in_use(pool),
        base,
        "the dead consumer's packet is given back"
    );
}

#[test]
fn a_dead_consumers_packet_comes_back_by_itself_on_the_survivors_next_calls() {
    let name = TestName::new("kill-auto");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let pool = main.pool();
    let base = baseline(pool);
    let consumer = spawn_role("consume", &[name.as_str(), "p", "1", "hold"]);
    server
        .pipe()
        .enq(pool.share(&val!({"seq": 1, "xs": [1.5, 2.5]})).unwrap())
        .unwrap();
    wait_for_receiver(&server, 1);
    consumer.kill();
    // The survivor only goes on with its work: each call may look for the dead.
    let t = std::time::Instant::now();
    let mut calls = 0u64;
    while in_use(pool) != base {
        let v = pool.share(&Val::from(calls)).unwrap();
        server.pipe().try_enqueue(v).unwrap();
        drop(server.pipe().try_dequeue().unwrap());
        calls += 1;
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "not given back: {:?}",
            shmval::ledger::recovered(main.region())
        );
    }
    let r = shmval::ledger::recovered(main.region());
    assert_eq!((r.processes, r.total.handles), (1, 1), "{r:?}");
    eprintln!("given back after {:?} and {calls} calls", t.elapsed());
}

/// A region with a pipe "p" that redelivers, whose consumer process received the packet
/// `{"seq": seq}` and was killed holding it (after `before_kill`).
struct KilledHolding {
    main: ShmMain,
    server: ServerSide,
    /// The pool's use before the packet was made.
    base: (u64, u64),
    name: TestName,
}

fn killed_holding(tag: &str, seq: i64, before_kill: impl FnOnce(&ServerSide)) -> KilledHolding {
    let name = TestName::new(tag);
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4)
        .redeliver(true)
        .start()
        .unwrap();
    let base = baseline(main.pool());
    let consumer = spawn_role("consume", &[name.as_str(), "p", "1", "hold"]);
    server
        .pipe()
        .enq(main.pool().share(&val!({ "seq": seq })).unwrap())
        .unwrap();
    wait_for_receiver(&server, 1);
    before_kill(&server);
    consumer.kill();
    KilledHolding {
        main,
        server,
        base,
        name,
    }
}

#[test]
fn a_pipe_that_redelivers_gets_a_dead_consumers_packet_back() {
    let k = killed_holding("kill-redeliver", 7, |_| {});
    let r = k.main.recover();
    assert_eq!((r.processes, r.total.redelivered), (1, 1), "{r:?}");
    assert_eq!(k.server.pipe().len(), 1, "the packet is back in the pipe");
    let again = k.server.pipe().try_dequeue().unwrap();
    assert_eq!(again.field("seq").unwrap().as_i64().unwrap(), 7);
    drop(again);
    assert_eq!(in_use(k.main.pool()), k.base);
}

#[test]
fn a_packet_a_dead_middle_was_forwarding_goes_back_to_the_pipe_it_came_from() {
    let name = TestName::new("kill-forward");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let first = ServerSide::new(name.as_str(), "p1", 4)
        .redeliver(true)
        .start()
        .unwrap();
    let second = ServerSide::new(name.as_str(), "p2", 1).start().unwrap();
    let pool = main.pool();
    let base = baseline(pool);
    // The next pipe is full: the middle will wait in its send.
    second
        .pipe()
        .enq(pool.share(&Val::from(0u64)).unwrap())
        .unwrap();
    let middle = spawn_role("forward", &[name.as_str(), "p1", "p2"]);
    first
        .pipe()
        .enq(pool.share(&val!({"seq": 1})).unwrap())
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let s = second.pipe().stats().unwrap();
            s.senders_waiting > 0
        }),
        "the middle never waited in its send: {:?}",
        second.pipe().stats()
    );
    middle.kill();
    let r = main.recover();
    assert_eq!((r.processes, r.total.redelivered), (1, 1), "{r:?}");
    assert_eq!(second.pipe().len(), 1, "nothing was added to the next pipe");
    let again = first.pipe().try_dequeue().unwrap();
    assert_eq!(again.field("seq").unwrap().as_i64().unwrap(), 1);
    drop(again);
    drop(second.pipe().try_dequeue().unwrap());
    pool.verify().unwrap();
    assert_eq!(in_use(pool), base);
}

#[test]
fn a_packet_a_dead_receiver_held_reaches_the_others_after_the_pipe_is_closed() {
    // The sender is done: the pipe is closed while the packet is out.
    let k = killed_holding("kill-closed", 3, |server| server.pipe().close().unwrap());
    // A receiver still draining gets the dead one's packet, then `Closed`.
    let client = ClientSide::new(k.name.as_str(), "p").start().unwrap();
    let got = client
        .pipe()
        .dequeue(Duration::from_secs(10))
        .expect("the dead receiver's packet comes back");
    assert_eq!(got.field("seq").unwrap().as_i64().unwrap(), 3);
    assert!(matches!(
        client.pipe().dequeue(Duration::from_secs(10)),
        Err(shmval::queue::RecvTimeoutError::Closed)
    ));
    drop(got);
    drop(client);
    assert_eq!(in_use(k.main.pool()), k.base);
}
