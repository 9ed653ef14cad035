//! Shared values in one process: share and copy out, views, mutability, regions, pool
//! exhaustion, and corrupt memory.

// The tests poke region words as std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::pools::{baseline, new_pool, word};
use common::vals::same;
use shmval::alloc::Pool;
use shmval::region::{Offset, Region};
use shmval::val::shared::{ShmRef, ShmVal};
use shmval::val::{BigInt, BigUint, Complex32, Complex64};
use shmval::{otab, tup, val, Array, OTab, PoolExt, Tab, Tag, Val, ValError};

fn every_type() -> Val {
    let mut o = OTab::default();
    o.insert(Val::from("z"), Val::from(1));
    o.insert(Val::from(2.5), Val::None);
    o.insert(tup![1, "k"], val!([1, 2]));
    let mut t = Tab::default();
    t.insert(Val::from(1), Val::from("one"));
    t.insert(
        Val::from("a string longer than fourteen bytes"),
        Val::from(true),
    );
    t.insert(Val::from(-3i8), Val::Array(Array::Bool(vec![true, false])));
    val!([
        None,
        true,
        -1i8,
        200u8,
        -300i16,
        60000u16,
        -70000i32,
        4_000_000_000u32,
        -5i64,
        u64::MAX,
        Val::BigInt(BigInt::from(-1) << 100),
        Val::BigUint(BigUint::from(1u8) << 90),
        1.5f32,
        f64::NAN,
        Complex32::new(1.0, -2.0),
        Complex64::new(3.0, 4.5),
        "",
        "short",
        "exactly 14 byt",
        "fifteen bytes!!",
        "ünïcödé and more than fourteen",
        Val::Tab(t),
        Val::OTab(o),
        tup![1, 2.0, "three"],
        Val::Array(Array::F64(vec![1.0, -0.0, f64::INFINITY])),
        Val::Array(Array::C64(vec![Complex64::new(1.0, 2.0)])),
        Val::Array(Array::I8(vec![])),
        Val::Array(Array::U16(vec![1, 2, 3]))
    ])
}

#[test]
fn every_type_survives_share_and_copy_out() {
    let (_n, pool) = new_pool("shared-types", 1 << 20);
    let base = baseline(&pool);
    let v = every_type();
    let h = pool.share(&v).unwrap();
    h.validate().unwrap();
    let back = h.to_val().unwrap();
    assert!(same(&v, &back), "{v:?}\n{back:?}");
    assert_eq!(h.to_string(), v.to_string());
    // Each element on its own too, scalars in boxes.
    for x in v.as_slice().unwrap() {
        let hx = pool.share(x).unwrap();
        hx.validate().unwrap();
        assert_eq!(hx.tag(), x.tag());
        assert!(same(x, &hx.to_val().unwrap()), "{x:?}");
    }
    drop(h);
    assert_eq!(baseline(&pool), base);
    pool.verify().unwrap();
}

