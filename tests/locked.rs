//! Locked values in one process: reads and writes under the lock, nested containers,
//! typed arrays, copy-on-write of containers a handle holds, snapshots, errors, and the
//! pool given back when the last handle goes.

mod common;

use std::time::Duration;

use common::pools::{baseline, new_pool, new_recorded_pool, recorded_use};
use shmval::{val, PoolExt, ShmLocked, Val, ValError};

const T: Duration = Duration::from_secs(5);

#[test]
fn a_table_is_written_and_read_under_its_lock() {
    let (_n, pool) = new_pool("locked-rw", 1 << 20);
    let before = baseline(&pool);
    let board = ShmLocked::new(&pool, val!({"a": 1})).unwrap();
    {
        let mut g = board.lock(T).unwrap();
        assert!(!g.owner_died());
        assert!(g.insert("a", "hello").unwrap(), "replaced");
        assert!(!g.insert("b", val!([1, 2, 3])).unwrap());
        assert_eq!(g.increment("n", 5).unwrap(), 5);
        assert_eq!(g.increment("n", -2).unwrap(), 3);
        assert_eq!(g.get("a").unwrap().unwrap().as_str().unwrap(), "hello");
        assert!(g.remove("b").unwrap());
        assert!(!g.remove("b").unwrap());
        for i in 0..100 {
            g.insert(format!("key-{i}"), i).unwrap();
        }
        assert_eq!(g.view().len().unwrap(), 102);
        for i in 0..100 {
            assert!(g.remove(format!("key-{i}")).unwrap());
        }
        assert_eq!(g.to_val().unwrap(), val!({"a": "hello", "n": 3}));
    }
    let st = board.status().unwrap();
    assert!(st.holder.is_none() && !st.in_operation);
    assert_eq!(st.len, 2);
    assert!(st.operations >= 204);
    drop(board);
    assert_eq!(
        baseline(&pool),
        before,
        "the last handle gives everything back"
    );
}

#[test]
fn nested_containers_and_arrays_are_written_in_place() {
    let (_n, pool) = new_pool("locked-nested", 1 << 20);
    let before = baseline(&pool);
    let board = ShmLocked::new(&pool, val!({"workers": {}, "log": []})).unwrap();
    let mut g = board.lock(T).unwrap();
    g.insert("xs", Val::from(vec![1.0f64, 2.0, 3.0])).unwrap();
    for i in 0..20 {
        g.child_mut("workers")
            .unwrap()
            .insert(format!("w{i}"), val!({"pid": i, "state": "idle"}))
            .unwrap();
        g.child_mut("log")
            .unwrap()
            .push(format!("event {i}"))
            .unwrap();
    }
    g.child_mut("workers")
        .unwrap()
        .child_mut("w3")
        .unwrap()
        .insert("state", "busy")
        .unwrap();
    let sum = g
        .child_mut("xs")
        .unwrap()
        .update_slice(|xs: &mut [f64]| {
            xs.iter_mut().for_each(|x| *x *= 10.0);
            xs.iter().sum::<f64>()
        })
        .unwrap();
    assert_eq!(sum, 60.0);
    let t = g.view().as_tab().unwrap();
    let w3 = t
        .get("workers")
        .unwrap()
        .unwrap()
        .as_tab()
        .unwrap()
        .get("w3")
        .unwrap()
        .unwrap();
    assert_eq!(
        w3.as_tab()
            .unwrap()
            .get("state")
            .unwrap()
            .unwrap()
            .as_str()
            .unwrap(),
        "busy"
    );
    assert_eq!(t.get("log").unwrap().unwrap().as_seq().unwrap().len(), 20);
    assert_eq!(
        t.get("xs")
            .unwrap()
            .unwrap()
            .as_array()
            .unwrap()
            .as_slice::<f64>()
            .unwrap(),
        &[10.0, 20.0, 30.0]
    );
    let wrong = g.child_mut("xs").unwrap().update_slice(|_: &mut [i32]| ());
    assert!(matches!(wrong, Err(ValError::WrongType { .. })));
    drop(g);
    drop(board);
    assert_eq!(baseline(&pool), before);
}

#[test]
fn a_handle_taken_out_keeps_what_it_saw() {
    let (_n, pool) = new_pool("locked-cow", 1 << 20);
    let board = ShmLocked::new(&pool, val!({"cfg": {"rate": 1}})).unwrap();
    let mut g = board.lock(T).unwrap();
    let cfg = g.get("cfg").unwrap().unwrap().to_handle().unwrap();
    g.child_mut("cfg").unwrap().insert("rate", 2).unwrap();
    assert_eq!(
        cfg.field("rate").unwrap().as_i64().unwrap(),
        1,
        "read-only handle unchanged"
    );
    let now = g
        .get("cfg")
        .unwrap()
        .unwrap()
        .as_tab()
        .unwrap()
        .get("rate")
        .unwrap()
        .unwrap();
    assert_eq!(now.as_i64().unwrap(), 2);
    // The root itself, taken out, is copied before the next write too.
    let root = g.view().to_handle().unwrap();
    g.insert("late", true).unwrap();
    assert!(root.get("late").unwrap().is_none());
    drop(g);
    let snap = board.snapshot(T).unwrap();
    assert_eq!(
        snap.to_val().unwrap(),
        val!({"cfg": {"rate": 2}, "late": true})
    );
}

