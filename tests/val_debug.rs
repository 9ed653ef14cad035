//! `Debug` of shared values: the Python literal, printed in place and bounded, whatever the
//! value's size, depth or sharing.

// The tests poke region words as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::Ordering::Relaxed;

use common::pools::{new_pool, word};
use shmval::alloc::Pool;
use shmval::val::shared::ShmVal;
use shmval::val::{BigInt, Complex64};
use shmval::{otab, tup, val, PoolExt, Tag, Val};

/// `[1]`, then `[h, h]` built on it `levels` times: `levels + 1` objects, `2^levels` ones
/// once expanded.
fn doubling(pool: &Pool, levels: u32) -> ShmVal {
    let mut h = pool.share(&val!([1])).unwrap();
    for _ in 0..levels {
        let mut n = pool.with_capacity(Tag::Arr, 2).unwrap();
        n.push(h.clone()).unwrap();
        n.push(h).unwrap();
        h = n;
    }
    h
}

/// The most a bounded print takes: the budget, then one element and the closing brackets.
const BOUND: usize = 8 * 1024;

#[test]
fn small_values_print_as_their_literal() {
    let (_n, pool) = new_pool("debug-small", 1 << 20);
    let v = val!({"a": [1, 2.5, "x"], "t": tup![1], "n": None, "b": true});
    let h = pool.share(&v).unwrap();
    let shown = format!("{h:?}");
    // A Tab prints in insertion order; here the heap value's order, which is the sorted one
    // only by chance, so compare as a parsed value.
    let inner = shown
        .strip_prefix("ShmVal(")
        .unwrap()
        .strip_suffix(')')
        .unwrap();
    assert_eq!(inner.parse::<Val>().unwrap(), v);
    assert_eq!(format!("{:?}", h.view()), format!("ShmRef({inner})"));
    assert_eq!(
        format!("{:?}", h.as_tab().unwrap()),
        format!("ShmTab({inner})")
    );
    assert_eq!(
        format!("{:?}", h.field("a").unwrap().as_seq().unwrap()),
        "ShmSeq([1, 2.5, 'x'])"
    );
    assert_eq!(format!("{:?}", h.field("t").unwrap()), "ShmRef((1,))");
    assert_eq!(
        format!(
            "{:?}",
            h.field("a").unwrap().at(2).unwrap().as_str().unwrap()
        ),
        "ShmStr('x')"
    );
    let o = pool.share(&otab! {"z": 1, "a": tup![1, 2]}).unwrap();
    assert_eq!(
        format!("{o:?}"),
        "ShmVal(OrderedDict([('z', 1), ('a', (1, 2))]))"
    );
    assert_eq!(
        format!("{:?}", pool.otab().unwrap()),
        "ShmVal(OrderedDict())"
    );
    for x in [
        Val::None,
        Val::from(-7i8),
        Val::from(u64::MAX),
        Val::from(2.5f32),
        Val::from(1e300),
        Val::C64(Complex64::new(1.0, -2.0)),
        Val::BigInt(BigInt::from(-1) << 100),
        Val::from("it's"),
        Val::from(vec![1.5f64, 2.0]),
        Val::from(vec![true, false]),
        val!([]),
        val!({}),
    ] {
        let h = pool.share(&x).unwrap();
        assert_eq!(format!("{h:?}"), format!("ShmVal({x})"), "{x}");
    }
    // The alternate form also says where the value lives.
    let alt = format!("{h:#?}");
    for field in ["value: {", "offset:", "tag: Tab", "refs: 1", "region:"] {
        assert!(alt.contains(field), "{alt}");
    }
}