#[test]
fn views_match_the_heap_value() {
    let (_n, pool) = new_pool("shared-views", 1 << 20);
    let v = val!({"a": 1, "b": [1, 2.5, "x"], 7: "seven", "f": 2.0});
    let h = pool.share(&v).unwrap();
    let t = h.as_tab().unwrap();
    assert_eq!(t.len(), 4);
    assert!(!t.is_ordered());
    assert_eq!(t.get("a").unwrap().unwrap().to::<i64>().unwrap(), 1);
    assert!(t.get("zz").unwrap().is_none());
    // Numerically equal keys of other types find each other, both ways.
    assert_eq!(t.get(7.0).unwrap().unwrap().as_str().unwrap(), "seven");
    assert_eq!(t.get(7u8).unwrap().unwrap().as_str().unwrap(), "seven");
    assert_eq!(
        t.get(Val::BigInt(7.into()))
            .unwrap()
            .unwrap()
            .as_str()
            .unwrap(),
        "seven"
    );
    assert!(t.contains(7i16).unwrap());
    assert!(!t.contains(8).unwrap());
    let b = t.get("b").unwrap().unwrap().as_seq().unwrap();
    assert_eq!(b.len(), 3);
    assert!(!b.is_tuple());
    assert!(b.contains(2.5).unwrap());
    assert!(b.contains("x").unwrap());
    assert!(!b.contains("y").unwrap());
    assert_eq!(b.get(2).unwrap().unwrap().as_str().unwrap(), "x");
    assert!(b.get(3).unwrap().is_none());
    let items: Vec<Val> = b.iter().map(|x| x.unwrap().to_val().unwrap()).collect();
    assert_eq!(items, v["b"].as_slice().unwrap());
    // Iteration gives every entry once.
    let mut n = 0;
    for e in t.iter() {
        let (k, x) = e.unwrap();
        let k = k.to_val().unwrap();
        assert!(x == v[&k], "{k}");
        n += 1;
    }
    assert_eq!(n, 4);
    // ShmRef::get on tables and sequences, len as Python's.
    let r = h.view();
    assert_eq!(r.len().unwrap(), 4);
    assert!(r.get("b").unwrap().unwrap().get(1).unwrap().unwrap() == Val::from(2.5));
    assert!(matches!(
        r.as_seq(),
        Err(ValError::WrongType {
            found: Tag::Tab,
            ..
        })
    ));

    // OTab keeps order; tuples and strings.
    let o = otab! {"z": 1, "a": 2, "m": tup![1, "ü"]};
    let ho = pool.share(&o).unwrap();
    let to = ho.as_tab().unwrap();
    assert!(to.is_ordered());
    let keys: Vec<String> = to
        .iter()
        .map(|e| e.unwrap().0.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["z", "a", "m"]);
    let m = to.get("m").unwrap().unwrap();
    assert!(m.as_seq().unwrap().is_tuple());
    assert_eq!(m.len().unwrap(), 2);
    let s = m.get(1).unwrap().unwrap().as_str().unwrap();
    assert_eq!(&*s, "ü");
    assert_eq!(m.get(1).unwrap().unwrap().len().unwrap(), 1); // characters

    // Arrays as slices.
    let ha = pool.share(&Val::from(vec![1.5f64, 2.5])).unwrap();
    assert_eq!(ha.as_slice::<f64>().unwrap(), &[1.5, 2.5]);
    assert!(ha.as_slice::<f32>().is_err());
    let arr = ha.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr.get(1).unwrap(), Some(Val::F64(2.5)));
    assert!(arr.contains(1.5).unwrap());
    let hb = pool.array_from(&[true, false, true]).unwrap();
    assert_eq!(hb.as_slice::<bool>().unwrap(), &[true, false, true]);
    let hs = pool.share(&Val::from("a long string in the pool")).unwrap();
    assert_eq!(hs.as_str().unwrap().len(), 25);
    assert!(hs.as_str().unwrap().contains("pool"));
}

