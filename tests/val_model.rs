//! The value model: conversions, access, equality, order and hashing.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use shmval::val::{array_vec, BigInt, BigUint, Complex32, Complex64, FixedState};
use shmval::{otab, tup, val, Array, ElemType, OTab, Tab, Tag, Val, ValError};

#[test]
fn tags_have_stable_codes() {
    let codes: String = Tag::ALL.iter().map(|t| *t as u8 as char).collect();
    assert_eq!(codes, "ZbsSiIlLxXqQfdFDatounN");
    let elems: String = ElemType::ALL.iter().map(|t| *t as u8 as char).collect();
    assert_eq!(elems, "sSiIlLxXfdFDb");
    let typecodes: String = ElemType::ALL.iter().map(|t| t.typecode()).collect();
    assert_eq!(typecodes, "1bswiulLfdFD?");
    for t in Tag::ALL {
        assert_eq!(Tag::from_u8(t as u8), Some(t));
    }
    for t in ElemType::ALL {
        assert_eq!(ElemType::from_u8(t as u8), Some(t));
        assert_eq!(ElemType::from_typecode(t.typecode()), Some(t));
    }
    assert_eq!(Tag::from_u8(0), None);
    assert_eq!(Val::from(vec![1u16]).tag(), Tag::Array);
}

#[test]
fn conversions_in() {
    assert_eq!(Val::from(1i8).tag(), Tag::I8);
    assert_eq!(Val::from(1u32).tag(), Tag::U32);
    assert_eq!(Val::from(1usize).tag(), Tag::U64);
    assert_eq!(Val::from(1isize).tag(), Tag::I64);
    assert_eq!(Val::from(1.5f32).tag(), Tag::F32);
    assert_eq!(Val::from(Complex32::new(1.0, 2.0)).tag(), Tag::C32);
    assert_eq!(Val::from('x'), "x");
    assert_eq!(Val::from(String::from("s")), "s");
    assert_eq!(Val::from(vec![Val::None]).tag(), Tag::Arr);
    assert_eq!(Val::from(vec!["a", "b"]), val!(["a", "b"]));
    assert!(matches!(
        Val::from(vec![1i32, 2]),
        Val::Array(Array::I32(_))
    ));
    assert_eq!(Val::from(Some(3)), 3);
    assert_eq!(Val::from(None::<i32>), Val::None);
    assert_eq!(Val::from((1, "a", 2.5)), tup![1, "a", 2.5]);
    let hm: HashMap<&str, i32> = [("a", 1), ("b", 2)].into_iter().collect();
    assert_eq!(Val::from(hm), val!({"a": 1, "b": 2}));
    let bm: BTreeMap<i64, &str> = [(1, "x")].into_iter().collect();
    assert_eq!(Val::from(bm), val!({1: "x"}));
    let im: indexmap::IndexMap<&str, i32> = [("z", 1), ("a", 2)].into_iter().collect();
    assert_eq!(
        Val::from(im).to_string(),
        "OrderedDict([('z', 1), ('a', 2)])"
    );
    let collected: Val = (0..3).map(Val::from).collect();
    assert_eq!(collected, val!([0, 1, 2]));
    let t: Val = [(Val::from("k"), Val::from(1))].into_iter().collect();
    assert_eq!(t, val!({"k": 1}));
}

#[test]
fn conversions_out() {
    assert_eq!(i64::try_from(&Val::U8(7)), Ok(7));
    assert_eq!(u8::try_from(&Val::BigInt(BigInt::from(200))), Ok(200));
    assert_eq!(
        u8::try_from(&Val::I64(-1)),
        Err(ValError::OutOfRange {
            value: "-1".into(),
            target: "u8"
        })
    );
    assert_eq!(
        i64::try_from(&Val::F64(1.0)),
        Err(ValError::WrongType {
            expected: "an integer",
            found: Tag::F64
        })
    );
    assert!(i64::try_from(&Val::Bool(true)).is_err());
    assert_eq!(f64::try_from(&Val::I32(3)), Ok(3.0));
    assert_eq!(f64::try_from(&Val::F32(0.5)), Ok(0.5));
    assert_eq!(f32::try_from(Val::F64(0.1)), Ok(0.1f32));
    assert!(f64::try_from(&Val::C64(Complex64::new(1.0, 0.0))).is_err());
    assert_eq!(
        Complex64::try_from(&Val::I64(2)),
        Ok(Complex64::new(2.0, 0.0))
    );
    assert_eq!(bool::try_from(&Val::Bool(true)), Ok(true));
    assert_eq!(<&str>::try_from(&Val::from("x")), Ok("x"));
    assert_eq!(String::try_from(Val::from("x")), Ok("x".to_owned()));
    assert_eq!(
        String::try_from(Val::None),
        Err(ValError::WrongType {
            expected: "a Str",
            found: Tag::None
        })
    );
    assert_eq!(BigUint::try_from(&Val::I64(5)), Ok(BigUint::from(5u8)));
    assert!(BigUint::try_from(&Val::I64(-5)).is_err());
    assert_eq!(Vec::<Val>::try_from(tup![1]), Ok(vec![Val::from(1)]));
    assert!(Tab::try_from(val!({})).is_ok());
    assert!(OTab::try_from(val!({})).is_err());
    assert_eq!(array_vec::<f64>(Val::from(vec![1.5f64])), Ok(vec![1.5]));
    assert!(array_vec::<f32>(Val::from(vec![1.5f64])).is_err());
    let err = ValError::WrongType {
        expected: "a Str",
        found: Tag::Tab,
    };
    assert_eq!(err.to_string(), "expected a Str, found Tab");
}

