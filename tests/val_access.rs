//! Reading shared values the short way: strings in place, fields by key with errors
//! naming the key, typed getters, typed copies, bounded `Debug`, and writes through a
//! unique handle.

// The tests poke region words as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use common::pools::{baseline, new_pool, word};
use shmval::val::{BigInt, BigUint, Complex32, Complex64};
use shmval::{tup, val, OTab, PoolExt, Tag, Val, ValError};

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

#[test]
fn a_missing_field_names_its_key() {
    let (_n, pool) = new_pool("access-field", 1 << 20);
    let packet = pool
        .share(&val!({"scale": 2.5, "xs": [10, 20, 30], 7: tup!["a", "b"], "t": {"deep": 1}}))
        .unwrap();
    assert_eq!(packet.field("scale").unwrap().as_f64().unwrap(), 2.5);
    assert_eq!(
        packet.field(7).unwrap().field(1).unwrap().as_str().unwrap(),
        "b"
    );
    assert_eq!(
        packet.field(7.0).unwrap().at(0).unwrap().as_str().unwrap(),
        "a"
    );
    assert_eq!(
        packet
            .field("t")
            .unwrap()
            .field("deep")
            .unwrap()
            .as_i64()
            .unwrap(),
        1
    );
    assert_eq!(packet.at(0).unwrap_err().tag_of_wrong(), Some(Tag::Tab));
    let e = packet.field("gain").unwrap_err();
    assert_eq!(
        e,
        ValError::MissingKey {
            key: "'gain'".into()
        }
    );
    assert_eq!(e.to_string(), "missing key 'gain'");
    assert_eq!(packet.field(8).unwrap_err().to_string(), "missing key 8");
    assert_eq!(
        packet.field(tup![1, "it's"]).unwrap_err().to_string(),
        "missing key (1, \"it's\")"
    );
    let t = packet.as_tab().unwrap();
    assert_eq!(t.field("scale").unwrap().as_f32().unwrap(), 2.5);
    assert_eq!(
        t.field("nope").unwrap_err().to_string(),
        "missing key 'nope'"
    );
    let xs = packet.field("xs").unwrap();
    assert_eq!(xs.field(2).unwrap().as_u8().unwrap(), 30);
    assert_eq!(xs.at(0).unwrap().as_u8().unwrap(), 10);
    for (i, index) in [(3u64, "3"), (u64::MAX, "18446744073709551615")] {
        assert_eq!(
            xs.field(i).unwrap_err(),
            ValError::IndexOutOfRange {
                index: index.into(),
                len: 3
            }
        );
    }
    assert_eq!(
        xs.field(-1).unwrap_err().to_string(),
        "index -1 is out of range for a sequence of 3 elements"
    );
    assert_eq!(
        xs.at(usize::MAX).unwrap_err(),
        ValError::IndexOutOfRange {
            index: usize::MAX.to_string(),
            len: 3
        }
    );
    assert_eq!(
        xs.as_seq().unwrap().at(3).unwrap_err().to_string(),
        "index 3 is out of range for a sequence of 3 elements"
    );
    assert_eq!(
        xs.field("a").unwrap_err(),
        ValError::WrongType {
            expected: "an integer index",
            found: Tag::Str
        }
    );
    assert_eq!(xs.field(1.0).unwrap_err().tag_of_wrong(), Some(Tag::F64));
    let scale = packet.field("scale").unwrap();
    assert_eq!(
        scale.field("x").unwrap_err(),
        ValError::WrongType {
            expected: "a table or sequence",
            found: Tag::F64
        }
    );
    // The handle reads like its view.
    assert!(packet.get("xs").unwrap().is_some());
    assert!(packet.get("nope").unwrap().is_none());
    assert_eq!(packet.len().unwrap(), 4);
    assert!(!packet.is_empty().unwrap());
    assert_eq!(packet.field("xs").unwrap().len().unwrap(), 3);
}

trait WrongTag {
    fn tag_of_wrong(&self) -> Option<Tag>;
}

