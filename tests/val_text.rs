//! The text forms of values: Display, pretty and the parser, on hand-picked cases.

use shmval::val::{BigInt, BigUint, Complex32, Complex64};
use shmval::{otab, tup, val, Array, ElemType, Tab, Val, ValError};

fn show(v: &Val) -> String {
    v.to_string()
}

fn big10_47() -> (BigInt, BigUint) {
    let bi = BigInt::from(10u8).pow(47);
    let bu = BigUint::from(10u8).pow(47);
    (bi, bu)
}

/// The packet of the original's example programs, after the middle process added
/// `my_sequence`: its pretty form is the six lines the original's client printed.
#[test]
fn seed_packet_pretty_matches_original() {
    let (bi, bu) = big10_47();
    let mut v = Val::tab();
    v["sequence_number"] = Val::from(0);
    v["bi"] = Val::BigInt(bi);
    v["bu"] = Val::BigUint(bu);
    v["my_sequence"] = Val::from(100);
    let want = "{\n    'bi':100000000000000000000000000000000000000000000000L,\n    \
                'bu':100000000000000000000000000000000000000000000000L,\n    \
                'my_sequence':100,\n    'sequence_number':0\n}";
    assert_eq!(v.pretty().to_string(), want);
    assert_eq!(Val::parse(want).unwrap(), v);
}

/// The packet as the server built it prints as a Python 3 dict, big ints without `L`.
#[test]
fn seed_packet_display() {
    let (bi, bu) = big10_47();
    let mut v = Val::tab();
    v.insert("sequence_number", 0).unwrap();
    v.insert("bi", bi).unwrap();
    v.insert("bu", bu).unwrap();
    let text = show(&v);
    assert_eq!(
        text,
        "{'bi': 100000000000000000000000000000000000000000000000, \
         'bu': 100000000000000000000000000000000000000000000000, 'sequence_number': 0}"
    );
    let back = Val::parse(&text).unwrap();
    assert_eq!(back, v);
    // The parser makes a BigInt of both; BigInt and BigUint compare by value.
    assert!(matches!(back["bu"], Val::BigInt(_)));
    assert_eq!(back["bu"], v["bu"]);
    assert_eq!(
        v.pretty().big_suffix(false).to_string(),
        "{\n    'bi':100000000000000000000000000000000000000000000000,\n    \
         'bu':100000000000000000000000000000000000000000000000,\n    'sequence_number':0\n}"
    );
}

#[test]
fn display_scalars() {
    let cases: Vec<(Val, &str)> = vec![
        (Val::None, "None"),
        (Val::Bool(true), "True"),
        (Val::Bool(false), "False"),
        (Val::I8(-128), "-128"),
        (Val::U64(u64::MAX), "18446744073709551615"),
        (Val::F64(1.0), "1.0"),
        (Val::F64(-0.0), "-0.0"),
        (Val::F64(2.5), "2.5"),
        (Val::F64(1e16), "1e+16"),
        (Val::F64(1e-5), "1e-05"),
        (Val::F64(f64::INFINITY), "inf"),
        (Val::F64(f64::NAN), "nan"),
        (Val::F32(0.5), "0.5"),
        (Val::F32(0.1), "0.10000000149011612"),
        (Val::C64(Complex64::new(1.5, 2.0)), "(1.5+2j)"),
        (Val::C64(Complex64::new(0.0, 1.0)), "1j"),
        (Val::C64(Complex64::new(0.0, 0.0)), "0j"),
        (Val::C64(Complex64::new(-0.0, -1.0)), "(-0-1j)"),
        (Val::C64(Complex64::new(1.0, -0.0)), "(1-0j)"),
        (Val::C64(Complex64::new(1.0, f64::NAN)), "(1+nanj)"),
        (Val::C64(Complex64::new(1e16, -2.5e-7)), "(1e+16-2.5e-07j)"),
        (Val::C32(Complex32::new(0.5, 0.25)), "(0.5+0.25j)"),
        (Val::from("it's"), "\"it's\""),
        (Val::from("a\"b'c\n\x01"), "'a\"b\\'c\\n\\x01'"),
        (Val::from("tab\there\\"), "'tab\\there\\\\'"),
        (Val::from("é中😀"), "'é中😀'"),
        (
            Val::from("\u{7f}\u{a0}\u{200b}\u{2028}"),
            "'\\x7f\\xa0\\u200b\\u2028'",
        ),
    ];
    for (v, want) in cases {
        assert_eq!(show(&v), want, "{v:?}");
    }
}