#[test]
fn access_and_mutation() {
    let mut v = val!({"a": 1, "b": [1, 2.5, "x"], 7: "seven"});
    assert_eq!(v["a"], 1);
    assert_eq!(v["b"][2], "x");
    assert_eq!(v[7], "seven");
    assert_eq!(v[&Val::from(7.0)], "seven");
    assert_eq!(v.get("zz"), None);
    assert_eq!(v.get(String::from("a")), Some(&Val::from(1)));
    assert_eq!(v["b"].get(9), None);
    assert!(v.contains("a"));
    assert!(v.contains(7u8));
    assert!(!v.contains("zz"));
    assert!(v["b"].contains(2.5));
    assert!(Val::from("hello").contains("ell"));
    assert!(Val::from(vec![1i16, 2]).contains(2.0));
    assert_eq!(v.len(), 3);
    assert_eq!(Val::from("é中").len(), 2);
    assert!(!v.is_empty());
    assert!(Val::None.is_empty());
    v["new"] = val!([1]);
    v["new"].push("two").unwrap();
    assert_eq!(v["new"], val!([1, "two"]));
    v["b"][0] = Val::None;
    assert_eq!(v["b"][0], Val::None);
    assert_eq!(v.insert("a", 2), Ok(Some(Val::from(1))));
    assert_eq!(v.remove("a"), Some(Val::from(2)));
    assert_eq!(
        Val::None.insert(1, 2),
        Err(ValError::WrongType {
            expected: "Tab or OTab",
            found: Tag::None
        })
    );
    let mut a = Val::from(vec![1.0f64]);
    a.push(2.0).unwrap();
    assert!(a.push(3).is_err());
    assert_eq!(a.as_array().and_then(|a| a.get(1)), Some(Val::F64(2.0)));
    assert_eq!(a.as_array().map(|a| a.iter().count()), Some(2));
    assert_eq!(
        a.as_array().and_then(|a| a.as_slice::<f64>()),
        Some(&[1.0, 2.0][..])
    );

    let keys: Vec<String> = val!(["x", "y"]).iter().map(|k| k.to_string()).collect();
    assert_eq!(keys, ["'x'", "'y'"]);
    let o = otab! {"z": 1, "a": 2, "m": 3};
    let order: Vec<&Val> = o.iter().collect();
    assert_eq!(order, [&Val::from("z"), &Val::from("a"), &Val::from("m")]);
    let items: Vec<(&Val, &Val)> = o.items().collect();
    assert_eq!(items[1], (&Val::from("a"), &Val::from(2)));
    let sorted: Vec<&Val> = o.sorted_items().into_iter().map(|(k, _)| k).collect();
    assert_eq!(sorted, [&Val::from("a"), &Val::from("m"), &Val::from("z")]);
    let mut o = o;
    o.remove("z");
    o.insert("z", 0).unwrap();
    assert_eq!(o.to_string(), "OrderedDict([('a', 2), ('m', 3), ('z', 0)])");
    assert_eq!(Val::from(3).iter().count(), 0);
}

#[test]
#[should_panic(expected = "no entry at this index of a Arr value")]
fn index_out_of_bounds_panics() {
    let v = val!([1]);
    let _ = &v[1];
}

#[test]
#[should_panic]
fn index_missing_key_panics() {
    let v = val!({"a": 1});
    let _ = &v["b"];
}

fn h(v: &Val) -> u64 {
    v.stable_hash()
}