impl WrongTag for ValError {
    fn tag_of_wrong(&self) -> Option<Tag> {
        match self {
            ValError::WrongType { found, .. } => Some(*found),
            _ => None,
        }
    }
}

/// One value of every type, under keys naming them.
fn every_type() -> Vec<Val> {
    vec![
        Val::None,
        Val::Bool(true),
        Val::I8(-8),
        Val::U8(200),
        Val::I16(-300),
        Val::U16(60_000),
        Val::I32(-70_000),
        Val::U32(4_000_000_000),
        Val::I64(-5_000_000_000),
        Val::U64(u64::MAX),
        Val::BigInt(BigInt::from(-1) << 70),
        Val::BigInt(BigInt::from(12)),
        Val::BigUint(BigUint::from(1u8) << 80),
        Val::F32(1.5),
        Val::F64(-2.25),
        Val::F64(1e300),
        Val::C32(Complex32::new(1.0, -2.0)),
        Val::C64(Complex64::new(3.0, 4.5)),
        Val::from("short"),
        Val::from("a string longer than fourteen bytes"),
        val!({"a": 1}),
        Val::OTab(OTab::default()),
        val!([1, 2]),
        tup![1],
        Val::from(vec![1.5f64, 2.5]),
    ]
}

/// Whether a shared getter's answer is what `T::try_from(&Val)` answers for `v`.
fn same_as_heap<T>(got: Result<T, ValError>, v: &Val) -> bool
where
    T: for<'v> TryFrom<&'v Val, Error = ValError> + PartialEq + std::fmt::Debug,
{
    let want = T::try_from(v);
    if got != want {
        eprintln!("{v}: shared {got:?}, heap {want:?}");
    }
    got == want
}

#[test]
fn getters_convert_as_the_heap_conversions_do() {
    let (_n, pool) = new_pool("access-getters", 1 << 20);
    let values = every_type();
    let list = pool.share(&Val::Arr(values.clone())).unwrap();
    let seq = list.as_seq().unwrap();
    for (i, v) in values.iter().enumerate() {
        // In a container's cell, and boxed on its own behind a handle.
        let boxed = pool.share(v).unwrap();
        let r = seq.at(i).unwrap();
        for ok in [
            same_as_heap(r.as_bool(), v) && same_as_heap(boxed.as_bool(), v),
            same_as_heap(r.as_i8(), v) && same_as_heap(boxed.as_i8(), v),
            same_as_heap(r.as_u8(), v) && same_as_heap(boxed.as_u8(), v),
            same_as_heap(r.as_i16(), v) && same_as_heap(boxed.as_i16(), v),
            same_as_heap(r.as_u16(), v) && same_as_heap(boxed.as_u16(), v),
            same_as_heap(r.as_i32(), v) && same_as_heap(boxed.as_i32(), v),
            same_as_heap(r.as_u32(), v) && same_as_heap(boxed.as_u32(), v),
            same_as_heap(r.as_i64(), v) && same_as_heap(boxed.as_i64(), v),
            same_as_heap(r.as_u64(), v) && same_as_heap(boxed.as_u64(), v),
            same_as_heap(r.as_usize(), v) && same_as_heap(boxed.as_usize(), v),
            same_as_heap(r.as_f32(), v) && same_as_heap(boxed.as_f32(), v),
            same_as_heap(r.as_f64(), v) && same_as_heap(boxed.as_f64(), v),
            same_as_heap(r.as_c32(), v) && same_as_heap(boxed.as_c32(), v),
            same_as_heap(r.as_c64(), v) && same_as_heap(boxed.as_c64(), v),
            same_as_heap(r.to::<BigInt>(), v) && same_as_heap(boxed.to::<BigInt>(), v),
            same_as_heap(r.to::<i128>(), v) && same_as_heap(boxed.to::<i128>(), v),
            same_as_heap(r.to::<String>(), v) && same_as_heap(boxed.to::<String>(), v),
        ] {
            assert!(ok, "{v}");
        }
    }
    // A few answers spelled out.
    let r = |i: usize| seq.at(i).unwrap();
    assert_eq!(r(3).as_u8(), Ok(200));
    assert_eq!(
        r(3).as_i8(),
        Err(ValError::OutOfRange {
            value: "200".into(),
            target: "i8"
        })
    );
    assert_eq!(r(9).as_f64(), Ok(u64::MAX as f64));
    assert_eq!(r(11).as_i64(), Ok(12));
    assert_eq!(r(14).as_f32(), Ok(-2.25));
    assert_eq!(r(13).as_f64(), Ok(1.5));
    assert_eq!(r(1).as_bool(), Ok(true));
    assert_eq!(
        r(1).as_i64(),
        Err(ValError::WrongType {
            expected: "an integer",
            found: Tag::Bool
        })
    );
    assert_eq!(
        r(2).as_bool(),
        Err(ValError::WrongType {
            expected: "a Bool",
            found: Tag::I8
        })
    );
    for (i, tag) in [
        (0, Tag::None),
        (19, Tag::Str),
        (20, Tag::Tab),
        (21, Tag::OTab),
        (22, Tag::Arr),
        (23, Tag::Tup),
        (24, Tag::Array),
    ] {
        assert_eq!(
            r(i).as_f64(),
            Err(ValError::WrongType {
                expected: "a real number",
                found: tag
            })
        );
    }
    assert_eq!(r(18).to::<String>().unwrap(), "short");
}

