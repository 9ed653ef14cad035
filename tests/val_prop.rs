//! Property tests: the text forms read back to equal values, and equality, order and
//! hashing agree with each other across numeric types.

mod common;

use std::cmp::Ordering;

use common::vals::{depth, val};

use proptest::prelude::*;
use shmval::val::{BigInt, BigUint, Complex32, Complex64};
use shmval::Val;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn display_parses_back_equal(v in val()) {
        let text = v.to_string();
        let back = Val::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &v, "{}", text);
        // Printing again gives the same text: order and array types survive too.
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn pretty_parses_back_equal(v in val()) {
        let text = v.pretty().to_string();
        let back = Val::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &v, "{}", text);
    }

    #[test]
    fn eq_hash_and_order_agree(a in val(), b in val()) {
        check_pair(&a, &b)?;
        check_pair(&a, &a.clone())?;
    }

    #[test]
    fn equal_numbers_of_every_type_hash_alike(x in -300i64..300, den in 1u8..5) {
        let all = representations(x, den);
        for a in &all {
            for b in &all {
                prop_assert_eq!(a, b);
                prop_assert_eq!(a.stable_hash(), b.stable_hash(), "{:?} {:?}", a, b);
            }
        }
    }

    #[test]
    fn nearby_numbers_agree(a in small_number(), b in small_number()) {
        check_pair(&a, &b)?;
    }
}

/// `x / den` in every type that holds it exactly.
fn representations(x: i64, den: u8) -> Vec<Val> {
    let f = x as f64 / f64::from(den);
    let mut out = vec![
        Val::F64(f),
        Val::C64(Complex64::new(f, 0.0)),
        Val::from(vec![f])
            .as_array()
            .and_then(|a| a.get(0))
            .unwrap_or_default(),
    ];
    if f64::from(f as f32) == f {
        out.push(Val::F32(f as f32));
        out.push(Val::C32(Complex32::new(f as f32, -0.0)));
    }
    if f.fract() == 0.0 {
        let i = f as i64;
        out.push(Val::I64(i));
        out.push(Val::BigInt(BigInt::from(i)));
        out.extend(i8::try_from(i).ok().map(Val::I8));
        out.extend(i16::try_from(i).ok().map(Val::I16));
        out.extend(i32::try_from(i).ok().map(Val::I32));
        out.extend(u8::try_from(i).ok().map(Val::U8));
        out.extend(u16::try_from(i).ok().map(Val::U16));
        out.extend(u32::try_from(i).ok().map(Val::U32));
        out.extend(u64::try_from(i).ok().map(Val::U64));
        out.extend(
            u64::try_from(i)
                .ok()
                .map(|u| Val::BigUint(BigUint::from(u))),
        );
        if i == 0 || i == 1 {
            out.push(Val::Bool(i == 1));
        }
    }
    out
}

/// Numbers drawn from a few values in many types, so pairs are often equal.
fn small_number() -> impl Strategy<Value = Val> {
    let values = prop_oneof![
        Just(0.0),
        Just(-0.0),
        Just(1.0),
        Just(-1.0),
        Just(0.5),
        Just(2.0f64.powi(53)),
        Just(2.0f64.powi(64)),
        Just(f64::INFINITY),
        Just(f64::NAN),
    ];
    (
        values,
        0u8..8,
        prop_oneof![Just(0.0), Just(1.0), Just(f64::NAN)],
    )
        .prop_map(|(f, ty, im)| {
            let int = || BigInt::from(f as i128);
            match ty {
                0 => Val::F64(f),
                1 => Val::F32(f as f32),
                2 => Val::C64(Complex64::new(f, im)),
                3 if f.is_finite() && f.fract() == 0.0 => Val::BigInt(int()),
                4 if f.is_finite() && f.fract() == 0.0 && f >= 0.0 => {
                    Val::BigUint(int().magnitude().clone())
                }
                5 if f.is_finite() && f.fract() == 0.0 => {
                    i64::try_from(int()).map_or(Val::F64(f), Val::I64)
                }
                6 if f == 0.0 || f == 1.0 => Val::Bool(f == 1.0),
                _ => Val::C32(Complex32::new(f as f32, im as f32)),
            }
        })
}

fn check_pair(a: &Val, b: &Val) -> Result<(), TestCaseError> {
    let total = a.total_cmp(b);
    prop_assert_eq!(a == b, total == Ordering::Equal, "{:?} {:?}", a, b);
    prop_assert_eq!(b.total_cmp(a), total.reverse());
    if a == b {
        prop_assert_eq!(a.stable_hash(), b.stable_hash(), "{:?} {:?}", a, b);
        prop_assert_eq!(a.partial_cmp(b), Some(Ordering::Equal));
    }
    if let Some(p) = a.partial_cmp(b) {
        prop_assert_eq!(p, total);
    }
    prop_assert_eq!(a.partial_cmp(b).map(Ordering::reverse), b.partial_cmp(a));
    Ok(())
}

#[test]
fn generated_values_are_deep() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let deepest = (0..500)
        .map(|_| {
            depth(
                &val()
                    .new_tree(&mut runner)
                    .map(|t| t.current())
                    .unwrap_or_default(),
            )
        })
        .max()
        .unwrap_or(0);
    assert!(deepest >= 4, "deepest generated value: {deepest}");
}
