//! Numbers from the caller or from shared memory are never trusted in arithmetic: a huge
//! index is absent, a count a corrupt writer changed is an error that changes nothing, and
//! no word of a value's blocks, set to any extreme, makes a read or a write panic (debug
//! builds check every overflow). And `validate` checks each object as its readers open it.

// The common test module names std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::Ordering;

use common::pools::{baseline, new_pool, word};
use shmval::alloc::Pool;
use shmval::val::shared::{ShmRef, ShmVal};
use shmval::{otab, tup, val, PoolExt, Tag, Val, ValError};

/// Header words: the kind word, the count, then a container's length, capacity, data
/// offset and entries written.
const W_KIND: u64 = 0;
const W_LEN: u64 = 16;

#[test]
fn huge_indices_are_absent() {
    let (_n, pool) = new_pool("numbers-index", 1 << 20);
    let base = baseline(&pool);
    let mut h = pool.share(&val!([1, 2, 3])).unwrap();
    let seq = h.as_seq().unwrap();
    for i in [
        3,
        1 << 62,
        1 << 63,
        (1 << 63) + 1,
        usize::MAX - 1,
        usize::MAX,
    ] {
        assert!(seq.get(i).unwrap().is_none(), "{i}");
        assert!(h.view().get(i).unwrap().is_none(), "{i}");
    }
    assert!(h.view().get(u64::MAX).unwrap().is_none());
    assert!(h.view().get(-1).unwrap().is_none());
    assert_eq!(seq.get(2).unwrap().unwrap().to::<i64>().unwrap(), 3);
    let a = pool.array_from(&[1.5f64]).unwrap();
    assert_eq!(a.as_array().unwrap().get(usize::MAX).unwrap(), None);
    // Writing past the end: refused, the value given dropped.
    let s = pool
        .share(&Val::from("a string long enough for a block"))
        .unwrap();
    let mut w = h.try_mut().unwrap();
    assert!(matches!(
        w.set(usize::MAX, s),
        Err(ValError::OutOfRange { .. })
    ));
    drop((h, a));
    assert_eq!(baseline(&pool), base);
}

#[test]
fn an_implausible_count_is_not_counted_up() {
    let (_n, pool) = new_pool("numbers-rc", 1 << 20);
    let base = baseline(&pool);
    let h = pool
        .share(&val!(["a string long enough for a block"]))
        .unwrap();
    let child = h.as_seq().unwrap().get(0).unwrap().unwrap();
    let off = child.to_handle().unwrap().offset().get();
    let rc = word(&pool, off + 8);
    assert_eq!(rc.load(Ordering::Relaxed), 1);
    for bad in [0, u64::MAX, 1 << 48] {
        rc.store(bad, Ordering::Relaxed);
        assert!(matches!(child.to_handle(), Err(ValError::Corrupt { .. })));
        assert_eq!(rc.load(Ordering::Relaxed), bad);
    }
    rc.store(1, Ordering::Relaxed);
    h.validate().unwrap();
    drop(h);
    assert_eq!(baseline(&pool), base);
}

#[test]
fn a_zeroed_entry_count_is_corrupt_and_changes_nothing() {
    let (_n, pool) = new_pool("numbers-count", 1 << 20);
    let v = val!({"a": 1, "b": "a value string long enough for a block"});
    let mut h = pool.share(&v).unwrap();
    let len_word = word(&pool, h.offset().get() + W_LEN);
    assert_eq!(len_word.load(Ordering::Relaxed), 2);
    len_word.store(0, Ordering::Relaxed);
    {
        let mut w = h.try_mut().unwrap();
        for key in ["a", "b"] {
            assert!(
                matches!(w.remove(key), Err(ValError::Corrupt { .. })),
                "{key}"
            );
        }
        // The table is full (shared at its size), so a new key makes it grow, which meets
        // two live entries where the count says none.
        assert!(matches!(w.insert("c", 3), Err(ValError::Corrupt { .. })));
    }
    assert!(h.validate().is_err());
    len_word.store(2, Ordering::Relaxed);
    h.validate().unwrap();
    assert_eq!(h.to_val().unwrap(), v);
    // With the count restored, the same writes go through.
    {
        let mut w = h.try_mut().unwrap();
        assert!(w.remove("a").unwrap());
        w.insert("c", 3).unwrap();
    }
    h.validate().unwrap();
    assert_eq!(
        h.to_val().unwrap(),
        val!({"b": "a value string long enough for a block", "c": 3})
    );
}

/// Reads `r` every way there is, to a few levels; errors are fine, panics are not.
fn read_all(r: ShmRef<'_>, depth: usize) {
    if depth > 3 {
        return;
    }
    let _ = r.len();
    let _ = r.to_val();
    let _ = r.eq_val(&val!({"a": [1, 2]}));
    let _ = r.get(0);
    let _ = r.get(usize::MAX);
    let _ = r.get("a");
    if let Ok(t) = r.as_tab() {
        let _ = t.get("k");
        let _ = t.contains(1);
        for (k, v) in t.iter().take(64).flatten() {
            read_all(k, depth + 1);
            read_all(v, depth + 1);
        }
    }
    if let Ok(s) = r.as_seq() {
        let _ = s.contains(2);
        for x in s.iter().take(64).flatten() {
            read_all(x, depth + 1);
        }
    }
    if let Ok(a) = r.as_array() {
        let _ = a.to_array();
        let _ = a.get(usize::MAX);
    }
    let _ = r.as_str().map(|s| s.len());
    let _ = format!("{r:?}");
}

