//! Property tests of shared values: any value survives share and copy out with its types,
//! views agree with the heap value, and any order of clones and drops frees each object
//! exactly once, leaving the pool as it was.

// The common test module names std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::Arc;

use common::vals::{depth, same, val};
use common::TestName;
use proptest::collection::vec;
use proptest::prelude::*;
use shmval::alloc::Pool;
use shmval::region::Region;
use shmval::sides::ShmMain;
use shmval::val::shared::{ShmRef, ShmVal};
use shmval::{PoolExt, Tag, Val};

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

/// The pool's use (bytes, blocks), but for this process's ledger chunks: the handles are
/// recorded, and the chunks grow with the handles held at once, and stay.
fn baseline(pool: &Pool) -> (u64, u64) {
    let s = pool.stats().unwrap();
    let k = shmval::ledger::kept(pool);
    (s.used - k.bytes, s.live_allocations - k.blocks)
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
        clones_and_drops(&pool, &v, ops, order)?;
    }

    /// The same through a started region, where each handle is recorded in the process's
    /// ledger and the last drop frees the graph by the recorded walk.
    #[test]
    fn recorded_clones_and_drops_free_exactly_once(
        v in val(),
        ops in vec(op(), 0..40),
        order in vec(any::<usize>(), 0..64),
    ) {
        let name = TestName::new("shared-prop-recorded");
        let main = ShmMain::new(name.as_str(), 8 << 20).start().unwrap();
        clones_and_drops(main.pool(), &v, ops, order)?;
    }
}

/// Shares `v`, runs `ops` on the handles, drops the rest in `order`, and checks that the
/// pool is back where it started.
fn clones_and_drops(
    pool: &Pool,
    v: &Val,
    ops: Vec<Op>,
    order: Vec<usize>,
) -> Result<(), TestCaseError> {
    let base = baseline(pool);
    let mut live = vec![pool.share(v).unwrap()];
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
    prop_assert_eq!(baseline(pool), base);
    pool.verify().unwrap();
    Ok(())
}
