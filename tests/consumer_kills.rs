//! The pool's accounting after a consumer process is killed: between receives it leaves
//! nothing behind; holding a packet it received, it leaves exactly that packet.

mod common;

use std::time::Duration;

use common::held::in_use;
use common::{role_entry, spawn_role, wait_until, TestName};
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
    panic!("received {r:?} while waiting to be killed (holding {held:?})");
}

#[test]
fn child_role() {
    role_entry(&[("consume", consume)]);
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

#[test]
fn a_consumer_killed_between_receives_leaves_the_pool_at_its_baseline() {
    let name = TestName::new("kill-consumer");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let pool = main.pool();
    // The pipe is made and empty.
    let base = in_use(pool);
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
    drop(server);
    pool.verify().unwrap();
    assert_eq!(in_use(pool), base, "the pool is back at its baseline");
    // The dead consumer still counts as a user of the pipe (it never dropped its side),
    // so the empty pipe stays listed: the documented cost of a side killed outright.
    let pipes = main.pipes().unwrap();
    assert_eq!(pipes.len(), 1);
    assert_eq!((pipes[0].users, pipes[0].stats.len), (1, 0));
}

#[test]
fn a_consumer_killed_holding_a_packet_leaks_exactly_that_packet() {
    let name = TestName::new("kill-holder");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let pool = main.pool();
    let base = in_use(pool);
    let packet = pool
        .share(&val!({"seq": 1, "xs": [1.5, 2.5], "name": "a packet of several blocks"}))
        .unwrap();
    let with_packet = in_use(pool);
    let size = (with_packet.0 - base.0, with_packet.1 - base.1);
    assert!(size.1 > 1, "the packet is several blocks: {size:?}");
    let consumer = spawn_role("consume", &[name.as_str(), "p", "1", "hold"]);
    server.pipe().enq(packet).unwrap();
    // It holds the packet it received and sleeps in its next receive.
    wait_for_receiver(&server, 1);
    consumer.kill();
    // The pipe works on.
    let v = pool.share(&Val::from(2u64)).unwrap();
    server.pipe().try_enqueue(v).unwrap();
    assert_eq!(
        server.pipe().try_dequeue().unwrap().to_val().unwrap(),
        Val::from(2u64)
    );
    drop(server);
    pool.verify().unwrap();
    // The dead consumer's reference to the packet died with it: the packet's blocks stay
    // allocated, exactly those (nothing reclaims a dead process's handles yet).
    assert_eq!(
        in_use(pool),
        (base.0 + size.0, base.1 + size.1),
        "exactly the packet's blocks stay"
    );
}
