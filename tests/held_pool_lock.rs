//! Every timeout is honoured while a child process holds the pool's lock, paused inside an
//! allocation or a free, then stopped as well (a stopped process is alive: nothing may take
//! its lock). Values still move through pipes (they need only the pipe's lock), a side
//! starts or gives up at its deadline, and a drop returns at once by deferring its free
//! (or keeping a small block in its process's cache).
//! Once the holder is killed the next locker repairs the pool, the next allocation frees
//! what was deferred, and the pool is back at its baseline. Each test prints the slack of
//! every call (`-- --nocapture`).

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::held::{assert_held_by, in_use, Bound, Holder, Slack, BOUND, RUNS};
use common::{role_entry, spawn_paused, TestName};
use nix::sys::signal::Signal;
use shmval::alloc::Pool;
use shmval::region::{Region, RegionName};
use shmval::sides::{ClientSide, ServerSide, ShmMain, SidesError};
use shmval::{PoolExt, ShmVal, Val};

const BYTES: u64 = 1 << 20;
/// A capacity whose pipe block is larger than any block a cache keeps (2 KiB): a small
/// pipe's may come from this thread's cache, without the lock.
const LARGE_PIPE: u64 = 512;

/// args: region, pause point, "alloc" or "free". Attaches to the pool, arms the point and
/// allocates (or frees a block it allocated before arming): it pauses inside the pool's
/// lock, reports it through the parent's notice, and sleeps there until killed.
fn pool_holder(args: &[String]) {
    let region = Region::attach(&RegionName::new(args[0].clone()).unwrap()).unwrap();
    let pool = Pool::attach(Arc::new(region)).unwrap();
    if args[2] == "free" {
        // Larger than any block a cache keeps, so that its free goes to the heap.
        let off = pool.alloc(4096, 16).unwrap();
        shmval::fault::arm(&args[1]);
        // SAFETY: a block this process allocated above and uses no more.
        let r = unsafe { pool.free(off) };
        panic!("the free did not pause at {}: {r:?}", args[1]);
    }
    shmval::fault::arm(&args[1]);
    let r = pool.alloc(1000, 16);
    panic!("the allocation did not pause at {}: {r:?}", args[1]);
}

#[test]
fn child_role() {
    role_entry(&[("pool_holder", pool_holder)]);
}

/// The calls made behind the held pool lock; the last handle of `v` is dropped (one free
/// deferred).
fn exercise(main: &ShmMain, server: &ServerSide, t: &mut Slack, h: Holder, run: usize, v: ShmVal) {
    let region = main.region().name().as_str();
    let (timeout, at_once) = (Bound::Timeout(BOUND), Bound::AtOnce);
    // A value moves through a pipe without the pool lock: sending passes the handle,
    // receiving adopts it.
    let p = server.pipe();
    t.time("enqueue(v, 100 ms)", h, at_once, || p.enqueue(v, BOUND))
        .expect("a send needs no pool lock");
    let v = t
        .time("dequeue(100 ms)", h, at_once, || p.dequeue(BOUND))
        .expect("a receive needs no pool lock");
    // Dropping the last handle of a value frees it: deferred, not waited for.
    t.time("drop(ShmVal) (its free deferred)", h, at_once, || drop(v));
    // A new pipe of a size no cache keeps needs a block from the heap: its server side
    // gives up at its deadline.
    let r = t.time(
        "ServerSide::start (new large pipe, 100 ms)",
        h,
        timeout,
        || {
            ServerSide::new(region, format!("new-{h:?}-{run}"), LARGE_PIPE)
                .timeout(BOUND)
                .start()
        },
    );
    match r {
        Err(SidesError::Timeout { what, .. }) => assert!(what.contains("pool"), "{what}"),
        r => panic!("a server side behind the pool lock: {r:?}"),
    }
    // A client side needs only the directory's lock.
    let c = t.time("ClientSide::start (100 ms timeout)", h, at_once, || {
        ClientSide::new(region, "p").timeout(BOUND).start()
    });
    t.time("drop(ClientSide)", h, at_once, || drop(c.unwrap()));
    let r = t.time("ShmMain::wait_idle(100 ms)", h, timeout, || {
        main.wait_idle(BOUND)
    });
    assert!(!r.unwrap(), "sides are attached: never idle");
}

