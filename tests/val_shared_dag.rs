//! Values that hold one child many times: a few objects in the pool, a huge value once
//! expanded. Copying out and printing refuse past their limit, saying how big the copy
//! would be, and comparing is bounded by the heap value; none of them expands the graph.

// The common test module names std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::Ordering;

use common::pools::{baseline, new_pool, word};
use shmval::alloc::Pool;
use shmval::val::shared::{ShmVal, MAX_COPY_BYTES};
use shmval::{tup, val, PoolExt, Tag, Val, ValError};

/// `[1]`, then `[h, h]` built on it `levels` times: `levels + 1` objects. Each level is a
/// container of kind `tag` (`Arr` or `Tup`).
fn doubling(pool: &Pool, tag: Tag, levels: u32) -> ShmVal {
    let mut h = pool.share(&val!([1])).unwrap();
    for _ in 0..levels {
        let mut n = pool.with_capacity(tag, 2).unwrap();
        {
            let mut w = n.try_mut().unwrap();
            w.push(h.clone()).unwrap();
            w.push(h).unwrap();
        }
        h = n;
    }
    h
}

/// The heap value `doubling` stands for.
fn expanded(levels: u32) -> Val {
    let mut v = val!([1]);
    for _ in 0..levels {
        v = Val::Arr(vec![v.clone(), v]);
    }
    v
}

/// The values in the copy of `doubling(levels)`: `[1]` is 2, and each level is one list
/// holding two of the level below.
fn values(levels: u32) -> u64 {
    3 * (1u64 << levels) - 1
}

fn too_large(levels: u32) -> ValError {
    let values = values(levels);
    ValError::TooLarge {
        values,
        bytes: values * std::mem::size_of::<Val>() as u64,
        limit: MAX_COPY_BYTES,
    }
}

#[test]
fn copying_out_refuses_past_the_limit_with_the_size() {
    let (_n, pool) = new_pool("dag-copy", 1 << 20);
    let base = baseline(&pool);
    for levels in [24, 30] {
        let h = doubling(&pool, Tag::Arr, levels);
        h.validate().unwrap();
        assert_eq!(h.to_val(), Err(too_large(levels)), "{levels}");
        assert_eq!(h.view().to_val(), Err(too_large(levels)));
        // A limit below the copy is refused the same way, with that limit.
        let small = h.to_val_within(1000).unwrap_err();
        assert!(
            matches!(small, ValError::TooLarge { values, limit: 1000, .. } if values == self::values(levels)),
            "{small}"
        );
        let inner = h.as_seq().unwrap().get(0).unwrap().unwrap();
        assert_eq!(inner.to_val(), Err(too_large(levels - 1)));
        let shown = too_large(levels).to_string();
        assert!(shown.contains(&values(levels).to_string()), "{shown}");
    }
    // Within the limit the copy is the expansion.
    let h = doubling(&pool, Tag::Arr, 10);
    assert_eq!(h.to_val().unwrap(), expanded(10));
    drop(h);
    let h = doubling(&pool, Tag::Tup, 3);
    let got = h.to_val().unwrap();
    assert_eq!(got.tag(), Tag::Tup);
    assert_eq!(got[0][1][0], val!([1]));
    drop((h, got));
    assert_eq!(baseline(&pool), base);
}

/// A value whose containers are each linked once is copied in one walk, which counts what
/// it builds as the measure does: the limit falls at the same byte either way, and a
/// child container a handle also holds (its count above one) is copied the same.
#[test]
fn a_tree_is_refused_at_the_same_limit_as_a_measured_copy() {
    let (_n, pool) = new_pool("dag-tree", 1 << 20);
    let v = val!({"a": [1, 2.5, "three", [4, "a string longer than a cell holds"]], "b": {"c": (5, 6)}});
    let h = pool.share(&v).unwrap();
    let Err(ValError::TooLarge { values, bytes, .. }) = h.to_val_within(0) else {
        panic!("a copy within 0 bytes");
    };
    let check = || {
        assert_eq!(h.to_val_within(bytes).unwrap(), v);
        let limit = bytes - 1;
        let refused = ValError::TooLarge {
            values,
            bytes,
            limit,
        };
        assert_eq!(h.to_val_within(limit), Err(refused));
    };
    check();
    let inner = h.field("a").unwrap().to_handle().unwrap();
    check();
    drop(inner);
}

