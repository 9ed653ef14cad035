//! Python itself as the reference: what we print, `ast.literal_eval` reads back, and
//! Python's `repr` of the result is our text again.
//!
//! Runs `python3`; where it is missing the test says so and passes.

use std::io::Write;
use std::process::{Command, Stdio};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use shmval::val::{BigInt, Complex64};
use shmval::{Tab, Val};

const CHARS: &[char] = &[
    'a',
    'z',
    'Q',
    '0',
    ' ',
    '\'',
    '"',
    '\\',
    '\n',
    '\r',
    '\t',
    '\0',
    '\x01',
    '\x1f',
    '\x7f',
    '\u{80}',
    '\u{9f}',
    '\u{a0}',
    '\u{ad}',
    'é',
    'ß',
    'Ω',
    '中',
    '😀',
    '\u{200b}',
    '\u{2028}',
    '\u{feff}',
    '\u{e000}',
    '\u{10ffff}',
    'ÿ',
    'Ā',
];

/// A finite float that is not `-0.0` (Python's literal_eval turns `(1-0j)` into `(1+0j)`).
fn part() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        Just(0.0),
        Just(1.0),
        Just(2.5),
        Just(1e16),
        Just(1e-7),
    ]
    .prop_map(|f| if f == 0.0 { 0.0 } else { f })
}

/// Values whose types Python maps one-to-one: None, bool, int, float, complex, str.
fn scalar() -> impl Strategy<Value = Val> {
    prop_oneof![
        Just(Val::None),
        any::<bool>().prop_map(Val::Bool),
        any::<i64>().prop_map(Val::I64),
        (any::<i128>(), 0u32..300).prop_map(|(x, s)| Val::BigInt(BigInt::from(x) << s)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Val::F64),
        Just(Val::F64(-0.0)),
        (part(), part())
            // `-1j` reads back as `(-0-1j)` in Python: a zero real part needs im >= 0.
            .prop_filter("reads back", |(re, im)| *re != 0.0 || *im >= 0.0)
            .prop_map(|(re, im)| Val::C64(Complex64::new(re, im))),
        vec(proptest::sample::select(CHARS), 0..8).prop_map(|c| Val::Str(c.into_iter().collect())),
    ]
}

/// Keys Python can hash: scalars and tuples of them.
fn key() -> impl Strategy<Value = Val> {
    prop_oneof![
        3 => scalar(),
        1 => vec(scalar(), 0..3).prop_map(Val::Tup),
    ]
}

fn value() -> impl Strategy<Value = Val> {
    scalar().prop_recursive(5, 64, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Val::Arr),
            vec(inner.clone(), 0..5).prop_map(Val::Tup),
            vec((key(), inner), 0..5).prop_map(|kv| Val::Tab(kv.into_iter().collect::<Tab>())),
        ]
    })
}

const SCRIPT: &str = r#"
import ast, sys
out = []
for line in sys.stdin.buffer.read().decode("utf-8").split("\n"):
    if not line:
        continue
    try:
        out.append(repr(ast.literal_eval(line)))
    except Exception as e:
        out.append("ERROR " + type(e).__name__ + ": " + str(e).replace("\n", " "))
sys.stdout.buffer.write("\n".join(out).encode("utf-8"))
"#;

#[test]
fn python_reads_what_we_print() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = value();
    let mut vals: Vec<Val> = Vec::new();
    while vals.len() < 400 {
        if let Ok(tree) = strategy.new_tree(&mut runner) {
            vals.push(tree.current());
        }
    }
    let lines: Vec<String> = vals.iter().map(|v| v.to_string()).collect();

    let child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("python3 could not be run ({e}): skipping the comparison with Python");
            return;
        }
    };
    let mut input = lines.join("\n");
    input.push('\n');
    let mut stdin = child.stdin.take().expect("stdin was piped");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("python3 ran");
    writer
        .join()
        .expect("writer thread")
        .expect("python3 read its input");
    assert!(out.status.success(), "python3 failed: {:?}", out.status);
    let text = String::from_utf8(out.stdout).expect("python3 printed UTF-8");
    let reprs: Vec<&str> = text.split('\n').collect();
    assert_eq!(reprs.len(), lines.len());
    for ((ours, theirs), v) in lines.iter().zip(&reprs).zip(&vals) {
        assert_eq!(ours, theirs, "{v:?}");
    }
}
