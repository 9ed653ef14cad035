//! A shared value is written only through its one reference: a second handle made through
//! the write access itself (from its view) makes every write fail until it drops.

// The common test module names std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

mod common;

use common::pools::{baseline, new_pool};
use shmval::{val, PoolExt, Val, ValError};

#[test]
fn a_handle_made_through_the_writer_stops_array_writes() {
    let (_n, pool) = new_pool("unique-array", 1 << 20);
    let base = baseline(&pool);
    let mut a = pool.array_from(&[1.0f64, 2.0, 3.0]).unwrap();
    {
        let mut w = a.try_mut().unwrap();
        let a2 = w.view().to_handle().unwrap();
        assert_eq!(a2.ref_count(), 2);
        assert_eq!(
            w.as_mut_slice::<f64>().map(|s| s.len()),
            Err(ValError::NotUnique)
        );
        assert_eq!(w.push(4.0), Err(ValError::NotUnique));
        // What the second handle reads is what was there: nothing was written.
        assert_eq!(a2.as_slice::<f64>().unwrap(), &[1.0, 2.0, 3.0]);
        drop(a2);
        w.as_mut_slice::<f64>().unwrap()[0] = 5.0;
        w.push(4.0).unwrap();
    }
    assert_eq!(a.ref_count(), 1);
    assert_eq!(a.as_slice::<f64>().unwrap(), &[5.0, 2.0, 3.0, 4.0]);
    a.validate().unwrap();
    drop(a);
    assert_eq!(baseline(&pool), base);
}

#[test]
fn a_value_cannot_be_put_into_itself() {
    let (_n, pool) = new_pool("unique-self", 1 << 20);
    let base = baseline(&pool);
    for mut c in [
        pool.tab().unwrap(),
        pool.otab().unwrap(),
        pool.arr().unwrap(),
        pool.share(&val!([1, 2])).unwrap(),
    ] {
        let before = c.to_val().unwrap();
        {
            let mut w = c.try_mut().unwrap();
            let is_table = w.view().as_tab().is_ok();
            let me = w.view().to_handle().unwrap();
            assert_eq!(me.ref_count(), 2);
            let r = if is_table {
                w.insert("self", me).map(|_| ())
            } else {
                w.push(me)
            };
            // Refused, and the handle given was dropped: the count is back to 1.
            assert_eq!(r, Err(ValError::NotUnique));
            assert_eq!(w.view().to_val().unwrap(), before);
            let me = w.view().to_handle().unwrap();
            if is_table {
                assert_eq!(w.remove("k"), Err(ValError::NotUnique));
            } else {
                assert_eq!(w.set(0, me.clone()), Err(ValError::NotUnique));
            }
            drop(me);
            // Unique again: writes go through.
            if is_table {
                w.insert("k", 1).unwrap();
            } else {
                w.push(Val::None).unwrap();
            }
        }
        assert_eq!(c.ref_count(), 1);
        c.validate().unwrap();
        assert!(c.get_mut().is_some());
    }
    assert_eq!(baseline(&pool), base);
    pool.verify().unwrap();
}
