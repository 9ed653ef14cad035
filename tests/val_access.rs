//! Reading shared values the short way: strings in place, fields by key with errors
//! naming the key, typed getters, typed copies, bounded `Debug`, and writes through a
//! unique handle.

// The tests poke region words as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use common::pools::{baseline, new_pool, word};
use shmval::{val, PoolExt, Val, ValError};

/// Bytes of a container header: its first cell or entry follows when it was shared whole.
const CONTAINER_HEADER: u64 = 48;
/// Byte offset of a box's cell in its object.
const BOX_CELL: u64 = 16;

#[test]
fn strings_are_borrowed_for_the_handle_lifetime() {
    let (_n, pool) = new_pool("access-str", 1 << 20);
    let base = baseline(&pool);
    let long = "a string longer than fourteen bytes";
    let h = pool
        .share(&val!({"short": "fourteen bytes", "long": long, "empty": "", "ü": ["é"], "which": "short"}))
        .unwrap();
    let t = h.as_tab().unwrap();
    // A `&str` outlives the views it came through: it borrows the handle.
    let short: &str = t.get("short").unwrap().unwrap().as_str().unwrap().as_str();
    let long_s: &str = t.get("long").unwrap().unwrap().as_str().unwrap().as_str();
    let empty: &str = t.get("empty").unwrap().unwrap().as_str().unwrap().as_str();
    let keys: Vec<&str> = t
        .iter()
        .map(|e| e.unwrap().0.as_str().unwrap().as_str())
        .collect();
    let inner: &str = t
        .get("ü")
        .unwrap()
        .unwrap()
        .as_seq()
        .unwrap()
        .get(0)
        .unwrap()
        .unwrap()
        .as_str()
        .unwrap()
        .as_str();
    assert_eq!(
        (short, long_s, empty, inner),
        ("fourteen bytes", long, "", "é")
    );
    assert_eq!(keys.len(), 5);
    assert!(keys.contains(&"ü"));
    // A boxed short string, and comparisons, conversions and printing.
    let boxed = pool.share(&Val::from("tiny")).unwrap();
    let s = boxed.as_str().unwrap();
    let whole: &str = s.as_str();
    assert_eq!(whole, "tiny");
    let (owned, heap) = (String::from("tiny"), Val::from("tiny"));
    assert_eq!(s, "tiny");
    assert_eq!("tiny", s);
    assert_eq!(s, *"tiny");
    assert_eq!(s, owned);
    assert_eq!(owned, s);
    assert_eq!(s, heap);
    assert_eq!(format!("<{s}>"), "<tiny>");
    assert_eq!(s.to_string(), "tiny");
    assert_eq!(String::from(s), "tiny");
    assert_eq!(AsRef::<str>::as_ref(&s), "tiny");
    assert_eq!(&*s, "tiny");
    assert!(t.get("long").unwrap().unwrap().as_str().unwrap() < s); // "a ..." < "tiny"
    let mut seen: HashMap<String, u32> = HashMap::new();
    seen.insert("tiny".into(), 1);
    assert_eq!(seen.get(s.as_str()), Some(&1));
    let mut by_shm = HashMap::new();
    by_shm.insert(s, 2);
    assert_eq!(by_shm.get("tiny"), Some(&2)); // Borrow<str>
                                              // A shared string keys a lookup, and is copied into another container.
    let which = t.get("which").unwrap().unwrap().as_str().unwrap();
    assert!(t.get(which).unwrap().unwrap() == Val::from(short));
    let mut copy = pool.tab().unwrap();
    copy.try_mut().unwrap().insert(s, s).unwrap();
    assert!(copy.view() == val!({"tiny": "tiny"}));
    drop((copy, boxed, h));
    assert_eq!(baseline(&pool), base);
}

#[test]
fn a_corrupt_inline_string_is_an_error() {
    let (_n, pool) = new_pool("access-str-corrupt", 1 << 20);
    let list = pool.share(&val!(["ab"])).unwrap();
    let boxed = pool.share(&Val::from("cd")).unwrap();
    for (h, at) in [
        (&list, list.offset().get() + CONTAINER_HEADER),
        (&boxed, boxed.offset().get() + BOX_CELL),
    ] {
        let w = word(&pool, at);
        let good = w.load(Relaxed);
        // The string's first byte (byte 2 of the cell) becomes 0xff: not UTF-8.
        w.store(good | 0xff << 16, Relaxed);
        let r = if h.tag() == shmval::Tag::Arr {
            h.as_seq().unwrap().get(0).unwrap().unwrap()
        } else {
            h.view()
        };
        assert!(
            matches!(r.as_str(), Err(ValError::Corrupt { .. })),
            "{at:#x}"
        );
        w.store(good, Relaxed);
        h.validate().unwrap();
    }
    assert_eq!(
        list.as_seq()
            .unwrap()
            .get(0)
            .unwrap()
            .unwrap()
            .as_str()
            .unwrap(),
        "ab"
    );
    assert_eq!(boxed.as_str().unwrap(), "cd");
}
