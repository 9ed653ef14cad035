//! Property tests of shared values: any value survives share and copy out with its types,
//! views agree with the heap value, and any order of clones and drops frees each object
//! exactly once, leaving the pool as it was.

// The common test module names std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::Arc;

use common::TestName;
use proptest::collection::vec;
use proptest::prelude::*;
use shmval::alloc::Pool;
use shmval::region::Region;
use shmval::val::shared::{ShmRef, ShmVal};
use shmval::val::{BigInt, Complex32, Complex64};
use shmval::{Array, OTab, PoolExt, Tab, Tag, Val};

fn big() -> impl Strategy<Value = BigInt> {
    (any::<i128>(), any::<u64>(), 0u32..3)
        .prop_map(|(hi, lo, shift)| (BigInt::from(hi) << (64 * shift)) + BigInt::from(lo))
}

fn scalar() -> impl Strategy<Value = Val> {
    prop_oneof![
        Just(Val::None),
        any::<bool>().prop_map(Val::Bool),
        any::<i8>().prop_map(Val::I8),
        any::<u8>().prop_map(Val::U8),
        any::<i16>().prop_map(Val::I16),
        any::<u16>().prop_map(Val::U16),
        any::<i32>().prop_map(Val::I32),
        any::<u32>().prop_map(Val::U32),
        any::<i64>().prop_map(Val::I64),
        any::<u64>().prop_map(Val::U64),
        // Small numbers of every type, so equal keys of different types meet.
        (-3i64..3).prop_map(Val::I64),
        (0u8..3).prop_map(Val::U8),
        (-3i32..3).prop_map(|x| Val::F64(f64::from(x))),
        (-3i32..3).prop_map(|x| Val::BigInt(BigInt::from(x))),
        big().prop_map(Val::BigInt),
        big().prop_map(|b| Val::BigUint(b.magnitude().clone())),
        any::<f32>().prop_map(Val::F32),
        any::<f64>().prop_map(Val::F64),
        (any::<f32>(), any::<f32>()).prop_map(|(a, b)| Val::C32(Complex32::new(a, b))),
        (any::<f64>(), any::<f64>()).prop_map(|(a, b)| Val::C64(Complex64::new(a, b))),
        any::<String>().prop_map(Val::Str),
        "[a-zü]{0,20}".prop_map(Val::Str),
    ]
}

fn array() -> impl Strategy<Value = Array> {
    prop_oneof![
        vec(any::<i8>(), 0..6).prop_map(Array::I8),
        vec(any::<u8>(), 0..6).prop_map(Array::U8),
        vec(any::<i16>(), 0..6).prop_map(Array::I16),
        vec(any::<u16>(), 0..6).prop_map(Array::U16),
        vec(any::<i32>(), 0..6).prop_map(Array::I32),
        vec(any::<u32>(), 0..6).prop_map(Array::U32),
        vec(any::<i64>(), 0..6).prop_map(Array::I64),
        vec(any::<u64>(), 0..6).prop_map(Array::U64),
        vec(any::<f32>(), 0..6).prop_map(Array::F32),
        vec(any::<f64>(), 0..6).prop_map(Array::F64),
        vec((any::<f32>(), any::<f32>()), 0..6)
            .prop_map(|v| Array::C32(v.into_iter().map(|(a, b)| Complex32::new(a, b)).collect())),
        vec((any::<f64>(), any::<f64>()), 0..6)
            .prop_map(|v| Array::C64(v.into_iter().map(|(a, b)| Complex64::new(a, b)).collect())),
        vec(any::<bool>(), 0..6).prop_map(Array::Bool),
    ]
}