#[test]
fn display_containers() {
    assert_eq!(
        show(&val!({"a": 1, "b": [1, 2.5, "x"]})),
        "{'a': 1, 'b': [1, 2.5, 'x']}"
    );
    assert_eq!(show(&val!({})), "{}");
    assert_eq!(show(&val!([])), "[]");
    assert_eq!(show(&tup![]), "()");
    assert_eq!(show(&tup![1]), "(1,)");
    assert_eq!(show(&tup![1, "two", 3.0]), "(1, 'two', 3.0)");
    assert_eq!(
        show(&otab! {"b": 1, "a": 2}),
        "OrderedDict([('b', 1), ('a', 2)])"
    );
    assert_eq!(show(&Val::otab()), "OrderedDict()");
    assert_eq!(show(&Val::from(vec![1.0f64, 2.5])), "array([1.0,2.5], 'd')");
    assert_eq!(show(&Val::from(vec![1i64, -2])), "array([1,-2], 'l')");
    assert_eq!(show(&Val::from(vec![1u64])), "array([1], 'L')");
    assert_eq!(
        show(&Val::from(vec![true, false])),
        "array([True,False], '?')"
    );
    assert_eq!(show(&Val::from(vec![0.1f32])), "array([0.1], 'f')");
    assert_eq!(
        show(&Val::from(vec![
            Complex64::new(1.0, 2.0),
            Complex64::new(0.0, 0.0)
        ])),
        "array([(1+2j),0j], 'D')"
    );
    assert_eq!(
        show(&Val::Array(Array::new(ElemType::U8))),
        "array([], 'b')"
    );
    // Keys of mixed types sort None, numbers, strings, tuples.
    let mut t = Tab::default();
    t.insert(Val::from("s"), Val::None);
    t.insert(tup![1, 2], Val::None);
    t.insert(Val::from(2.5), Val::None);
    t.insert(Val::None, Val::None);
    t.insert(Val::from(1), Val::None);
    assert_eq!(
        show(&Val::Tab(t)),
        "{None: None, 1: None, 2.5: None, 's': None, (1, 2): None}"
    );
}

#[test]
fn pretty_layout() {
    let v = val!({"b": [1, {"c": tup![1]}], "a": {}, "d": otab!{"z": 1, "y": []}, "e": tup![]});
    let want = "\
{
    'a':{ },
    'b':[
        1,
        {
            'c':(
                1,
            )
        }
    ],
    'd':o{
        'z':1,
        'y':[ ]
    },
    'e':( )
}";
    assert_eq!(v.pretty().to_string(), want);
    assert_eq!(Val::parse(want).unwrap(), v);
    assert_eq!(Val::from(3).pretty().to_string(), "3");
    assert_eq!(
        val!([1, 2]).pretty().step(2).indent(4).to_string(),
        "[\n      1,\n      2\n    ]"
    );
}

#[test]
fn parse_values() {
    let p = |s: &str| Val::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert!(matches!(p("1"), Val::I64(1)));
    assert!(matches!(p("-9223372036854775808"), Val::I64(i64::MIN)));
    assert!(matches!(p("9223372036854775808"), Val::BigInt(_)));
    assert!(matches!(p("100L"), Val::I64(100)));
    assert!(matches!(p("1_000"), Val::I64(1000)));
    assert!(matches!(p("2.5"), Val::F64(x) if x == 2.5));
    assert!(matches!(p(".5"), Val::F64(x) if x == 0.5));
    assert!(matches!(p("5."), Val::F64(x) if x == 5.0));
    assert!(matches!(p("1e5"), Val::F64(x) if x == 1e5));
    assert!(matches!(p("-inf"), Val::F64(x) if x == f64::NEG_INFINITY));
    assert!(matches!(p("nan"), Val::F64(x) if x.is_nan()));
    assert!(matches!(p("-0.0"), Val::F64(x) if x == 0.0 && x.is_sign_negative()));
    let c = |s: &str| match p(s) {
        Val::C64(c) => (c.re, c.im),
        other => panic!("{s} gave {other:?}"),
    };
    assert_eq!(c("1j"), (0.0, 1.0));
    assert_eq!(c("(1+2j)"), (1.0, 2.0));
    assert_eq!(c("(1.5-2e3j)"), (1.5, -2000.0));
    assert_eq!(c("1 + 2J"), (1.0, 2.0));
    assert_eq!(c("-1j"), (0.0, -1.0));
    let z = c("(-0-0j)");
    assert!(z.0.is_sign_negative() && z.1.is_sign_negative());
    assert!(c("(1+infj)").1.is_infinite());
    assert!(c("nanj").1.is_nan());
    assert_eq!(
        p("'a\\n\\t\\r\\0\\x41\\u00e9\\U0001F600\\\\\\'\\\"'"),
        "a\n\t\r\0Aé😀\\'\""
    );
    assert_eq!(p("\"it's\""), "it's");
    assert_eq!(p("'\\101\\7'"), "A\u{7}");
    assert_eq!(p("(1)"), 1);
    assert_eq!(p("(1,)"), tup![1]);
    assert_eq!(p("( )"), tup![]);
    assert_eq!(p("[1, 2,]"), val!([1, 2]));
    assert_eq!(p(" { 'a' :\n 1 , } # comment\n"), val!({"a": 1}));
    assert_eq!(p("OrderedDict()"), Val::otab());
    let o = p("OrderedDict([('b', 1), ['a', 2]])");
    assert_eq!(o.to_string(), "OrderedDict([('b', 1), ('a', 2)])");
    assert_eq!(
        p("OrderedDict({'b': 1, 'a': 2})").to_string(),
        o.to_string()
    );
    assert_eq!(p("o{'b':1,'a':2}").to_string(), o.to_string());
    assert!(matches!(p("array([1,2], 'l')"), Val::Array(Array::I64(v)) if v == [1, 2]));
    assert!(matches!(p("array([1,2], 'b')"), Val::Array(Array::U8(v)) if v == [1, 2]));
    assert!(matches!(p("array([ 1 , 0 ], '?')"), Val::Array(Array::Bool(v)) if v == [true, false]));
    assert!(matches!(p("array([0.1], 'f')"), Val::Array(Array::F32(v)) if v == [0.1f32]));
    assert!(
        matches!(p("array([1, 2.5e0, inf], 'd')"), Val::Array(Array::F64(v)) if v[2].is_infinite())
    );
    assert!(
        matches!(p("array([(1+2j), 3, -1j], 'F')"), Val::Array(Array::C32(v)) if v[2] == Complex32::new(0.0, -1.0))
    );
    assert!(matches!(p("array([], 'w')"), Val::Array(Array::U16(v)) if v.is_empty()));
    assert_eq!(p("{1: 'a', 1.0: 'b'}"), val!({1: "b"}));
}

