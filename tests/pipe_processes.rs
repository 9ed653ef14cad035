//! Pipes between real processes: many producers and consumers, a holder killed inside the
//! pipe's critical section, and the break checker ending a blocked receive.

// The tests view words of the region as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{role_entry, spawn_role, wait_until, TestName};
use shmval::queue::RecvError;
use shmval::region::Offset;
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{PoolExt, Val};

const BYTES: u64 = 8 << 20;
const ITEMS: u64 = 100_000;

fn client(args: &[String]) -> ClientSide {
    ClientSide::new(args[0].clone(), args[1].clone())
        .timeout(Duration::from_secs(30))
        .start()
        .unwrap()
}

fn words<'a>(c: &'a ClientSide, at: &str, n: u64) -> &'a [AtomicU64] {
    // SAFETY: the bitmap and counter blocks are raw blocks of the test, accessed only atomically by
    // every process.
    unsafe {
        c.region()
            .resolve_slice::<AtomicU64>(Offset::new(at.parse().unwrap()), n)
    }
    .unwrap()
}

/// Item numbers: producer in the high half, sequence (from 1) in the low half.
fn item(producer: u64, seq: u64) -> u64 {
    producer << 32 | seq
}

/// args: region, pipe, producer id.
fn producer(args: &[String]) {
    let c = client(args);
    let p: u64 = args[2].parse().unwrap();
    for seq in 1..=ITEMS {
        let v = c.pool().share(&Val::from(item(p, seq))).unwrap();
        c.pipe().enq(v).unwrap();
    }
}

/// args: region, pipe, bitmap offset. Receives until the pipe is closed and drained,
/// checking each producer's order and marking each item in the bitmap (a duplicate fails).
fn consumer(args: &[String]) {
    let c = client(args);
    let bitmap = words(&c, &args[2], 2 * ITEMS / 64 + 1);
    let mut last = [0u64; 2];
    loop {
        match c.pipe().deq() {
            Ok(v) => {
                let x = u64::try_from(&v.to_val().unwrap()).unwrap();
                let (p, seq) = ((x >> 32) as usize, x & 0xffff_ffff);
                assert!(seq > last[p], "producer {p}: {seq} after {}", last[p]);
                last[p] = seq;
                let bit = p as u64 * ITEMS + seq - 1;
                let old = bitmap[(bit / 64) as usize].fetch_or(1 << (bit % 64), Ordering::SeqCst);
                assert_eq!(old & (1 << (bit % 64)), 0, "item {x:#x} received twice");
            }
            Err(RecvError::Closed | RecvError::Disconnected) => return,
            Err(e) => panic!("receive failed: {e}"),
        }
    }
}

/// args: region, pipe, counter offset, pause point. Sends 10 items (counting each
/// acknowledged one), then arms the pause point and sends an 11th: it stops inside the
/// pipe's critical section, holding the lock, until killed.
fn stuck_sender(args: &[String]) {
    let c = client(args);
    let acked = &words(&c, &args[2], 1)[0];
    for seq in 1..=10 {
        let v = c.pool().share(&Val::from(seq as u64)).unwrap();
        c.pipe().enq(v).unwrap();
        acked.fetch_add(1, Ordering::SeqCst);
    }
    shmval::fault::arm(&args[3]);
    let v = c.pool().share(&Val::from(11u64)).unwrap();
    c.pipe().enq(v).unwrap();
    unreachable!("the pause point never returns");
}

/// args: region, pipe, counter offset, pause point. Receives 3 items, then arms the pause
/// point and receives a 4th.
fn stuck_receiver(args: &[String]) {
    let c = client(args);
    let got = &words(&c, &args[2], 1)[0];
    for _ in 0..3 {
        drop(c.pipe().deq().unwrap());
        got.fetch_add(1, Ordering::SeqCst);
    }
    shmval::fault::arm(&args[3]);
    let _ = c.pipe().deq();
    unreachable!("the pause point never returns");
}

#[test]
fn child_role() {
    role_entry(&[
        ("producer", producer),
        ("consumer", consumer),
        ("stuck_sender", stuck_sender),
        ("stuck_receiver", stuck_receiver),
    ]);
}

#[test]
fn two_producers_two_consumers_deliver_each_item_once_in_order() {
    let name = TestName::new("pipe-2x2");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let baseline = main.pool().stats().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 64).start().unwrap();
    let n_words = 2 * ITEMS / 64 + 1;
    let bitmap_off = main.pool().alloc(n_words * 8, 8).unwrap();
    // SAFETY: the bitmap and counter blocks are raw blocks of the test, accessed only atomically by
    // every process.
    let bitmap = unsafe {
        main.region()
            .resolve_slice::<AtomicU64>(bitmap_off, n_words)
    }
    .unwrap();
    for w in bitmap {
        w.store(0, Ordering::SeqCst);
    }
    let at = bitmap_off.get().to_string();
    let consumers: Vec<_> = (0..2)
        .map(|_| spawn_role("consumer", &[name.as_str(), "p", &at]))
        .collect();
    let producers: Vec<_> = (0..2u64)
        .map(|p| spawn_role("producer", &[name.as_str(), "p", &p.to_string()]))
        .collect();
    for p in producers {
        p.wait_ok(Duration::from_secs(300));
    }
    server.pipe().close().unwrap();
    for c in consumers {
        c.wait_ok(Duration::from_secs(300));
    }
    let missing: u64 = (0..2 * ITEMS)
        .filter(|bit| bitmap[(bit / 64) as usize].load(Ordering::SeqCst) & (1 << (bit % 64)) == 0)
        .count() as u64;
    assert_eq!(missing, 0, "items never received");
    let stats = server.pipe().stats().unwrap();
    assert_eq!((stats.enqueued, stats.dequeued), (2 * ITEMS, 2 * ITEMS));
    drop(server);
    // SAFETY: the bitmap block is this test's; its children have exited.
    unsafe { main.pool().free(bitmap_off) }.unwrap();
    let end = main.pool().stats().unwrap();
    assert_eq!(
        (end.used, end.live_allocations),
        (baseline.used, baseline.live_allocations),
        "the pool is not back to its baseline"
    );
    main.pool().verify().unwrap();
}