#[test]
fn building_in_place() {
    let (_n, pool) = new_pool("shared-build", 1 << 20);
    let base = baseline(&pool);
    let mut t = pool.tab().unwrap();
    {
        let mut w = t.try_mut().unwrap();
        for i in 0..100 {
            assert!(!w.insert(i, i * 2).unwrap());
        }
        assert!(w.insert(5.0, "five").unwrap()); // replaces the key 5
        let mut list = pool.arr().unwrap();
        {
            let mut lw = list.try_mut().unwrap();
            for i in 0..50 {
                lw.push(format!("item number {i}")).unwrap();
            }
            lw.set(0, "first").unwrap();
        }
        w.insert("list", list).unwrap();
        let mut xs = pool.array::<f64>(4).unwrap();
        {
            let mut xw = xs.try_mut().unwrap();
            xw.as_mut_slice::<f64>().unwrap()[2] = 2.5;
            for i in 0..20 {
                xw.push(i as f64).unwrap();
            }
            assert!(xw.push(1i32).is_err()); // not exactly f64
        }
        w.insert("xs", xs).unwrap();
        for i in 0..50 {
            assert!(w.remove(i).unwrap());
        }
        assert!(!w.remove(0).unwrap());
        for i in 1000..1100 {
            w.insert(i, Val::None).unwrap(); // grows over tombstones
        }
    }
    t.validate().unwrap();
    let tv = t.as_tab().unwrap();
    assert_eq!(tv.len(), 50 + 2 + 100);
    assert!(tv.get(5).unwrap().is_none());
    assert_eq!(tv.get(60).unwrap().unwrap().to::<i64>().unwrap(), 120);
    let list = tv.get("list").unwrap().unwrap().as_seq().unwrap();
    assert_eq!(list.len(), 50);
    assert_eq!(list.get(0).unwrap().unwrap().as_str().unwrap(), "first");
    assert_eq!(
        list.get(49).unwrap().unwrap().as_str().unwrap(),
        "item number 49"
    );
    let xs = tv.get("xs").unwrap().unwrap().as_slice::<f64>().unwrap();
    assert_eq!(xs.len(), 24);
    assert_eq!(xs[2], 2.5);
    assert_eq!(xs[23], 19.0);

    // A child handle keeps the child alive after the parent drops its entry.
    let child = tv.get("list").unwrap().unwrap().to_handle().unwrap();
    assert_eq!(child.ref_count(), 2);
    {
        let mut w = t.try_mut().unwrap();
        assert!(w.remove("list").unwrap());
    }
    let mut child = child;
    assert_eq!(child.ref_count(), 1);
    assert!(child.get_mut().is_some());
    assert_eq!(child.as_seq().unwrap().len(), 50);
    drop(child);
    drop(t);
    assert_eq!(baseline(&pool), base);
    pool.verify().unwrap();

    // Empty containers and wrong kinds.
    let mut o = pool.otab().unwrap();
    assert!(o.try_mut().unwrap().push(1).is_err());
    let mut tp = pool.tup().unwrap();
    tp.try_mut().unwrap().push(1).unwrap();
    assert_eq!(tp.to_val().unwrap(), tup![1]);
    let mut s = pool.share(&Val::from("x")).unwrap();
    assert!(matches!(
        s.try_mut().unwrap().insert(1, 2),
        Err(ValError::WrongType {
            found: Tag::Str,
            ..
        })
    ));
    assert!(pool.with_capacity(Tag::Str, 3).is_err());
    drop((o, tp, s));
    assert_eq!(baseline(&pool), base);
}

#[test]
fn get_mut_only_while_unique() {
    let (_n, pool) = new_pool("shared-unique", 1 << 20);
    let mut t = pool.tab().unwrap();
    assert!(t.get_mut().is_some());
    let c = t.clone();
    assert_eq!(t.ref_count(), 2);
    assert!(t.get_mut().is_none());
    assert_eq!(t.try_mut().unwrap_err(), ValError::NotUnique);
    drop(c);
    assert!(t.get_mut().is_some());

    // Moved into a container: read-only through a handle to it.
    let mut outer = pool.arr().unwrap();
    outer.try_mut().unwrap().push(t).unwrap();
    let mut inner = outer
        .as_seq()
        .unwrap()
        .get(0)
        .unwrap()
        .unwrap()
        .to_handle()
        .unwrap();
    assert!(inner.get_mut().is_none());
    assert!(outer.get_mut().is_some());
    drop(outer);
    assert!(inner.get_mut().is_some());
}

#[test]
fn foreign_region_is_refused() {
    let (_a, pool_a) = new_pool("shared-foreign-a", 1 << 20);
    let (_b, pool_b) = new_pool("shared-foreign-b", 1 << 20);
    let base_a = baseline(&pool_a);
    let base_b = baseline(&pool_b);
    let mut t = pool_a.tab().unwrap();
    let other = pool_b.share(&val!([1, 2, 3])).unwrap();
    let err = t.try_mut().unwrap().insert("x", other).unwrap_err();
    assert!(matches!(err, ValError::ForeignRegion { .. }), "{err}");
    let other = pool_b.share(&val!([1, 2, 3])).unwrap();
    let mut l = pool_a.arr().unwrap();
    assert!(matches!(
        l.try_mut().unwrap().push(other),
        Err(ValError::ForeignRegion { .. })
    ));
    assert_eq!(t.as_tab().unwrap().len(), 0);
    // A second handle on the same region is not foreign.
    let region_again = Arc::new(Region::attach(&_a).unwrap());
    let pool_a2 = Pool::attach(region_again).unwrap();
    let mine = pool_a2
        .share(&Val::from("same region, other mapping"))
        .unwrap();
    t.try_mut().unwrap().insert("x", mine).unwrap();
    drop((t, l));
    assert_eq!(baseline(&pool_a), base_a);
    assert_eq!(baseline(&pool_b), base_b);
}