#[test]
fn typed_copies_of_sequences_and_arrays() {
    let (_n, pool) = new_pool("access-to-vec", 1 << 20);
    let base = baseline(&pool);
    let h = pool
        .share(&val!({
            "arr": [1, 2u8, 3i64],
            "tup": tup![1.5, 2, 3.5f32],
            "names": ["a", "a string longer than fourteen bytes"],
            "f64": Val::from(vec![0.5f64, 1.5]),
            "i32": Val::from(vec![-1i32, 7]),
            "mixed": [1, "x", 3],
            "big": [1, 300],
            "empty": []
        }))
        .unwrap();
    assert_eq!(h.field("arr").unwrap().to_vec::<i64>().unwrap(), [1, 2, 3]);
    assert_eq!(
        h.field("tup").unwrap().to_vec::<f64>().unwrap(),
        [1.5, 2.0, 3.5]
    );
    assert_eq!(
        h.field("names").unwrap().to_vec::<String>().unwrap(),
        ["a", "a string longer than fourteen bytes"]
    );
    assert!(h.field("empty").unwrap().to_vec::<u8>().unwrap().is_empty());
    // Arrays: converted through the view, exact through ShmArray.
    let f = h.field("f64").unwrap();
    assert_eq!(f.to_vec::<f64>().unwrap(), [0.5, 1.5]);
    assert_eq!(f.as_array().unwrap().to_vec::<f64>().unwrap(), [0.5, 1.5]);
    assert!(matches!(
        f.as_array().unwrap().to_vec::<f32>(),
        Err(ValError::WrongType { .. })
    ));
    let i = h.field("i32").unwrap();
    assert_eq!(i.to_vec::<f64>().unwrap(), [-1.0, 7.0]);
    assert_eq!(i.to_vec::<i64>().unwrap(), [-1, 7]);
    assert_eq!(
        i.to_vec::<u32>().unwrap_err().to_string(),
        "element 0: -1 does not fit in u32"
    );
    assert_eq!(i.as_array().unwrap().to_vec::<i32>().unwrap(), [-1, 7]);
    // The first element that does not convert, named.
    let e = h.field("mixed").unwrap().to_vec::<i64>().unwrap_err();
    assert_eq!(
        e,
        ValError::Element {
            index: 1,
            error: Box::new(ValError::WrongType {
                expected: "an integer",
                found: Tag::Str
            })
        }
    );
    assert_eq!(e.to_string(), "element 1: expected an integer, found Str");
    assert!(matches!(
        h.field("big").unwrap().to_vec::<u8>(),
        Err(ValError::Element { index: 1, error }) if matches!(*error, ValError::OutOfRange { .. })
    ));
    assert_eq!(
        h.field("big")
            .unwrap()
            .as_seq()
            .unwrap()
            .to_vec::<u16>()
            .unwrap(),
        [1, 300]
    );
    assert_eq!(
        h.to_vec::<i64>().unwrap_err(),
        ValError::WrongType {
            expected: "Arr, Tup or Array",
            found: Tag::Tab
        }
    );
    // From a handle to the sequence itself.
    let list = pool.share(&val!([3, 4])).unwrap();
    assert_eq!(list.to_vec::<u64>().unwrap(), [3, 4]);
    assert_eq!(list.at(1).unwrap().as_u64().unwrap(), 4);
    let arr = pool.array_from(&[true, false]).unwrap();
    assert_eq!(arr.to_vec::<bool>().unwrap(), [true, false]);
    drop((h, list, arr));
    assert_eq!(baseline(&pool), base);
}