#[test]
fn long_and_deep_values_are_cut() {
    let (_n, pool) = new_pool("debug-big", 16 << 20);
    // A long list: its first elements, then `...`.
    let long = pool
        .share(&Val::Arr((0..10_000).map(Val::from).collect()))
        .unwrap();
    let shown = format!("{long:?}");
    assert!(shown.starts_with("ShmVal([0, 1, 2, "), "{shown}");
    assert!(shown.ends_with(", 31, ...])"), "{shown}");
    // A long string: its first characters.
    let s = pool.share(&Val::from("é".repeat(100_000))).unwrap();
    let shown = format!("{s:?}");
    assert_eq!(shown, format!("ShmVal('{}...')", "é".repeat(100)));
    assert_eq!(
        format!("{:?}", s.as_str().unwrap()),
        format!("ShmStr('{}...')", "é".repeat(100))
    );
    // A long array, a big table, a huge integer.
    let a = pool.array::<f64>(1_000_000).unwrap();
    let shown = format!("{a:?}");
    assert!(shown.starts_with("ShmVal(array([0.0,0.0,"), "{shown}");
    assert!(shown.ends_with("0.0,...], 'd'))"), "{shown}");
    assert!(shown.len() < 300, "{shown}");
    assert_eq!(
        format!("{:?}", a.as_array().unwrap()),
        shown.replace("ShmVal(", "ShmArray(")
    );
    let t = pool
        .share(&Val::Tab(
            (0..5000)
                .map(|i| (Val::from(i), Val::from(vec![i; 8])))
                .collect(),
        ))
        .unwrap();
    let shown = format!("{t:?}");
    assert!(shown.len() < BOUND && shown.ends_with(", ...})"), "{shown}");
    let big = pool.share(&Val::BigInt(BigInt::from(3) << 10_000)).unwrap();
    assert_eq!(format!("{big:?}"), "ShmVal(<BigInt of 1251 bytes>)");
    // Deep nesting: eight levels, then `[...]`.
    let mut deep = val!([1]);
    for _ in 0..200 {
        deep = Val::Arr(vec![deep]);
    }
    let d = pool.share(&deep).unwrap();
    assert_eq!(
        format!("{d:?}"),
        format!("ShmVal({}...{})", "[".repeat(9), "]".repeat(9))
    );
    // Every kind of long, wide and deep at once stays within the bound.
    let mut wide = Vec::new();
    for i in 0..100 {
        wide.push(val!({"k": [i, "x".repeat(500), {"deeper": [[[[[[[[[1]]]]]]]]]}]}));
    }
    let w = pool.share(&Val::Arr(wide)).unwrap();
    let shown = format!("{:?}", w.view());
    assert!(shown.len() < BOUND, "{}", shown.len());
    assert!(shown.ends_with("...])"), "{shown}");
}

#[test]
fn shared_children_print_without_expanding() {
    let (_n, pool) = new_pool("debug-dag", 1 << 20);
    // 31 objects, 2^30 lists once expanded: printed in place, cut like any big value.
    let h = doubling(&pool, 30);
    let shown = format!("{h:?}");
    assert!(shown.len() < BOUND, "{}", shown.len());
    assert!(
        shown.starts_with("ShmVal([[[[[[[[[...], [...]], "),
        "{shown}"
    );
    let shown = format!("{:?}", h.as_seq().unwrap());
    assert!(
        shown.starts_with("ShmSeq([[[") && shown.len() < BOUND,
        "{shown}"
    );
    // Display still copies, and refuses past its limit.
    assert!(h.to_string().starts_with("<the shared value expands to"));
}

#[test]
fn corrupt_parts_print_as_their_errors() {
    let (_n, pool) = new_pool("debug-corrupt", 1 << 20);
    let h = pool.share(&val!([1, [2, 3]])).unwrap();
    // The first element's cell, right after the list's 48-byte header: a bad tag byte.
    let cell = word(&pool, h.offset().get() + 48);
    let good = cell.load(Relaxed);
    cell.store(0x7f, Relaxed);
    let shown = format!("{h:?}");
    assert!(
        shown.starts_with("ShmVal([<corrupt shared value at offset") && shown.ends_with("0x7f>])"),
        "{shown}"
    );
    cell.store(good, Relaxed);
    assert_eq!(format!("{h:?}"), "ShmVal([1, [2, 3]])");
}