fn val() -> impl Strategy<Value = Val> {
    let leaf = prop_oneof![4 => scalar(), 1 => array().prop_map(Val::Array)];
    let nested = leaf.prop_recursive(6, 80, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Val::Arr),
            vec(inner.clone(), 0..6).prop_map(Val::Tup),
            vec((inner.clone(), inner.clone()), 0..6)
                .prop_map(|kv| Val::Tab(kv.into_iter().collect::<Tab>())),
            vec((inner.clone(), inner), 0..6)
                .prop_map(|kv| Val::OTab(kv.into_iter().collect::<OTab>())),
        ]
    });
    // Half the cases nest at least four containers deep, whatever the generator drew.
    (nested, any::<bool>(), vec(scalar(), 4)).prop_map(|(v, deep, keys)| {
        if !deep {
            return v;
        }
        keys.into_iter()
            .enumerate()
            .fold(v, |inner, (i, k)| match i % 4 {
                0 => Val::Arr(vec![Val::None, inner]),
                1 => Val::Tab([(k, inner)].into_iter().collect()),
                2 => Val::Tup(vec![inner]),
                _ => Val::OTab(
                    [(k, inner), (Val::from("z"), Val::None)]
                        .into_iter()
                        .collect(),
                ),
            })
    })
}

fn depth(v: &Val) -> usize {
    match v {
        Val::Arr(a) | Val::Tup(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Val::Tab(_) | Val::OTab(_) => {
            1 + v
                .items()
                .map(|(k, x)| depth(k).max(depth(x)))
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// Structural identity: same tags everywhere, floats by bits, OTab order, array types.
fn same(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::F32(x), Val::F32(y)) => x.to_bits() == y.to_bits(),
        (Val::F64(x), Val::F64(y)) => x.to_bits() == y.to_bits(),
        (Val::C32(x), Val::C32(y)) => {
            x.re.to_bits() == y.re.to_bits() && x.im.to_bits() == y.im.to_bits()
        }
        (Val::C64(x), Val::C64(y)) => {
            x.re.to_bits() == y.re.to_bits() && x.im.to_bits() == y.im.to_bits()
        }
        (Val::Arr(x), Val::Arr(y)) | (Val::Tup(x), Val::Tup(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Val::OTab(x), Val::OTab(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        }
        (Val::Tab(x), Val::Tab(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| same(k, k2) && same(v, v2)))
        }
        (Val::Array(x), Val::Array(y)) => {
            x.elem_type() == y.elem_type() && format!("{x:?}") == format!("{y:?}")
        }
        _ => a.tag() == b.tag() && a == b,
    }
}

/// Checks every view of `r` against the heap value `v`, recursively.
fn views_agree(r: ShmRef<'_>, v: &Val) -> Result<(), TestCaseError> {
    prop_assert_eq!(r.tag(), v.tag());
    prop_assert!(r.eq_val(v).unwrap());
    match v {
        Val::Tab(_) | Val::OTab(_) => {
            let t = r.as_tab().unwrap();
            prop_assert_eq!(t.len(), v.len());
            prop_assert_eq!(t.is_ordered(), v.tag() == Tag::OTab);
            for (k, x) in v.items() {
                let got = t.get(k).unwrap();
                prop_assert!(got.is_some(), "key {} missing", k);
                views_agree(got.unwrap(), x)?;
                prop_assert!(t.contains(k).unwrap());
            }
            let mut n = 0;
            for (i, e) in t.iter().enumerate() {
                let (k, x) = e.unwrap();
                let kv = k.to_val().unwrap();
                prop_assert!(x.eq_val(&v[&kv]).unwrap());
                if let Val::OTab(o) = v {
                    prop_assert!(same(o.get_index(i).unwrap().0, &kv));
                }
                n += 1;
            }
            prop_assert_eq!(n, v.len());
        }
        Val::Arr(a) | Val::Tup(a) => {
            let s = r.as_seq().unwrap();
            prop_assert_eq!(s.len(), a.len());
            prop_assert_eq!(s.is_tuple(), v.tag() == Tag::Tup);
            for (i, x) in a.iter().enumerate() {
                views_agree(s.get(i).unwrap().unwrap(), x)?;
                prop_assert!(s.contains(x).unwrap());
            }
            prop_assert!(s.get(a.len()).unwrap().is_none());
        }
        Val::Str(x) => {
            let s = r.as_str().unwrap();
            prop_assert_eq!(s.as_str(), x.as_str());
            prop_assert_eq!(r.len().unwrap(), v.len());
        }
        Val::Array(a) => {
            let s = r.as_array().unwrap();
            prop_assert_eq!(s.len(), a.len());
            prop_assert_eq!(s.elem_type(), a.elem_type());
            prop_assert!(same(&Val::Array(s.to_array().unwrap()), v));
            if let Some(xs) = a.as_slice::<f64>() {
                let ys = r.as_slice::<f64>().unwrap();
                prop_assert_eq!(
                    xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    ys.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                );
            }
        }
        _ => prop_assert!(same(&r.to_val().unwrap(), v)),
    }
    Ok(())
}

fn pool() -> (TestName, Pool) {
    let name = TestName::new("shared-prop");
    let region = Arc::new(Region::create(&name, 8 << 20).unwrap());
    (name, Pool::create(region).unwrap())
}

fn baseline(pool: &Pool) -> (u64, u64, u64, u64) {
    let s = pool.stats().unwrap();
    (s.used, s.live_allocations, s.free_blocks, s.largest_free)
}

/// One step of a clone/drop sequence over a set of live handles.
#[derive(Debug, Clone)]
enum Op {
    /// Clone handle `i`.
    Clone(usize),
    /// Drop handle `i` (with `release`, so a refused free is seen).
    Drop(usize),
    /// Take a handle to element or entry `j` of handle `i`'s value, if it is a container.
    Child(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => any::<usize>().prop_map(Op::Clone),
        3 => any::<usize>().prop_map(Op::Drop),
        4 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Op::Child(i, j)),
    ]
}

/// A child of the value `h` holds, by position, if `h` is a non-empty container.
fn child(h: &ShmVal, j: usize) -> Option<ShmVal> {
    let r = h.view();
    let pick = match r.tag() {
        Tag::Tab | Tag::OTab => {
            let t = r.as_tab().unwrap();
            let n = t.len();
            if n == 0 {
                return None;
            }
            let (k, v) = t.iter().nth(j % n).unwrap().unwrap();
            if j % 2 == 0 {
                k
            } else {
                v
            }
        }
        Tag::Arr | Tag::Tup => {
            let s = r.as_seq().unwrap();
            if s.is_empty() {
                return None;
            }
            s.get(j % s.len()).unwrap().unwrap()
        }
        _ => return None,
    };
    Some(pick.to_handle().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn share_and_copy_out_keep_every_type(v in val()) {
        let (_n, pool) = pool();
        let base = baseline(&pool);
        let h = pool.share(&v).unwrap();
        h.validate().unwrap();
        let back = h.to_val().unwrap();
        prop_assert!(same(&v, &back), "{:?}\n{:?}", v, back);
        views_agree(h.view(), &v)?;
        prop_assert_eq!(h.to_string(), v.to_string());
        h.release().unwrap();
        prop_assert_eq!(baseline(&pool), base);
        pool.verify().unwrap();
    }

    #[test]
    fn deep_values_are_generated(v in val()) {
        // Not a check of the crate: keeps the generator honest about depth.
        prop_assume!(depth(&v) >= 4);
        prop_assert!(depth(&v) >= 4);
    }

    #[test]
    fn clones_and_drops_in_any_order_free_exactly_once(
        v in val(),
        ops in vec(op(), 0..40),
        order in vec(any::<usize>(), 0..64),
    ) {
        let (_n, pool) = pool();
        let base = baseline(&pool);
        let mut live = vec![pool.share(&v).unwrap()];
        for op in ops {
            match op {
                Op::Clone(i) if !live.is_empty() => {
                    let h = live[i % live.len()].clone();
                    live.push(h);
                }
                Op::Drop(i) if !live.is_empty() => {
                    let h = live.swap_remove(i % live.len());
                    h.release().unwrap();
                }
                Op::Child(i, j) if !live.is_empty() => {
                    if let Some(c) = child(&live[i % live.len()], j) {
                        live.push(c);
                    }
                }
                _ => {}
            }
            // Every handle still reads its whole value.
            for h in &live {
                h.validate().unwrap();
            }
        }
        for i in order {
            if live.is_empty() {
                break;
            }
            live.swap_remove(i % live.len()).release().unwrap();
        }
        for h in live {
            h.release().unwrap();
        }
        prop_assert_eq!(baseline(&pool), base);
        pool.verify().unwrap();
    }
}