#[test]
fn printing_refuses_past_the_limit() {
    let (_n, pool) = new_pool("dag-print", 1 << 20);
    let h = doubling(&pool, Tag::Arr, 30);
    let err = too_large(30).to_string();
    assert_eq!(h.to_string(), format!("<{err}>"));
    // Debug copies nothing: it prints in place, cut to a few kilobytes.
    let shown = format!("{:?}", h.view());
    assert!(
        shown.starts_with("ShmRef([[[") && shown.len() < 8192,
        "{shown}"
    );
    let shown = format!("{:?}", h.as_seq().unwrap());
    assert!(
        shown.starts_with("ShmSeq([[[") && shown.len() < 8192,
        "{shown}"
    );
    assert!(format!("{h:#?}").starts_with("ShmVal {"));
    let mut t = pool.tab().unwrap();
    t.try_mut().unwrap().insert("dag", h).unwrap();
    let shown = format!("{:?}", t.as_tab().unwrap());
    assert!(shown.starts_with("ShmTab({'dag': [[["), "{shown}");
    // Small values print whole.
    let small = pool.share(&val!({"a": [1, 2]})).unwrap();
    assert_eq!(small.to_string(), "{'a': [1, 2]}");
    assert_eq!(
        format!("{:?}", small.as_tab().unwrap()),
        "ShmTab({'a': [1, 2]})"
    );
}

#[test]
fn comparing_is_bounded_by_the_heap_value() {
    let (_n, pool) = new_pool("dag-eq", 1 << 20);
    for levels in [24, 30] {
        let h = doubling(&pool, Tag::Arr, levels);
        let r = h.view();
        // Unequal heap values: a length or a kind differs early.
        assert_eq!(r.eq_val(&val!([[1], [1]])), Ok(false));
        assert_eq!(r.eq_val(&expanded(12)), Ok(false));
        assert_eq!(r.eq_val(&tup![1, 2]), Ok(false));
        assert_eq!(r.eq_val(&Val::from(1)), Ok(false));
        assert!(r != expanded(3));
        assert!(!r.as_seq().unwrap().contains(expanded(5)).unwrap());
    }
    // An equal heap value: the work is its size, however much the graph shares.
    let h = doubling(&pool, Tag::Arr, 12);
    let v = expanded(12);
    assert_eq!(h.view().eq_val(&v), Ok(true));
    assert!(h.view() == v);
    assert!(h.as_seq().unwrap().contains(expanded(11)).unwrap());
    // Tables compare by entries, each value in place.
    let mut t = pool.otab().unwrap();
    {
        let mut w = t.try_mut().unwrap();
        w.insert("a", h.clone()).unwrap();
        w.insert((1, 2), h).unwrap();
    }
    let mut want = Val::tab();
    want.insert((1, 2), v.clone()).unwrap();
    want.insert("a", v).unwrap();
    assert_eq!(t.view().eq_val(&want), Ok(true));
    want.insert("a", expanded(11)).unwrap();
    assert_eq!(t.view().eq_val(&want), Ok(false));
}

#[test]
fn validate_copies_table_keys_within_the_limit() {
    let (_n, pool) = new_pool("dag-keys", 1 << 20);
    let dag = doubling(&pool, Tag::Tup, 30);
    let t = pool.share(&val!({tup![1]: 1})).unwrap();
    t.validate().unwrap();
    // The key cell, after the table's six header words and the entry's hash: make it link
    // to the shared tuple, as a writer breaking the format could.
    let link = t.offset().get() + 6 * 8 + 8 + 8;
    let saved = word(&pool, link).load(Ordering::Relaxed);
    word(&pool, link).store(dag.offset().get(), Ordering::Relaxed);
    assert_eq!(
        t.validate(),
        Err(ValError::TooLarge {
            values: values(30),
            bytes: values(30) * std::mem::size_of::<Val>() as u64,
            limit: MAX_COPY_BYTES,
        })
    );
    word(&pool, link).store(saved, Ordering::Relaxed);
    t.validate().unwrap();

    // Two keys each within the limit, over it together: the limit holds for all the keys
    // of the graph, measured once.
    let val_bytes = std::mem::size_of::<Val>() as u64;
    let levels = (1..40)
        .take_while(|&l| values(l) * val_bytes <= MAX_COPY_BYTES)
        .last()
        .unwrap();
    assert!(2 * values(levels) * val_bytes > MAX_COPY_BYTES);
    let dag = doubling(&pool, Tag::Tup, levels);
    let t = pool.share(&val!({tup![1]: 1, tup![2]: 2})).unwrap();
    let links = [t.offset().get() + 64, t.offset().get() + 64 + 40];
    let saved = links.map(|at| word(&pool, at).load(Ordering::Relaxed));
    for at in links {
        word(&pool, at).store(dag.offset().get(), Ordering::Relaxed);
    }
    assert_eq!(
        t.validate(),
        Err(ValError::TooLarge {
            values: 2 * values(levels),
            bytes: 2 * values(levels) * val_bytes,
            limit: MAX_COPY_BYTES,
        })
    );
    for (at, w) in links.into_iter().zip(saved) {
        word(&pool, at).store(w, Ordering::Relaxed);
    }
    t.validate().unwrap();
}