#[test]
fn numbers_equal_across_types_and_hash_alike() {
    let ten47 = BigInt::from(10u8).pow(47);
    let groups: Vec<Vec<Val>> = vec![
        vec![
            Val::I64(1),
            Val::U8(1),
            Val::I8(1),
            Val::U64(1),
            Val::F64(1.0),
            Val::F32(1.0),
            Val::Bool(true),
            Val::BigInt(BigInt::from(1)),
            Val::BigUint(BigUint::from(1u8)),
            Val::C64(Complex64::new(1.0, 0.0)),
            Val::C32(Complex32::new(1.0, -0.0)),
        ],
        vec![Val::F64(0.0), Val::F64(-0.0), Val::I32(0), Val::Bool(false)],
        vec![
            Val::BigInt(ten47.clone()),
            Val::BigUint(ten47.to_biguint().unwrap()),
            Val::F64(1e47_f64).clone(),
        ],
        vec![
            Val::U64(u64::MAX),
            Val::BigInt(BigInt::from(u64::MAX)),
            Val::F64(18446744073709551615.0),
        ],
        vec![
            Val::F64(0.5),
            Val::F32(0.5),
            Val::C64(Complex64::new(0.5, 0.0)),
        ],
        vec![Val::F64(f64::NAN), Val::F32(f32::NAN), Val::F64(-f64::NAN)],
        vec![
            Val::C64(Complex64::new(1.0, 2.0)),
            Val::C32(Complex32::new(1.0, 2.0)),
        ],
        vec![
            Val::from(vec![1i64, 2]),
            Val::from(vec![1.0f64, 2.0]),
            Val::from(vec![1u8, 2]),
        ],
        vec![val!({"a": 1}), otab! {"a": 1.0}],
        vec![
            otab! {"a": 1, "b": 2},
            otab! {"b": 2, "a": 1},
            val!({"b": 2.0, "a": 1}),
        ],
    ];
    // 1e47 as an f64 is not exactly 10**47: drop that member after checking it differs.
    let mut groups = groups;
    assert_ne!(groups[2][2], groups[2][0]);
    groups[2].pop();
    // u64::MAX is not an f64 either.
    assert_ne!(groups[3][2], groups[3][0]);
    groups[3].pop();
    for g in &groups {
        for a in g {
            for b in g {
                assert_eq!(a, b, "{a:?} vs {b:?}");
                assert_eq!(h(a), h(b), "{a:?} vs {b:?}");
                assert_eq!(a.partial_cmp(b), Some(Ordering::Equal));
            }
        }
    }
    for (i, g) in groups.iter().enumerate() {
        for (j, k) in groups.iter().enumerate() {
            if i != j {
                assert_ne!(g[0], k[0]);
            }
        }
    }
    // Distinct kinds never compare equal.
    assert_ne!(val!([1]), tup![1]);
    assert_ne!(val!([1]), Val::from(vec![1i64]));
    assert_ne!(Val::from("1"), Val::from(1));
    assert_ne!(Val::None, Val::from(0));
    // Exact comparison of large integers with floats.
    let two53 = BigInt::from(2u8).pow(53);
    assert_ne!(Val::BigInt(&two53 + 1), Val::F64(9007199254740992.0));
    assert_eq!(Val::BigInt(two53.clone()), Val::F64(9007199254740992.0));
    assert_eq!(Val::I64(1 << 53), Val::F64(9007199254740992.0));
    assert_ne!(Val::I64((1 << 53) + 1), Val::F64(9007199254740992.0));
    assert!(Val::I64((1 << 53) + 1) > Val::F64(9007199254740992.0));
}

#[test]
fn a_tab_finds_keys_of_any_numeric_type() {
    let mut t = Tab::default();
    t.insert(Val::I64(1), Val::from("one"));
    assert_eq!(t.get(&Val::F64(1.0)), Some(&Val::from("one")));
    assert_eq!(
        t.get(&Val::BigUint(BigUint::from(1u8))),
        Some(&Val::from("one"))
    );
    t.insert(Val::F64(f64::NAN), Val::from("nan"));
    assert_eq!(t.get(&Val::F32(f32::NAN)), Some(&Val::from("nan")));
    let via_std: HashMap<Val, i32, FixedState> = [(Val::from(2u8), 2)].into_iter().collect();
    assert_eq!(via_std.get(&Val::from(2.0)), Some(&2));
}