#[test]
fn raw_offsets_round_trip() {
    let (_n, pool) = new_pool("shared-raw", 1 << 20);
    let base = baseline(&pool);
    let h = pool.share(&val!({"k": [1, 2]})).unwrap();
    let off = h.into_raw();
    // SAFETY: `off` came from `into_raw` just above and is taken over once.
    let h = unsafe { ShmVal::from_raw(&pool, off) }.unwrap();
    assert_eq!(h.to_val().unwrap(), val!({"k": [1, 2]}));
    let s = pool.share(&Val::from(3.5)).unwrap();
    let soff = s.into_raw();
    // SAFETY: as above.
    let s = unsafe { ShmVal::from_raw(&pool, soff) }.unwrap();
    assert_eq!(s.to_val().unwrap(), Val::F64(3.5));
    // Offsets that hold no value are refused.
    for bad in [0u64, 8, 4096, off.get() + 16, 1 << 40] {
        // SAFETY: nothing is taken over: every one of these fails its checks.
        let r = unsafe { ShmVal::from_raw(&pool, Offset::new(bad)) };
        assert!(r.is_err(), "{bad:#x}");
    }
    drop((h, s));
    // A stale offset (freed) is refused too.
    // SAFETY: the check refuses it, so nothing is taken over.
    assert!(unsafe { ShmVal::from_raw(&pool, off) }.is_err());
    assert_eq!(baseline(&pool), base);
}

#[test]
fn exhaustion_frees_the_partial_value() {
    let (_n, pool) = new_pool("shared-oom", 64 << 10);
    let base = baseline(&pool);
    let big: Val = (0..2000)
        .map(|i| Val::from(format!("a string long enough to need its own block {i}")))
        .collect::<Vec<Val>>()
        .into();
    let err = pool.share(&big).unwrap_err();
    assert!(matches!(err, ValError::OutOfMemory { .. }), "{err}");
    assert_eq!(baseline(&pool), base);
    pool.verify().unwrap();
    // A table of leaves runs out among its entries (copied one after another, a key then
    // its value).
    let table = Val::Tab(
        (0..400)
            .map(|i| {
                (
                    Val::from(format!("a key long enough to need its own block {i}")),
                    Val::from(format!("a value long enough to need its own block {i}")),
                )
            })
            .collect(),
    );
    let err = pool.share(&table).unwrap_err();
    assert!(matches!(err, ValError::OutOfMemory { .. }), "{err}");
    assert_eq!(baseline(&pool), base);
    let nested = val!({"a": {"b": {"c": [Val::from(vec![0u8; 100_000])]}}});
    assert!(matches!(
        pool.share(&nested),
        Err(ValError::OutOfMemory { .. })
    ));
    assert_eq!(baseline(&pool), base);
    // Growing in place runs out too, and leaves the table as it was.
    let mut t = pool.tab().unwrap();
    let mut i = 0;
    let err = loop {
        match t
            .try_mut()
            .unwrap()
            .insert(i, "a value string that is not short")
        {
            Ok(_) => i += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, ValError::OutOfMemory { .. }), "{err}");
    assert_eq!(t.as_tab().unwrap().len(), i as usize);
    t.validate().unwrap();
    drop(t);
    assert_eq!(baseline(&pool), base);
    pool.verify().unwrap();
}

/// Finds the first word in `[from, from + len)` equal to `value`.
fn find_word(pool: &Pool, from: u64, len: u64, value: u64) -> u64 {
    (from..from + len)
        .step_by(8)
        .find(|&a| word(pool, a).load(Ordering::Relaxed) == value)
        .expect("word present")
}