fn perr(s: &str) -> (usize, usize, String, String) {
    match Val::parse(s) {
        Err(ValError::Parse {
            line,
            column,
            expected,
            found,
        }) => (line, column, expected, found),
        other => panic!("{s}: {other:?}"),
    }
}

#[test]
fn parse_errors_point_at_the_problem() {
    let e = perr("{'a': 1,\n 'b' 2}");
    assert_eq!((e.0, e.1), (2, 6));
    assert_eq!(e.2, "':'");
    assert_eq!(e.3, "'2'");
    let e = perr("[1, 2");
    assert_eq!((e.0, e.1, e.3.as_str()), (1, 6, "end of input"));
    assert_eq!(e.2, "',' or ']'");
    let e = perr("'abc");
    assert_eq!(e.2, "a closing '");
    let e = perr("'ab\ncd'");
    assert_eq!((e.0, e.1), (1, 4));
    let e = perr("1 2");
    assert_eq!((e.1, e.2.as_str()), (3, "end of input"));
    let e = perr("Nonesuch");
    assert_eq!((e.1, e.2.as_str()), (1, "a value"));
    let e = perr("(1+2)");
    assert_eq!(e.1, 3);
    assert!(e.2.contains("imaginary"));
    let e = perr("'\\q'");
    assert_eq!(e.1, 2);
    let e = perr("'\\ud800'");
    assert!(e.2.contains("hex digits"));
    let e = perr("array([1, 300], 'b')");
    assert_eq!((e.1, e.2.as_str()), (11, "an element of type 'b'"));
    let e = perr("array([1], 'z')");
    assert_eq!(e.1, 12);
    let e = perr("12abc");
    assert_eq!(e.1, 3);
    let e = perr("é é");
    assert_eq!((e.1, e.3.as_str()), (1, "'é'"));
    let e = perr("  [é]");
    assert_eq!(e.1, 4);
    let e = perr(&"[".repeat(300));
    assert!(e.2.contains("deeper"));
    let e = perr("OrderedDict([1])");
    assert_eq!((e.1, e.2.as_str()), (14, "a (key, value) pair"));
    let e = perr("");
    assert_eq!(
        (e.0, e.1, e.2.as_str(), e.3.as_str()),
        (1, 1, "a value", "end of input")
    );
}

/// Every line of the corpus Python printed reads back and prints identically.
#[test]
fn python_repr_corpus_round_trips() {
    let corpus = include_str!("data/python_repr.txt");
    let mut n = 0;
    for (i, line) in corpus.lines().enumerate() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let v = Val::parse(line).unwrap_or_else(|e| panic!("line {}: {e}\n{line}", i + 1));
        assert_eq!(v.to_string(), line, "line {}", i + 1);
        let back = Val::parse(&v.pretty().to_string()).unwrap();
        assert_eq!(back, v, "pretty form of line {}", i + 1);
        n += 1;
    }
    assert!(n > 500, "only {n} lines");
}
