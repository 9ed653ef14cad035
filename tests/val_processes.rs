//! Shared values between real processes: a handle passed as an offset through the region's
//! root word, read in place by the other process, and freed by whichever drops last.

// The common test module names std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{role_entry, spawn_role, TestName};
use shmval::alloc::Pool;
use shmval::region::{Offset, Region, RegionName};
use shmval::val::shared::ShmVal;
use shmval::{val, PoolExt, Val};

fn attach(name: &str) -> Pool {
    let region = Region::attach(&RegionName::new(name.to_owned()).unwrap()).unwrap();
    Pool::attach(Arc::new(region)).unwrap()
}

/// The pool's use (bytes, blocks), but for this process's ledger chunks; the chunks of a
/// child that left (handed to the pool's deferred frees) are freed first.
fn baseline(pool: &Pool) -> (u64, u64) {
    drop(pool.alloc_block(1, 16).unwrap());
    let s = pool.stats().unwrap();
    let k = shmval::ledger::kept(pool);
    (s.used - k.bytes, s.live_allocations - k.blocks)
}

fn expected() -> Val {
    val!({
        "name": "a table shared by the parent",
        "n": 42,
        1.5: [1, 2, 3, "four"],
        "samples": Val::from(vec![0.5f64, 1.5, 2.5]),
        "nested": {"k": {"deeper": ["a string long enough to be boxed"]}}
    })
}

/// Takes over the reference left in the root word.
fn take_root(pool: &Pool) -> ShmVal {
    // SYNC POINT: acquire, pairing with the release store of the process that put it there,
    // so everything it wrote into the value is visible here.
    let off = pool.region().root().swap(0, Ordering::Acquire);
    assert_ne!(off, 0, "no value in the root word");
    // SAFETY: the other process gave up this reference with `into_raw` and stored it in
    // the root word; the swap above takes it out, so nobody else adopts it.
    unsafe { ShmVal::from_raw(pool, Offset::new(off)) }.unwrap()
}

/// Gives up a reference through the root word.
fn put_root(pool: &Pool, h: ShmVal) {
    pool.region()
        .root()
        .store(h.into_raw().get(), Ordering::Release);
}

/// Child: reads the parent's table in place, without copying it out, then drops its
/// reference (the last one: the parent dropped its own first).
fn reader(args: &[String]) {
    let pool = attach(&args[0]);
    let h = take_root(&pool);
    h.validate().unwrap();
    let t = h.as_tab().unwrap();
    assert_eq!(t.len(), 5);
    assert_eq!(
        t.get("name").unwrap().unwrap().as_str().unwrap(),
        "a table shared by the parent"
    );
    assert_eq!(t.get("n").unwrap().unwrap().to::<i64>().unwrap(), 42);
    // Numbers compare by value across types, as on the heap.
    assert!(t.get("n").unwrap().unwrap() == Val::from(42.0));
    assert!(t.get(1.5f32).unwrap().is_some()); // the key 1.5, looked up as an f32
    let list = t.get(1.5).unwrap().unwrap().as_seq().unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list.get(3).unwrap().unwrap().as_str().unwrap(), "four");
    assert_eq!(
        t.get("samples")
            .unwrap()
            .unwrap()
            .as_slice::<f64>()
            .unwrap(),
        &[0.5, 1.5, 2.5]
    );
    let deeper = t
        .get("nested")
        .unwrap()
        .unwrap()
        .get("k")
        .unwrap()
        .unwrap()
        .get("deeper")
        .unwrap()
        .unwrap();
    assert!(deeper
        .as_seq()
        .unwrap()
        .contains("a string long enough to be boxed")
        .unwrap());
    assert_eq!(h.ref_count(), 1);
    h.release().unwrap();
}

/// Child: builds a table in place and leaves it to the parent.
fn writer(args: &[String]) {
    let pool = attach(&args[0]);
    let mut t = pool.otab().unwrap();
    let mut w = t.try_mut().unwrap();
    w.insert("pid", std::process::id()).unwrap();
    for i in 0..100 {
        w.insert(i, format!("entry {i} from the child")).unwrap();
    }
    let mut xs = pool.array::<i64>(1000).unwrap();
    for (i, x) in xs
        .try_mut()
        .unwrap()
        .as_mut_slice::<i64>()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        *x = i as i64 * 3;
    }
    w.insert("xs", xs).unwrap();
    put_root(&pool, t);
}

#[test]
fn child_role() {
    role_entry(&[("reader", reader), ("writer", writer)]);
}

#[test]
fn a_child_reads_a_shared_table_in_place_and_frees_it() {
    let name = TestName::new("val-proc-read");
    let region = Arc::new(Region::create(&name, 1 << 20).unwrap());
    let pool = Pool::create(region).unwrap();
    let base = baseline(&pool);
    let h = pool.share(&expected()).unwrap();
    put_root(&pool, h.clone());
    assert_eq!(h.ref_count(), 2);
    drop(h); // the child's reference keeps the table alive
    assert_ne!(baseline(&pool), base);
    spawn_role("reader", &[name.as_str()]).wait_ok(Duration::from_secs(60));
    assert_eq!(pool.region().root().load(Ordering::Relaxed), 0);
    assert_eq!(baseline(&pool), base);
    pool.verify().unwrap();
}

#[test]
fn the_parent_reads_what_a_child_built_in_place() {
    let name = TestName::new("val-proc-write");
    let region = Arc::new(Region::create(&name, 1 << 20).unwrap());
    let pool = Pool::create(region).unwrap();
    let base = baseline(&pool);
    let child = spawn_role("writer", &[name.as_str()]);
    let pid = child.pid();
    child.wait_ok(Duration::from_secs(60));
    let h = take_root(&pool);
    h.validate().unwrap();
    let t = h.as_tab().unwrap();
    assert!(t.is_ordered());
    assert_eq!(t.len(), 102);
    assert_eq!(t.get("pid").unwrap().unwrap().to::<u32>().unwrap(), pid);
    assert_eq!(
        t.get(99u8).unwrap().unwrap().as_str().unwrap(),
        "entry 99 from the child"
    );
    let xs = t.get("xs").unwrap().unwrap().as_slice::<i64>().unwrap();
    assert_eq!(xs.len(), 1000);
    assert_eq!(xs[999], 2997);
    let keys: Vec<Val> = t
        .iter()
        .take(3)
        .map(|e| e.unwrap().0.to_val().unwrap())
        .collect();
    assert_eq!(keys, [Val::from("pid"), Val::from(0), Val::from(1)]);
    drop(h);
    assert_eq!(baseline(&pool), base);
    pool.verify().unwrap();
}