#[test]
fn ordering() {
    let lt = |a: Val, b: Val| assert_eq!(a.partial_cmp(&b), Some(Ordering::Less), "{a} < {b}");
    lt(Val::I64(-1), Val::U8(0));
    lt(Val::F64(0.5), Val::I64(1));
    lt(Val::I64(1), Val::F64(1.5));
    lt(Val::BigInt(-BigInt::from(10u8).pow(40)), Val::F64(-1e30));
    lt(
        Val::F64(f64::NEG_INFINITY),
        Val::BigInt(-BigInt::from(10u8).pow(400)),
    );
    lt(
        Val::BigInt(BigInt::from(10u8).pow(400)),
        Val::F64(f64::INFINITY),
    );
    lt(Val::from("a"), Val::from("b"));
    lt(Val::from("Z"), Val::from("a"));
    lt(val!([1, 2]), val!([1, 3]));
    lt(val!([1, 2]), val!([1, 2, 0]));
    lt(tup![1], tup![2]);
    // Across kinds: None < numbers < Str < Tup < Arr < Array < tables.
    lt(Val::None, Val::from(-1e300));
    lt(Val::from(1e300), Val::from(""));
    lt(Val::from("zzz"), tup![]);
    lt(tup![9], val!([]));
    lt(val!([9]), Val::from(vec![0u8]));
    lt(Val::from(vec![9u8]), val!({}));
    // Complex numbers and NaN are not ordered.
    let c = Val::C64(Complex64::new(1.0, 1.0));
    assert_eq!(c.partial_cmp(&Val::from(0)), None);
    assert_eq!(c.partial_cmp(&Val::C64(Complex64::new(1.0, 2.0))), None);
    assert_eq!(c.partial_cmp(&c.clone()), Some(Ordering::Equal));
    assert_eq!(Val::F64(f64::NAN).partial_cmp(&Val::from(1)), None);
    assert_eq!(val!([c.clone()]).partial_cmp(&val!([0])), None);
    // ...but total_cmp orders them: by real part, then imaginary part; NaN above all.
    assert_eq!(c.total_cmp(&Val::from(1)), Ordering::Greater);
    assert_eq!(c.total_cmp(&Val::from(2)), Ordering::Less);
    assert_eq!(
        Val::F64(f64::NAN).total_cmp(&Val::F64(f64::INFINITY)),
        Ordering::Greater
    );
    assert_eq!(val!({"a": 1}).total_cmp(&val!({"a": 2})), Ordering::Less);
}

/// The hashes are part of the shared layout: they must never change.
#[test]
fn stable_hashes_are_pinned() {
    let pinned: Vec<(Val, u64)> = vec![
        (Val::None, PIN_NONE),
        (Val::I64(1), PIN_ONE),
        (Val::F64(0.5), PIN_HALF),
        (Val::from("a"), PIN_A),
        (val!({"a": [1, 2.5]}), PIN_TAB),
    ];
    let got: Vec<String> = pinned.iter().map(|(v, _)| format!("{:#x}", h(v))).collect();
    let want: Vec<String> = pinned.iter().map(|(_, w)| format!("{w:#x}")).collect();
    assert_eq!(got, want);
}

const PIN_NONE: u64 = 0xd3e5_3b03_49a0_a97e;
const PIN_ONE: u64 = 0x0ca8_6f7b_c6da_d190;
const PIN_HALF: u64 = 0x2d00_24aa_fd7e_f4ce;
const PIN_A: u64 = 0x21c0_fb71_1997_7b93;
const PIN_TAB: u64 = 0x89be_9bea_28c1_ee48;

#[test]
fn macros_build_nested_literals() {
    let v = val!({
        "n": None,
        "neg": -1,
        "list": [None, [], {}, [1, [2, [3]]], -2.5],
        "tup": tup![1, None, [2]],
        "ord": otab!{"b": 1, "a": None},
        (1, 2): "tuple key",
        3: 4
    });
    assert_eq!(v["n"], Val::None);
    assert_eq!(v["neg"], -1);
    assert_eq!(v["list"][3][1][1][0], 3);
    assert_eq!(v[&tup![1, 2]], "tuple key");
    assert_eq!(
        v.to_string(),
        "{3: 4, 'list': [None, [], {}, [1, [2, [3]]], -2.5], 'n': None, 'neg': -1, \
         'ord': OrderedDict([('b', 1), ('a', None)]), 'tup': (1, None, [2]), \
         (1, 2): 'tuple key'}"
    );
    assert_eq!(val!([1, 2,]), val!([1, 2]));
    assert_eq!(val!(2.5), 2.5);
    assert_eq!(tup![None,], tup![None]);
}
