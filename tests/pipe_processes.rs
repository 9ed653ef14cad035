//! Pipes between real processes: many producers and consumers, a holder killed inside the
//! pipe's critical section, and the break checker ending a blocked receive.

// The tests view words of the region as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{role_entry, spawn_paused, spawn_role, wait_until, TestName};
use shmval::alloc::Pool;
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
/// pipe's critical section, holding the lock, reports it through the parent's notice and
/// sleeps there until killed.
fn stuck_sender(args: &[String]) {
    let c = client(args);
    let acked = &words(&c, &args[2], 1)[0];
    for seq in 1..=10 {
        let v = c.pool().share(&Val::from(seq as u64)).unwrap();
        c.pipe().enq(v).unwrap();
        acked.fetch_add(1, Ordering::SeqCst);
    }
    let v = c.pool().share(&Val::from(11u64)).unwrap();
    shmval::fault::arm(&args[3]);
    let r = c.pipe().enq(v);
    panic!("the send did not pause at {}: {r:?}", args[3]);
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
    let r = c.pipe().deq();
    panic!("the receive did not pause at {}: {r:?}", args[3]);
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
    let baseline = in_use(main.pool());
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
    assert_eq!(
        in_use(main.pool()),
        baseline,
        "the pool is not back to its baseline"
    );
    main.pool().verify().unwrap();
}

/// The pool's use: bytes and blocks, but for this process's ledger chunks (they grow with
/// what is held at once, and stay). Chunks of children that left are freed first.
fn in_use(pool: &Pool) -> (u64, u64) {
    drop(pool.alloc_block(1, 16).unwrap());
    let s = pool.stats().unwrap();
    let k = shmval::ledger::kept(pool);
    (s.used - k.bytes, s.live_allocations - k.blocks)
}

/// What a kill inside the pipe's lock left behind.
struct Killed {
    server: ServerSide,
    _main: ShmMain,
    /// Items the child counted as sent or received.
    acked: u64,
    /// The pool's use with the pipe empty (and the counter block), before the child
    /// started.
    base: (u64, u64),
    /// What one integer value takes.
    unit: (u64, u64),
}

impl Killed {
    /// Receives everything left in the pipe, in order, and drops it.
    fn drain(&self) -> Vec<u64> {
        let mut got = vec![];
        while let Ok(v) = self.server.pipe().try_dequeue() {
            got.push(u64::try_from(&v.to_val().unwrap()).unwrap());
        }
        got
    }

    /// Checks that, everything received and dropped, the pool holds exactly `values`
    /// integer values more than before the child started: the values the dead child
    /// held when it was killed.
    fn assert_leaked(&self, values: u64) {
        let pool = self.server.pool();
        pool.verify().unwrap();
        assert_eq!(
            in_use(pool),
            (
                self.base.0 + values * self.unit.0,
                self.base.1 + values * self.unit.1
            ),
            "the pool should hold exactly {values} values of the dead child"
        );
    }
}

/// Kills a child paused at `point` inside the pipe's critical section (it says so through
/// a fault notice) and checks that the survivor takes the lock over and sends again.
fn kill_inside(role: &str, point: &str, prefill: u64) -> Killed {
    let name = TestName::new("pipe-kill");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 16).start().unwrap();
    let counter = main.pool().alloc(8, 8).unwrap();
    // SAFETY: the bitmap and counter blocks are raw blocks of the test, accessed only atomically by
    // every process.
    let word: &AtomicU64 = unsafe { main.region().resolve(counter) }.unwrap();
    word.store(0, Ordering::SeqCst);
    let base = in_use(main.pool());
    let one = main.pool().share(&Val::from(0u64)).unwrap();
    let with_one = in_use(main.pool());
    drop(one);
    let unit = (with_one.0 - base.0, with_one.1 - base.1);
    for i in 0..prefill {
        let v = server.pool().share(&Val::from(100 + i)).unwrap();
        server.pipe().try_enqueue(v).unwrap();
    }
    let child = spawn_paused(
        role,
        &[name.as_str(), "p", &counter.get().to_string(), point],
        point,
    );
    let owner = server
        .pipe()
        .lock_owner()
        .expect("the paused child holds the lock");
    let task = format!("/proc/{}/task/{}", child.pid(), owner.tid());
    assert!(std::path::Path::new(&task).exists(), "{task}");
    child.kill();
    // The survivor takes the lock over from the dead holder and sends.
    let t = Instant::now();
    let v = server.pool().share(&Val::from(999u64)).unwrap();
    server
        .pipe()
        .enqueue(v, Duration::from_secs(30))
        .expect("the survivor can send again");
    println!(
        "{point}: the survivor sent again {:?} after the kill",
        t.elapsed()
    );
    let acked = word.load(Ordering::SeqCst);
    drop(name);
    Killed {
        server,
        _main: main,
        acked,
        base,
        unit,
    }
}

#[test]
fn a_sender_killed_before_its_commit_loses_only_its_unacknowledged_item() {
    let k = kill_inside("stuck_sender", "ring.send.slot_written", 0);
    assert_eq!(k.acked, 10);
    // The ten acknowledged items, once each, in order; the eleventh never committed.
    let mut want: Vec<u64> = (1..=10).collect();
    want.push(999);
    assert_eq!(k.drain(), want);
    // The dead sender held the eleventh's only reference: recovery drops it.
    k.assert_leaked(0);
}

#[test]
fn a_sender_killed_after_its_commit_delivers_its_item_once() {
    let k = kill_inside("stuck_sender", "ring.send.committed", 0);
    assert_eq!(k.acked, 10);
    // The eleventh committed before the kill: it is there too (though never acknowledged).
    let mut want: Vec<u64> = (1..=11).collect();
    want.push(999);
    assert_eq!(k.drain(), want);
    k.assert_leaked(0);
}

#[test]
fn a_receiver_killed_before_its_commit_leaves_the_item_for_others() {
    let k = kill_inside("stuck_receiver", "ring.recv.read", 6);
    assert_eq!(k.acked, 3);
    // Items 100..106 were sent; the dead receiver took three and died before taking the
    // fourth: everything else arrives exactly once.
    assert_eq!(k.drain(), vec![103, 104, 105, 999]);
    k.assert_leaked(0);
}

#[test]
fn a_receiver_killed_after_its_commit_took_its_item_with_it() {
    let k = kill_inside("stuck_receiver", "ring.recv.committed", 6);
    assert_eq!(k.acked, 3);
    // The fourth was committed to the receiver that died: it is gone, nothing is repeated.
    assert_eq!(k.drain(), vec![104, 105, 999]);
    // The dead receiver held its only reference (the receive had committed): recovery
    // drops it.
    k.assert_leaked(0);
}

#[test]
fn the_break_checker_ends_a_blocked_receive() {
    let name = TestName::new("pipe-break");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
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
    // The receiver is asleep in the pipe, waiting for an item.
    assert!(
        wait_until(Duration::from_secs(30), || server
            .pipe()
            .stats()
            .unwrap()
            .receivers_waiting
            == 1),
        "the receive never blocked"
    );
    let asked = Instant::now();
    stop.store(true, Ordering::SeqCst);
    let (r, ended) = t.join().unwrap();
    assert_eq!(r, Err(RecvError::Broken));
    // Asked every 50 ms; the bound only catches a receive the checker cannot end.
    let after = ended.duration_since(asked);
    println!("the blocked receive ended {after:?} after the checker said stop");
    assert!(after < Duration::from_secs(30), "took {after:?}");
}