/// Every way of reading `h` returns (errors allowed), never panics.
fn read_everything(h: &ShmVal) -> Result<(), ValError> {
    fn walk(r: ShmRef<'_>, depth: usize) -> Result<(), ValError> {
        if depth > 8 {
            return Ok(());
        }
        r.len()?;
        match r.tag() {
            Tag::Tab | Tag::OTab => {
                let t = r.as_tab()?;
                for e in t.iter() {
                    let (k, v) = e?;
                    t.get(k.to_val()?)?;
                    walk(k, depth + 1)?;
                    walk(v, depth + 1)?;
                }
            }
            Tag::Arr | Tag::Tup => {
                for x in r.as_seq()?.iter() {
                    walk(x?, depth + 1)?;
                }
            }
            Tag::Str => {
                r.as_str()?;
            }
            Tag::Array => {
                r.as_array()?.to_array()?;
            }
            _ => {}
        }
        r.to_val()?;
        Ok(())
    }
    walk(h.view(), 0)
}

#[test]
fn corrupt_cells_are_errors() {
    let (_n, pool) = new_pool("shared-corrupt", 1 << 20);
    let v = val!({"key": "a string value long enough to be boxed", "n": 7, "l": [1, 2]});
    // Each corruption on a fresh copy: find the string cell's link and damage it.
    type Damage = (&'static str, fn(u64) -> u64);
    let damages: [Damage; 5] = [
        ("zero link", |_| 0),
        ("misaligned link", |o| o + 8),
        ("past the region", |_| 1 << 40),
        ("into another object", |o| o + 16),
        ("into the pool header", |_| 4096),
    ];
    for (what, damage) in damages {
        let h = pool.share(&v).unwrap();
        h.validate().unwrap();
        let s = h
            .as_tab()
            .unwrap()
            .get("key")
            .unwrap()
            .unwrap()
            .to_handle()
            .unwrap();
        let str_off = s.offset().get();
        drop(s);
        let cell = find_word(&pool, h.offset().get(), 1024, str_off);
        word(&pool, cell).store(damage(str_off), Ordering::Relaxed);
        assert!(h.validate().is_err(), "{what}");
        assert!(read_everything(&h).is_err(), "{what}");
        assert!(h.to_val().is_err(), "{what}");
        // Restore, so the value frees cleanly.
        word(&pool, cell).store(str_off, Ordering::Relaxed);
        h.validate().unwrap();
    }
    // A bad tag byte, a too-wide payload, a length past the block, a bad refcount.
    let h = pool.share(&v).unwrap();
    let n_cell = find_word(&pool, h.offset().get(), 1024, 7) - 8;
    let tag_word = word(&pool, n_cell).load(Ordering::Relaxed);
    word(&pool, n_cell).store(0x7f, Ordering::Relaxed);
    assert!(h.validate().is_err());
    assert!(read_everything(&h).is_err());
    word(&pool, n_cell).store(tag_word | 0x100, Ordering::Relaxed);
    assert!(h.validate().is_err());
    word(&pool, n_cell).store(tag_word, Ordering::Relaxed);
    h.validate().unwrap();
    let len_word = h.offset().get() + 16;
    let len = word(&pool, len_word).load(Ordering::Relaxed);
    word(&pool, len_word).store(len + 1_000_000, Ordering::Relaxed);
    assert!(h.validate().is_err());
    assert!(read_everything(&h).is_err());
    word(&pool, len_word).store(len, Ordering::Relaxed);
    let rc_word = h.offset().get() + 8;
    word(&pool, rc_word).store(0, Ordering::Relaxed);
    assert!(h.validate().is_err());
    word(&pool, rc_word).store(1, Ordering::Relaxed);
    // A cycle: make the list hold the table.
    let l = h
        .as_tab()
        .unwrap()
        .get("l")
        .unwrap()
        .unwrap()
        .to_handle()
        .unwrap();
    let l_off = l.offset().get();
    drop(l);
    let first = find_word(&pool, l_off + 48, 64, 1) - 8; // the first element's cell
    let saved = [
        word(&pool, first).load(Ordering::Relaxed),
        word(&pool, first + 8).load(Ordering::Relaxed),
    ];
    word(&pool, first).store(Tag::Tab as u64, Ordering::Relaxed);
    word(&pool, first + 8).store(h.offset().get(), Ordering::Relaxed);
    assert!(h.validate().is_err());
    assert!(matches!(h.to_val(), Err(ValError::TooDeep { .. })));
    word(&pool, first).store(saved[0], Ordering::Relaxed);
    word(&pool, first + 8).store(saved[1], Ordering::Relaxed);
    h.validate().unwrap();
    drop(h);
    pool.verify().unwrap();
}

/// The blocks of every object of `r`'s graph: (offset, usable bytes).
fn blocks(pool: &Pool, r: ShmRef<'_>, out: &mut Vec<(u64, u64)>) {
    let h = r.to_handle().unwrap();
    let size = pool
        .used_blocks()
        .unwrap()
        .into_iter()
        .find(|b| b.offset == h.offset())
        .unwrap()
        .size;
    out.push((h.offset().get(), size));
    drop(h);
    match r.tag() {
        Tag::Tab | Tag::OTab => {
            for e in r.as_tab().unwrap().iter() {
                let (k, v) = e.unwrap();
                blocks(pool, k, out);
                blocks(pool, v, out);
            }
        }
        Tag::Arr | Tag::Tup => {
            for x in r.as_seq().unwrap().iter() {
                blocks(pool, x.unwrap(), out);
            }
        }
        _ => {}
    }
}

#[test]
fn garbage_everywhere_never_panics() {
    let (_n, pool) = new_pool("shared-garbage", 1 << 20);
    let base = baseline(&pool);
    let mut v = every_type();
    v.push(val!({"deep": [[[[{"x": "a string to be boxed in the pool"}]]]]}))
        .unwrap();
    let h = pool.share(&v).unwrap();
    let mut spans = Vec::new();
    blocks(&pool, h.view(), &mut spans);
    spans.retain(|(o, _)| *o != 0);
    let words: Vec<u64> = spans
        .iter()
        .flat_map(|&(o, n)| (o..o + n).step_by(8))
        .collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut failures = 0;
    for round in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = words[(x % words.len() as u64) as usize];
        let w = word(&pool, at);
        let saved = w.load(Ordering::Relaxed);
        let garbage = match round % 5 {
            0 => x,
            1 => saved ^ (1 << (x % 64)),
            2 => 0,
            3 => saved.wrapping_add(16),
            _ => saved.wrapping_sub(16),
        };
        w.store(garbage, Ordering::Relaxed);
        let checked = h.validate();
        let read = read_everything(&h);
        if checked.is_err() {
            failures += 1;
        }
        // What validate accepts, the views read without error.
        if checked.is_ok() {
            assert!(read.is_ok(), "round {round}: {read:?}");
        }
        w.store(saved, Ordering::Relaxed);
    }
    assert!(failures > 100, "{failures}");
    h.validate().unwrap();
    drop(h);
    assert_eq!(baseline(&pool), base);
    pool.verify().unwrap();
}