#[test]
fn handle_writes_only_while_unique() {
    let (_n, pool) = new_pool("access-write", 1 << 20);
    let base = baseline(&pool);
    let mut packet = pool.share(&val!({"sequence_number": 7})).unwrap();
    let n = packet.field("sequence_number").unwrap().as_i64().unwrap();
    assert!(!packet.insert("my_sequence", n + 100).unwrap());
    assert!(packet.insert("my_sequence", n + 200).unwrap()); // replaced
    assert!(!packet.insert("list", pool.arr().unwrap()).unwrap());
    assert!(packet.remove("sequence_number").unwrap());
    assert!(!packet.remove("sequence_number").unwrap());
    assert!(packet.view() == val!({"my_sequence": 207, "list": []}));
    // Sequences and arrays.
    let mut list = pool.arr().unwrap();
    list.push("first").unwrap();
    list.push(pool.share(&val!([1])).unwrap()).unwrap(); // a handle moved in
    list.set(0, 1.5).unwrap();
    assert!(list.view() == val!([1.5, [1]]));
    assert_eq!(
        list.set(2, 0),
        Err(ValError::OutOfRange {
            value: "2".into(),
            target: "an index of the sequence"
        })
    );
    let mut xs = pool.array_from(&[1.0f64]).unwrap();
    xs.push(2.0).unwrap();
    assert_eq!(xs.as_slice::<f64>().unwrap(), &[1.0, 2.0]);
    assert!(matches!(xs.push(3), Err(ValError::WrongType { .. })));
    assert!(matches!(packet.push(1), Err(ValError::WrongType { .. })));
    assert!(matches!(
        list.insert("k", 1),
        Err(ValError::WrongType { .. })
    ));

    // A second reference makes every write fail, changing nothing and dropping the value.
    let before = packet.to_val().unwrap();
    let reader = packet.clone();
    let given = pool.share(&val!(["a value that must be dropped"])).unwrap();
    assert_eq!(packet.insert("k", given), Err(ValError::NotUnique));
    assert_eq!(packet.remove("my_sequence"), Err(ValError::NotUnique));
    let other = list.clone();
    assert_eq!(list.push(1), Err(ValError::NotUnique));
    assert_eq!(list.set(0, "x"), Err(ValError::NotUnique));
    let xs2 = xs.clone();
    assert_eq!(xs.push(4.0), Err(ValError::NotUnique));
    assert_eq!(packet.to_val().unwrap(), before);
    assert_eq!(reader.to_val().unwrap(), before);
    assert_eq!(list.len().unwrap(), 2);
    assert_eq!(xs.len().unwrap(), 2);
    // So does a handle made from a view, and a container holding the value.
    drop((reader, other, xs2));
    let inner = packet.field("list").unwrap().to_handle().unwrap();
    let mut inner2 = inner.clone();
    assert_eq!(inner2.push(1), Err(ValError::NotUnique)); // the table holds it too
    drop(inner);
    assert_eq!(inner2.push(1), Err(ValError::NotUnique));
    drop(inner2);
    // Unique again.
    packet.insert("k", 1).unwrap();
    list.push(2).unwrap();
    assert_eq!(packet.field("k").unwrap().as_i64().unwrap(), 1);
    drop((packet, list, xs));
    assert_eq!(baseline(&pool), base);
}
