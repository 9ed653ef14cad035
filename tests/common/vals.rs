//! Value generators and comparisons shared by the value tests.

use proptest::collection::vec;
use proptest::prelude::*;
use shmval::val::{BigInt, Complex32, Complex64};
use shmval::{Array, OTab, Tab, Val};

pub fn big() -> impl Strategy<Value = BigInt> {
    (any::<i128>(), any::<u64>(), 0u32..3)
        .prop_map(|(hi, lo, shift)| (BigInt::from(hi) << (64 * shift)) + BigInt::from(lo))
}

pub fn scalar() -> impl Strategy<Value = Val> {
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
        // Quotes, backslashes and newlines, which the text form must escape.
        "[a-z'\"\\\\\n]{0,6}".prop_map(Val::Str),
    ]
}

pub fn array() -> impl Strategy<Value = Array> {
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

pub fn val() -> impl Strategy<Value = Val> {
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

pub fn depth(v: &Val) -> usize {
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
pub fn same(a: &Val, b: &Val) -> bool {
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