/// Kills a child stopped at `point` inside the pipe's critical section and checks that
/// the survivor recovers the lock within a second and still sees what was acknowledged.
fn kill_inside(role: &str, point: &str, prefill: u64) -> (ServerSide, ShmMain, u64) {
    let name = TestName::new("pipe-kill");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 16).start().unwrap();
    for i in 0..prefill {
        let v = server.pool().share(&Val::from(100 + i)).unwrap();
        server.pipe().try_enqueue(v).unwrap();
    }
    let counter = main.pool().alloc(8, 8).unwrap();
    // SAFETY: the bitmap and counter blocks are raw blocks of the test, accessed only atomically by
    // every process.
    let word: &AtomicU64 = unsafe { main.region().resolve(counter) }.unwrap();
    word.store(0, Ordering::SeqCst);
    let child = spawn_role(
        role,
        &[name.as_str(), "p", &counter.get().to_string(), point],
    );
    let pipe = server.pipe();
    let pid = child.pid();
    assert!(
        wait_until(Duration::from_secs(30), || pipe.lock_owner().is_some_and(
            |o| { std::path::Path::new(&format!("/proc/{pid}/task/{}", o.tid())).exists() }
        )),
        "the child never stopped holding the pipe lock"
    );
    child.kill();
    let t = Instant::now();
    // The survivor gets the lock back (taken over from the dead holder) well within 1 s.
    let v = server.pool().share(&Val::from(999u64)).unwrap();
    server
        .pipe()
        .enqueue(v, Duration::from_secs(5))
        .expect("the survivor can send again");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(1), "recovery took {took:?}");
    let acked = word.load(Ordering::SeqCst);
    drop(name);
    (server, main, acked)
}

fn drain(server: &ServerSide) -> Vec<u64> {
    let mut got = vec![];
    while let Ok(v) = server.pipe().try_dequeue() {
        got.push(u64::try_from(&v.to_val().unwrap()).unwrap());
    }
    got
}

#[test]
fn a_sender_killed_before_its_commit_loses_only_its_unacknowledged_item() {
    let (server, _main, acked) = kill_inside("stuck_sender", "ring.send.slot_written", 0);
    assert_eq!(acked, 10);
    // The ten acknowledged items, once each, in order; the eleventh never committed.
    let mut want: Vec<u64> = (1..=10).collect();
    want.push(999);
    assert_eq!(drain(&server), want);
}

#[test]
fn a_sender_killed_after_its_commit_delivers_its_item_once() {
    let (server, _main, acked) = kill_inside("stuck_sender", "ring.send.committed", 0);
    assert_eq!(acked, 10);
    // The eleventh committed before the kill: it is there too (though never acknowledged).
    let mut want: Vec<u64> = (1..=11).collect();
    want.push(999);
    assert_eq!(drain(&server), want);
}

#[test]
fn a_receiver_killed_before_its_commit_leaves_the_item_for_others() {
    let (server, _main, got) = kill_inside("stuck_receiver", "ring.recv.read", 6);
    assert_eq!(got, 3);
    // Items 100..106 were sent; the dead receiver took three and died before taking the
    // fourth: everything else arrives exactly once.
    assert_eq!(drain(&server), vec![103, 104, 105, 999]);
}

#[test]
fn a_receiver_killed_after_its_commit_took_its_item_with_it() {
    let (server, _main, got) = kill_inside("stuck_receiver", "ring.recv.committed", 6);
    assert_eq!(got, 3);
    // The fourth was committed to the receiver that died: it is gone, nothing is repeated.
    assert_eq!(drain(&server), vec![104, 105, 999]);
}

#[test]
fn the_break_checker_ends_a_blocked_receive() {
    let name = TestName::new("pipe-break");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let _server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let c = ClientSide::new(name.as_str(), "p")
        .micro_sleep(Duration::from_millis(50))
        .break_checker(move || s2.load(Ordering::SeqCst))
        .start()
        .unwrap();
    let t = std::thread::spawn(move || {
        let r = c.pipe().deq();
        (r.map(|_| ()), Instant::now())
    });
    std::thread::sleep(Duration::from_millis(120));
    let asked = Instant::now();
    stop.store(true, Ordering::SeqCst);
    let (r, ended) = t.join().unwrap();
    assert_eq!(r, Err(RecvError::Broken));
    let after = ended.duration_since(asked);
    assert!(after < Duration::from_millis(50 + 200), "took {after:?}");
}