/// A child paused at `point` inside an `op` ("alloc" or "free") holds the pool lock while
/// the parent runs every call, with the holder paused and then stopped; after SIGCONT and
/// SIGKILL the pool is repaired, the deferred frees are done by the next allocation, and
/// the pool is back at its baseline.
fn held_pool(point: &str, op: &str) {
    let name = TestName::new("held-pool");
    let main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let server = ServerSide::new(name.as_str(), "p", 4).start().unwrap();
    let pool = main.pool();
    let base = in_use(pool);
    // What the drops behind the holder give back: a value per run, and per holder state
    // a pipe removed (after its last user went) with the value in it.
    let mut mine: Vec<ShmVal> = (0..2 * RUNS)
        .map(|i| pool.share(&Val::from(format!("value {i}"))).unwrap())
        .collect();
    let mut sides: Vec<ServerSide> = (0..2)
        .map(|i| {
            let s = ServerSide::new(name.as_str(), format!("gone-{i}"), 2)
                .start()
                .unwrap();
            let v = pool.share(&Val::from(i)).unwrap();
            s.pipe().try_enqueue(v).unwrap();
            s
        })
        .collect();

    let child = spawn_paused("pool_holder", &[name.as_str(), point, op], point);
    assert_held_by(pool.lock_owner(), child.pid(), "the pool lock");
    let mut table = Slack::new(
        format!("pool lock held by an {op} paused at {point}"),
        child.pid(),
    );
    let mut deferred = 0;
    for holder in [Holder::Paused, Holder::Stopped] {
        if holder == Holder::Stopped {
            child.stop();
        }
        for run in 0..RUNS {
            let v = mine.pop().unwrap();
            exercise(&main, &server, &mut table, holder, run, v);
            deferred += 1;
        }
        // The last user of a pipe drops it: the pipe stays for the value in it. Removing
        // it frees the pipe and the value (deferred) on the way out.
        let side = sides.pop().unwrap();
        let gone = side.pipe_name().to_string();
        table.time("drop(ServerSide)", holder, Bound::AtOnce, || drop(side));
        table.time(
            "remove_pipe (the pipe destroyed)",
            holder,
            Bound::AtOnce,
            || assert!(main.remove_pipe(&gone).unwrap()),
        );
        deferred += 2;
        assert_held_by(pool.lock_owner(), child.pid(), "the pool lock");
    }
    child.signal(Signal::SIGCONT);
    child.kill();

    // The next locker takes the lock over and repairs; looking leaves the deferred frees.
    let t = Instant::now();
    let s = pool.stats().expect("the pool is repaired");
    println!(
        "{point}: the pool was repaired {:?} after the kill",
        t.elapsed()
    );
    table.print();
    // Each free was deferred, or kept in this process's block cache (which needs no
    // lock at all); either way it returned at once (timed above), and the baseline below
    // shows nothing was lost.
    assert!(s.deferred_frees <= deferred, "{point}: {s:?}");
    pool.verify().unwrap();
    // The next allocation frees them.
    let b = pool.alloc(16, 16).unwrap();
    assert_eq!(pool.stats().unwrap().deferred_frees, 0);
    // SAFETY: a block allocated just above and used by nothing.
    unsafe { pool.free(b) }.unwrap();
    pool.verify().unwrap();
    let names: Vec<String> = main
        .pipes()
        .unwrap()
        .iter()
        .map(|e| e.name.to_string())
        .collect();
    assert_eq!(names, ["p"], "the dropped sides' pipes are gone");
    // The dead child's allocation never completed, and its free did: nothing of it stays.
    assert_eq!(
        in_use(pool),
        base,
        "{point}: the pool is back at its baseline"
    );
}

#[test]
fn every_timeout_holds_against_an_allocation_paused_inside_the_pool_lock() {
    held_pool("alloc.unlinked", "alloc");
}

#[test]
fn every_timeout_holds_against_a_free_paused_inside_the_pool_lock() {
    held_pool("free.cleared", "free");
}