#[test]
fn handles_move_in_and_locked_values_stay_out() {
    let (_n, pool) = new_pool("locked-handles", 1 << 20);
    let board = ShmLocked::new(&pool, val!([])).unwrap();
    let packet = pool.share(&val!({"seq": 1})).unwrap();
    let mut g = board.lock(T).unwrap();
    g.push(packet.clone()).unwrap();
    assert_eq!(packet.ref_count(), 2);
    let other = ShmLocked::new(&pool, val!({})).unwrap();
    assert_eq!(g.push(other.clone().into_val()), Err(ValError::Locked));
    assert!(g.set(5, 1).is_err());
    assert!(matches!(g.insert("k", 1), Err(ValError::WrongType { .. })));
    drop(g);
    // A locked value's handle cannot be read without the lock.
    let as_val = other.as_val();
    assert_eq!(as_val.to_val(), Err(ValError::Locked));
    assert!(as_val.is_locked());
    assert_eq!(format!("{as_val}"), "<a locked value: read it under its lock, or take a snapshot; it cannot be put inside another value>");
    // And comes back from a ShmVal.
    let back = other.into_val().into_locked().unwrap();
    assert!(back.lock(T).unwrap().view().as_tab().unwrap().is_empty());
    assert!(matches!(
        packet.into_locked(),
        Err(ValError::WrongType { .. })
    ));
}

#[test]
fn the_lock_is_exclusive_and_bounded() {
    let (_n, pool) = new_pool("locked-excl", 1 << 20);
    let board = ShmLocked::new(&pool, val!({"n": 0})).unwrap();
    let g = board.lock(T).unwrap();
    assert_eq!(board.lock(T).unwrap_err(), ValError::Relock);
    let other = board.clone();
    let t = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let e = other.lock(Duration::from_millis(50)).unwrap_err();
        assert!(matches!(e, ValError::LockTimeout { .. }), "{e}");
        assert!(matches!(
            other.try_lock(),
            Err(ValError::LockTimeout { .. })
        ));
        start.elapsed()
    });
    let waited = t.join().unwrap();
    assert!(waited >= Duration::from_millis(50));
    drop(g);
    // Threads take turns.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = board.clone();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    b.lock(T).unwrap().increment("n", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        board
            .lock(T)
            .unwrap()
            .get("n")
            .unwrap()
            .unwrap()
            .as_i64()
            .unwrap(),
        1000
    );
}

#[test]
fn scalars_are_refused_and_recorded_pools_give_back_every_entry() {
    let (_n, pool) = new_recorded_pool("locked-recorded", 1 << 20);
    assert!(matches!(
        ShmLocked::new(&pool, 5),
        Err(ValError::WrongType { .. })
    ));
    let before = recorded_use(&pool);
    let board = ShmLocked::new(&pool, val!({})).unwrap();
    {
        let mut g = board.lock(T).unwrap();
        for i in 0..50 {
            g.insert(
                format!("a long key number {i}"),
                val!({"x": [i, "a long string value here"]}),
            )
            .unwrap();
        }
        for i in 0..50 {
            g.remove(format!("a long key number {i}")).unwrap();
        }
    }
    let k = shmval::ledger::kept(&pool);
    drop(board);
    assert_eq!(recorded_use(&pool), before);
    assert!(k.blocks > 0);
}

#[test]
fn a_write_that_fails_leaves_the_table_and_the_pool_as_they_were() {
    let (_n, pool) = new_recorded_pool("locked-fail", 1 << 20);
    let board = ShmLocked::new(
        &pool,
        val!({"cfg": {"rate": 1}, "k": "a long string value"}),
    )
    .unwrap();
    let mut g = board.lock(T).unwrap();
    // A handle outside keeps `cfg` shared: the write below copies it first, then fails
    // building the value, so the copy must go back and the table keep the original.
    let outside = g.get("cfg").unwrap().unwrap().to_handle().unwrap();
    let before = recorded_use(&pool);
    let table = g.to_val().unwrap();
    let huge = "x".repeat(2 << 20);
    let e = g
        .child_mut("cfg")
        .unwrap()
        .insert("huge", huge.as_str())
        .unwrap_err();
    assert!(
        matches!(e, ValError::OutOfMemory { .. } | ValError::Pool { .. }),
        "{e}"
    );
    let e = g.insert("huge", huge.as_str()).unwrap_err();
    assert!(
        matches!(e, ValError::OutOfMemory { .. } | ValError::Pool { .. }),
        "{e}"
    );
    assert_eq!(g.to_val().unwrap(), table);
    assert_eq!(recorded_use(&pool), before);
    assert_eq!(outside.ref_count(), 2, "the table still holds the original");
    drop(g);
    assert!(!board.status().unwrap().in_operation);
}

#[test]
fn a_handle_of_the_table_put_into_it_closes_no_cycle() {
    let (_n, pool) = new_pool("locked-cycle", 1 << 20);
    let before = baseline(&pool);
    let board = ShmLocked::new(&pool, val!({"cfg": {"rate": 1}, "log": []})).unwrap();
    {
        let mut g = board.lock(T).unwrap();
        let root = g.view().to_handle().unwrap();
        let cfg = g.get("cfg").unwrap().unwrap().to_handle().unwrap();
        // The root, held by a handle, is copied before the child is reached: the copy
        // links the old root, which does not link the copy.
        g.child_mut("cfg").unwrap().insert("root", root).unwrap();
        g.child_mut("log").unwrap().push(cfg.clone()).unwrap();
        g.child_mut("cfg").unwrap().insert("cfg", cfg).unwrap();
        let v = g.to_val().unwrap();
        assert_eq!(v["cfg"]["root"], val!({"cfg": {"rate": 1}, "log": []}));
        assert_eq!(v["cfg"]["cfg"], val!({"rate": 1}));
    }
    drop(board);
    assert_eq!(baseline(&pool), before, "nothing is kept alive by a cycle");
}
