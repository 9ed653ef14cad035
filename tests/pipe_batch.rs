//! Batch receives (`dequeue_batch`, `try_dequeue_batch`): order, limits, errors, and a
//! producer process streaming into a batch consumer.

mod common;

use std::time::{Duration, Instant};

use common::{role_entry, spawn_role, TestName};
use shmval::queue::{RecvTimeoutError, TryRecvError};
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{PoolExt, ShmVal, Val};

const BYTES: u64 = 4 << 20;

#[test]
fn child_role() {
    role_entry(&[("producer", producer)]);
}

/// Sends the integers 0..n through pipe "items" of region `args[0]`, then closes it.
fn producer(args: &[String]) {
    let n: i64 = args[1].parse().unwrap();
    let side = ClientSide::new(args[0].clone(), "items")
        .timeout(Duration::from_secs(10))
        .start()
        .unwrap();
    for i in 0..n {
        let v = side.pool().share(&Val::I64(i)).unwrap();
        side.pipe().enqueue(v, Duration::from_secs(10)).unwrap();
    }
    side.pipe().close().unwrap();
}

fn ints(vals: &[ShmVal]) -> Vec<i64> {
    vals.iter()
        .map(|v| i64::try_from(v.to_val().unwrap()).unwrap())
        .collect()
}

#[test]
fn batches_come_in_order_up_to_the_limit() {
    let name = TestName::new("batch-order");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let side = ServerSide::new(name.as_str(), "items", 8).start().unwrap();
    let (pipe, pool) = (side.pipe(), side.pool());
    let baseline = pool.stats().unwrap().used - shmval::ledger::kept(pool).bytes;

    let mut out = Vec::new();
    assert_eq!(
        pipe.try_dequeue_batch(&mut out, 4),
        Err(TryRecvError::Empty)
    );
    let t = Instant::now();
    assert_eq!(
        pipe.dequeue_batch(&mut out, 4, Duration::from_millis(30)),
        Err(RecvTimeoutError::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(30));

    for i in 0..5 {
        pipe.try_enqueue(pool.share(&Val::I64(i)).unwrap()).unwrap();
    }
    assert_eq!(pipe.try_dequeue_batch(&mut out, 0), Ok(0));
    assert_eq!(pipe.try_dequeue_batch(&mut out, 3), Ok(3));
    assert_eq!(ints(&out), [0, 1, 2]);
    // Appends to what `out` holds.
    assert_eq!(
        pipe.dequeue_batch(&mut out, 100, Duration::from_secs(1)),
        Ok(2)
    );
    assert_eq!(ints(&out), [0, 1, 2, 3, 4]);
    assert!(pipe.is_empty());
    let s = pipe.stats().unwrap();
    assert_eq!((s.enqueued, s.dequeued), (5, 5));

    pipe.close().unwrap();
    assert_eq!(
        pipe.dequeue_batch(&mut out, 4, Duration::from_secs(1)),
        Err(RecvTimeoutError::Closed)
    );
    drop(out);
    assert_eq!(
        (pool.stats().unwrap().used - shmval::ledger::kept(pool).bytes),
        baseline,
        "every value freed"
    );
}

#[test]
fn a_batch_consumer_gets_every_item_of_a_producer_process_once_in_order() {
    const N: i64 = 50_000;
    let name = TestName::new("batch-proc");
    let _main = ShmMain::new(name.as_str(), BYTES).start().unwrap();
    let side = ServerSide::new(name.as_str(), "items", 64).start().unwrap();
    let baseline = side.pool().stats().unwrap().used - shmval::ledger::kept(side.pool()).bytes;
    let child = spawn_role("producer", &[name.as_str(), &N.to_string()]);

    let mut next = 0i64;
    let mut out = Vec::new();
    loop {
        match side
            .pipe()
            .dequeue_batch(&mut out, 32, Duration::from_secs(20))
        {
            Ok(n) => {
                assert!((1..=32).contains(&n));
                assert_eq!(out.len(), n);
                for got in ints(&out) {
                    assert_eq!(got, next, "in order, none lost, none twice");
                    next += 1;
                }
                out.clear();
            }
            Err(RecvTimeoutError::Closed | RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("dequeue_batch: {e}"),
        }
    }
    assert_eq!(next, N);
    let s = side.pipe().stats().unwrap();
    assert_eq!((s.enqueued, s.dequeued), (N as u64, N as u64));
    child.wait_ok(Duration::from_secs(30));
    // The producer's ledger chunk goes back as it detaches, deferred if it found the pool
    // lock busy then.
    side.pool().free_deferred().unwrap();
    assert_eq!(
        (side.pool().stats().unwrap().used - shmval::ledger::kept(side.pool()).bytes),
        baseline,
        "every value freed"
    );
}