#[test]
fn used_blocks_are_classified_by_their_object_headers() {
    use shmval::val::shared::live_blocks;
    let (_name, pool) = new_pool("classify", 1 << 20);
    let packet = pool
        .share(&val!({"name": "a string longer than a cell", "xs": [1, 2, 3]}))
        .unwrap();
    let boxed = pool.share(&Val::from(2.5)).unwrap();
    let raw = pool.alloc_block(64, 16).unwrap();
    let blocks = live_blocks(&pool).unwrap();
    let tags: Vec<Option<Tag>> = blocks.iter().map(|(_, t)| *t).collect();
    assert_eq!(tags.len(), 5, "{tags:?}");
    assert_eq!(tags.iter().filter(|t| t.is_none()).count(), 1, "{tags:?}");
    let tag_of = |off| blocks.iter().find(|(b, _)| b.offset == off).unwrap().1;
    assert_eq!(tag_of(packet.offset()), Some(Tag::Tab));
    assert_eq!(tag_of(boxed.offset()), Some(Tag::F64));
    assert_eq!(tag_of(raw.offset()), None);
    // Raw memory is never read as an object, whatever it holds.
    assert!(
        !blocks
            .iter()
            .find(|(b, _)| b.offset == raw.offset())
            .unwrap()
            .0
            .object
    );
    let counted = |t: Tag| tags.iter().filter(|x| **x == Some(t)).count();
    assert_eq!(
        (
            counted(Tag::Tab),
            counted(Tag::Str),
            counted(Tag::Arr),
            counted(Tag::F64)
        ),
        (1, 1, 1, 1)
    );
    raw.free().unwrap();
    drop((packet, boxed));
    assert_eq!(pool.used_blocks().unwrap(), vec![]);
}