/// Writes to `h` every way there is; errors are fine, panics are not.
fn write_all(pool: &Pool, h: &mut ShmVal) {
    let Some(mut w) = h.get_mut() else { return };
    let _ = w.insert("k", 1);
    let _ = w.insert(7, "a value string long enough for a block");
    let _ = w.remove("a");
    let _ = w.remove("k");
    let _ = w.push(2.5);
    let _ = w.push(Val::from("another string long enough for a block"));
    if let Ok(x) = pool.share(&val!([1])) {
        let _ = w.push(x);
    }
    let _ = w.set(0, 9);
    let _ = w.set(usize::MAX, 9);
    if let Ok(s) = w.as_mut_slice::<f64>() {
        if let Some(x) = s.first_mut() {
            *x = 4.0;
        }
    }
    let _ = w.as_mut_slice::<bool>().map(|s| s.len());
    let _ = w.view().to_val();
}

fn extremes(saved: u64) -> [u64; 12] {
    [
        0,
        1,
        2,
        u64::MAX,
        u64::MAX - 1,
        1 << 63,
        1 << 32,
        u64::from(u32::MAX),
        u64::from(u32::MAX / 2) + 1,
        saved.wrapping_add(1),
        saved.wrapping_sub(1),
        saved.wrapping_add(1 << 20),
    ]
}

#[test]
fn extreme_words_in_any_block_are_errors_not_panics() {
    let (_n, pool) = new_pool("numbers-extreme", 4 << 20);
    let values = [
        val!({"a": [1, 2], "k": 0, "s": "a string long enough for a block"}),
        otab! {"a": 1, "z": tup![1, 2]},
        val!([1, "a string long enough for a block", [2.5]]),
        tup![1, 2, 3],
        Val::from(vec![1.0f64, 2.0, 3.0]),
        Val::from(vec![true, false]),
        Val::from("a string long enough for a block"),
        Val::BigInt(shmval::val::BigInt::from(-1) << 100),
    ];
    let mut cases = 0;
    for v in &values {
        let probe = pool.share(v).unwrap();
        let size = common::pools::usable_size(&pool, probe.offset());
        drop(probe);
        for rel in (0..size).step_by(8) {
            for i in 0..extremes(0).len() {
                let mut h = pool.share(v).unwrap();
                // Only the value's own block: the pool's headers around it are the
                // allocator's, which poisons itself when they are broken.
                if rel >= common::pools::usable_size(&pool, h.offset()) {
                    continue;
                }
                let at = h.offset().get() + rel;
                let saved = word(&pool, at).load(Ordering::Relaxed);
                let x = extremes(saved)[i];
                word(&pool, at).store(x, Ordering::Relaxed);
                let _ = h.validate();
                read_all(h.view(), 0);
                let _ = h.to_string();
                write_all(&pool, &mut h);
                read_all(h.view(), 0);
                // Put the word back if the writes left it, and free what can be freed; a
                // value left corrupt leaks, never more.
                if word(&pool, at).load(Ordering::Relaxed) == x {
                    word(&pool, at).store(saved, Ordering::Relaxed);
                }
                let _ = h.release();
                cases += 1;
                // None of this reached the allocator's own words.
                pool.verify().unwrap();
            }
        }
    }
    assert!(cases > 500, "{cases}");
}

#[test]
fn validate_opens_the_root_as_its_handle_does() {
    let (_n, pool) = new_pool("numbers-kind", 1 << 20);
    let base = baseline(&pool);
    // Each root's kind byte changed to another kind whose header is the same size, so
    // only the kind tells them apart.
    let cases = [
        (val!({"a": 1}), Tag::OTab),
        (otab! {"a": 1}, Tag::Tab),
        (val!([1, 2]), Tag::Tup),
        (tup![1, 2], Tag::Arr),
        (Val::from("a string long enough for a block"), Tag::BigUint),
        (Val::BigInt(shmval::val::BigInt::from(-1) << 100), Tag::Str),
    ];
    for (v, other) in cases {
        let h = pool.share(&v).unwrap();
        h.validate().unwrap();
        let kind_word = word(&pool, h.offset().get() + W_KIND);
        let saved = kind_word.load(Ordering::Relaxed);
        let changed = saved & !(0xff << 32) | (other as u64) << 32;
        kind_word.store(changed, Ordering::Relaxed);
        // Every reader of the handle refuses it, and so does validate.
        assert!(h.to_val().is_err(), "{v}");
        assert!(
            matches!(h.validate(), Err(ValError::Corrupt { .. })),
            "{v} as {other}"
        );
        kind_word.store(saved, Ordering::Relaxed);
        h.validate().unwrap();
        assert_eq!(h.to_val().unwrap(), v);
    }
    assert_eq!(baseline(&pool), base);
}
