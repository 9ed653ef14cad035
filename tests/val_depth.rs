//! The deepest values the parser accepts, in every container syntax and mixtures of them:
//! they parse, print (repr and pretty) and parse back equal, share, copy out and compare,
//! all within a 2 MiB thread stack (the default for spawned threads) in a debug build; one
//! level deeper is refused with the depth error.

// The common test module names std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use common::pools::{baseline, new_pool};
use common::vals::{depth, same};
use shmval::val::shared::MAX_NESTING;
use shmval::val::MAX_DEPTH;
use shmval::{PoolExt, Val, ValError};

/// One level of nesting: the text before and after the level below.
type Level = (&'static str, &'static str);

const ARR: Level = ("[", "]");
const TUP: Level = ("(", ",)");
const TAB: Level = ("{'k': ", "}");
/// The level below as a key.
const TAB_KEY: Level = ("{", ": 1}");
const OTAB: Level = ("o{2: ", "}");
const ODICT: Level = ("OrderedDict({3: ", "})");
const OPAIRS: Level = ("OrderedDict([(4, ", ")])");
const OPAIRS_KEY: Level = ("OrderedDict([(", ", 5), (6, 7)])");

/// `levels` levels cycling through `kinds`, around `leaf`.
fn nested(kinds: &[Level], levels: usize, leaf: &str) -> String {
    let mut s = String::new();
    for i in 0..levels {
        s.push_str(kinds[i % kinds.len()].0);
    }
    s.push_str(leaf);
    for i in (0..levels).rev() {
        s.push_str(kinds[i % kinds.len()].1);
    }
    s
}

/// Runs `f` on a thread with a 2 MiB stack, as `std::thread::spawn` gives by default.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

fn cases() -> Vec<(&'static str, Vec<Level>, &'static str)> {
    vec![
        ("lists", vec![ARR], "1"),
        ("tuples", vec![TUP], "'x'"),
        ("dicts", vec![TAB], "None"),
        ("dict keys", vec![TAB_KEY], "1"),
        ("o{}", vec![OTAB], "1.5"),
        ("OrderedDict({})", vec![ODICT], "1"),
        ("OrderedDict([])", vec![OPAIRS], "1"),
        ("OrderedDict([]) keys", vec![OPAIRS_KEY], "1"),
        ("complex leaf", vec![ARR, TUP], "(1+2j)"),
        (
            "all mixed",
            vec![ARR, OPAIRS, TUP, TAB_KEY, OTAB, TAB, ODICT, OPAIRS_KEY],
            "(-0-1j)",
        ),
        ("dicts and keys", vec![TAB, TAB_KEY, OPAIRS_KEY, OTAB], "''"),
    ]
}

fn is_depth_error(e: &ValError) -> bool {
    matches!(e, ValError::Parse { expected, .. } if expected.contains("no deeper than 256"))
}

#[test]
fn the_deepest_text_prints_what_it_parses() {
    on_small_stack(|| {
        for (name, kinds, leaf) in cases() {
            let text = nested(&kinds, MAX_DEPTH, leaf);
            let v = Val::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(depth(&v), MAX_DEPTH, "{name}");
            let repr = v.to_string();
            let back = Val::parse(&repr).unwrap_or_else(|e| panic!("{name} repr: {e}"));
            assert!(back == v && same(&back, &v), "{name}");
            let pretty = v.pretty().to_string();
            let back = Val::parse(&pretty).unwrap_or_else(|e| panic!("{name} pretty: {e}"));
            assert!(back == v && same(&back, &v), "{name}");
            let deeper = nested(&kinds, MAX_DEPTH + 1, leaf);
            let e = Val::parse(&deeper).unwrap_err();
            assert!(is_depth_error(&e), "{name}: {e}");
        }
    });
}

#[test]
fn an_ordered_dict_is_one_level_in_every_form() {
    // 256 levels of each form parse; their printed forms, 257 of any, do not.
    for form in [OTAB, ODICT, OPAIRS, OPAIRS_KEY] {
        let v = Val::parse(&nested(&[form], MAX_DEPTH, "1")).unwrap();
        assert_eq!(depth(&v), MAX_DEPTH);
        assert!(v.to_string().starts_with("OrderedDict([("));
        assert!(is_depth_error(
            &Val::parse(&nested(&[form], MAX_DEPTH + 1, "1")).unwrap_err()
        ));
    }
    // A parenthesised number is no container; parentheses around anything else are.
    assert_eq!(
        Val::parse(&nested(&[ARR], MAX_DEPTH, "( -1.5 - 2j )")).map(|v| depth(&v)),
        Ok(MAX_DEPTH)
    );
    assert!(is_depth_error(
        &Val::parse(&nested(&[ARR], MAX_DEPTH, "(1, )")).unwrap_err()
    ));
}

#[test]
fn the_deepest_values_share_copy_out_and_compare() {
    on_small_stack(|| {
        let (_n, pool) = new_pool("depth-shared", 4 << 20);
        let base = baseline(&pool);
        for (name, kinds, leaf) in cases() {
            let v = Val::parse(&nested(&kinds, MAX_NESTING, leaf)).unwrap();
            let h = pool.share(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
            h.validate().unwrap();
            let back = h.to_val().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(same(&back, &v), "{name}");
            assert_eq!(h.view().eq_val(&v), Ok(true), "{name}");
            assert_eq!(h.to_string(), v.to_string(), "{name}");
            // One level more: sharing refuses it (and frees what it built); a value built
            // that deep in place cannot be copied out, compared or printed.
            let deeper = Val::Arr(vec![v.clone()]);
            assert_eq!(
                pool.share(&deeper).unwrap_err(),
                ValError::TooDeep { limit: MAX_NESTING }
            );
            let mut outer = pool.arr().unwrap();
            outer.try_mut().unwrap().push(h).unwrap();
            outer.validate().unwrap();
            let too_deep = ValError::TooDeep { limit: MAX_NESTING };
            assert_eq!(outer.to_val(), Err(too_deep.clone()), "{name}");
            assert_eq!(outer.view().eq_val(&deeper), Err(too_deep.clone()));
            assert_eq!(outer.to_string(), format!("<{too_deep}>"));
            // The inner value still compares and copies on its own.
            let inner = outer.as_seq().unwrap().get(0).unwrap().unwrap();
            assert_eq!(inner.eq_val(&v), Ok(true), "{name}");
            drop((outer, v, deeper, back));
            assert_eq!(baseline(&pool), base, "{name}");
        }
    });
}
