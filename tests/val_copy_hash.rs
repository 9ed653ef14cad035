//! Copying a shared table out reuses the hashes its entries store: the copy finds every
//! key as a table built on the heap does, and a stored hash damaged by a buggy writer
//! only makes that one key's lookups miss.

// The tests poke region words as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::Ordering;

use common::pools::{new_pool, word};
use shmval::{OTab, PoolExt, Tab, Val};

fn keys() -> Vec<Val> {
    let mut keys: Vec<Val> = [
        "",
        "k",
        "key 7",
        "a string longer than any inline cell holds",
    ]
    .iter()
    .map(|s| Val::from(*s))
    .collect();
    keys.extend((0..200).map(|i| Val::from(format!("k{i}"))));
    keys.push(Val::from("héllo wörld"));
    keys.push(Val::from(17i64));
    keys.push(Val::from(2.5f64));
    keys
}

#[test]
fn a_copied_table_finds_every_key() {
    let (_n, pool) = new_pool("copy-hash", 4 << 20);
    let tab: Tab = keys()
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, Val::from(i as i64)))
        .collect();
    let otab: OTab = keys()
        .into_iter()
        .enumerate()
        .map(|(i, k)| (k, Val::from(i as i64)))
        .collect();
    for v in [Val::Tab(tab.clone()), Val::OTab(otab.clone())] {
        let back = pool.share(&v).unwrap().to_val().unwrap();
        assert_eq!(back, v);
        for (i, k) in keys().into_iter().enumerate() {
            // A key made afresh hashes from its bytes: the copy must have put the copied
            // key where that hash leads.
            let found = match &back {
                Val::Tab(t) => t.get(&k).cloned(),
                Val::OTab(t) => t.get(&k).cloned(),
                _ => unreachable!(),
            };
            assert_eq!(found, Some(Val::from(i as i64)), "{k:?}");
        }
    }
}

#[test]
fn a_damaged_stored_hash_only_hides_its_key() {
    let (_n, pool) = new_pool("copy-hash-bad", 1 << 20);
    let tab: Tab = (0..20)
        .map(|i| (Val::from(format!("key{i}")), Val::from(i as i64)))
        .collect();
    let h = pool.share(&Val::Tab(tab)).unwrap();
    let victim = Val::from("key5");
    let want = victim.stable_hash();
    let len = pool.region().len();
    let at = (0..len)
        .step_by(8)
        .find(|&a| word(&pool, a).load(Ordering::Relaxed) == want)
        .expect("the entry stores its key's hash");
    word(&pool, at).store(want ^ 0x5555_0000_5555, Ordering::Relaxed);
    let Val::Tab(back) = h.to_val().unwrap() else {
        panic!("a table");
    };
    assert_eq!(back.len(), 20);
    for i in (0..20).filter(|&i| i != 5) {
        assert_eq!(back.get(&Val::from(format!("key{i}"))), Some(&Val::from(i)));
    }
    // The damaged key is in the copy, where its lookups do not lead.
    assert!(back.keys().any(|k| *k == victim));
    assert_eq!(back.get(&victim), None);
}
