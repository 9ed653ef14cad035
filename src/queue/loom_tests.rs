//! Model checks of the ring protocol (run with `RUSTFLAGS="--cfg shmval_loom"`).

use std::sync::Arc;
use std::time::Duration;

use loom::thread;

use super::error::{RecvFail, SendFail};
use super::ring::HeapRing;
use super::{Ring, Wait};
use crate::sync::Model;

type Heap = HeapRing<Model>;

fn heap(cap: u64) -> Arc<Heap> {
    HeapRing::new(cap)
}

fn ring(h: &Heap) -> Ring<'_, Model> {
    h.ring()
}

/// Items are `producer << 8 | sequence`, sequences from 1.
fn item(p: u64, i: u64) -> u64 {
    p << 8 | i
}

/// Receives until closed, checking FIFO per producer; returns what arrived.
fn drain_checked(r: &Ring<'_, Model>) -> Vec<u64> {
    let mut got = Vec::new();
    let mut last = [0u64; 4];
    loop {
        match r.recv(Wait::Forever) {
            Ok(v) => {
                let (p, i) = ((v >> 8) as usize, v & 0xff);
                assert!(i > last[p], "producer {p}: {i} after {}", last[p]);
                last[p] = i;
                got.push(v);
            }
            Err(RecvFail::Closed) => return got,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

fn two_producers_one_consumer(cap: u64) {
    loom::model(move || {
        let h = heap(cap);
        let producers: Vec<_> = (1..=2u64)
            .map(|p| {
                let h = h.clone();
                thread::spawn(move || {
                    let r = ring(&h);
                    for i in 1..=2 {
                        r.send(item(p, i), Wait::Forever).unwrap();
                    }
                })
            })
            .collect();
        let hc = h.clone();
        let consumer = thread::spawn(move || drain_checked(&ring(&hc)));
        for p in producers {
            p.join().unwrap();
        }
        ring(&h).close();
        let mut got = consumer.join().unwrap();
        got.sort_unstable();
        assert_eq!(got, vec![item(1, 1), item(1, 2), item(2, 1), item(2, 2)]);
    });
}

fn one_producer_two_consumers(cap: u64) {
    loom::model(move || {
        let h = heap(cap);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let h = h.clone();
                thread::spawn(move || drain_checked(&ring(&h)))
            })
            .collect();
        let r = ring(&h);
        for i in 1..=3 {
            r.send(item(1, i), Wait::Forever).unwrap();
        }
        r.close();
        let mut got: Vec<u64> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, vec![item(1, 1), item(1, 2), item(1, 3)]);
    });
}

#[test]
fn two_producers_one_consumer_capacity_1() {
    two_producers_one_consumer(1);
}

#[test]
fn two_producers_one_consumer_capacity_2() {
    two_producers_one_consumer(2);
}

#[test]
fn one_producer_two_consumers_capacity_1() {
    one_producer_two_consumers(1);
}

#[test]
fn one_producer_two_consumers_capacity_2() {
    one_producer_two_consumers(2);
}

#[test]
fn close_wakes_blocked_senders_and_receivers() {
    loom::model(|| {
        // Capacity 1, already full: a sender blocks; on an empty ring a receiver blocks.
        let full = heap(1);
        ring(&full).send(1, Wait::No).unwrap();
        let empty = heap(1);
        let f2 = full.clone();
        let sender = thread::spawn(move || ring(&f2).send(2, Wait::Forever));
        let e2 = empty.clone();
        let receiver = thread::spawn(move || ring(&e2).recv(Wait::Forever));
        ring(&full).close();
        ring(&empty).close();
        assert_eq!(sender.join().unwrap(), Err(SendFail::Closed(2)));
        assert_eq!(receiver.join().unwrap(), Err(RecvFail::Closed));
        // What was sent before the close is still received.
        assert_eq!(ring(&full).recv(Wait::No), Ok(1));
    });
}

#[test]
fn timeouts_return() {
    loom::model(|| {
        let h = heap(1);
        let r = ring(&h);
        assert_eq!(
            r.recv(Wait::after::<Model>(Duration::from_millis(10))),
            Err(RecvFail::Timeout)
        );
        r.send(7, Wait::No).unwrap();
        let h2 = h.clone();
        // A second sender times out or, if the receiver below is quick, gets through.
        let sender = thread::spawn(move || {
            ring(&h2).send(8, Wait::after::<Model>(Duration::from_millis(10)))
        });
        assert_eq!(r.recv(Wait::Forever), Ok(7));
        match sender.join().unwrap() {
            Ok(()) => assert_eq!(r.recv(Wait::No), Ok(8)),
            Err(e) => {
                assert_eq!(e, SendFail::Timeout(8));
                assert_eq!(r.recv(Wait::No), Err(RecvFail::Empty));
            }
        }
    });
}

/// Two senders blocked on a full ring, then one batch receive freeing both slots and no
/// further receive until they are done: both must be woken (a batch notifies every
/// waiting sender; waking one would leave the other asleep for good), and everything
/// arrives once.
#[test]
fn batch_receive_wakes_every_blocked_sender() {
    loom::model(|| {
        let h = heap(2);
        let r = ring(&h);
        r.send(item(0, 1), Wait::No).unwrap();
        r.send(item(0, 2), Wait::No).unwrap();
        let producers: Vec<_> = (1..=2u64)
            .map(|p| {
                let h = h.clone();
                thread::spawn(move || ring(&h).send(item(p, 1), Wait::Forever).unwrap())
            })
            .collect();
        let mut got = Vec::new();
        assert_eq!(r.recv_many(Wait::Forever, 2, |v| got.push(v)), Ok(2));
        assert_eq!(got, [item(0, 1), item(0, 2)]);
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(r.recv_many(Wait::No, 5, |v| got.push(v)), Ok(2));
        got.sort_unstable();
        assert_eq!(got, [item(0, 1), item(0, 2), item(1, 1), item(2, 1)]);
    });
}

/// A sender killed after its item is in the ring but before it notifies (holding the
/// lock) must not leave a waiting receiver asleep with the item there: the receiver's
/// wait polls, takes the lock over, and gets the item.
#[test]
fn a_sender_killed_before_notifying_does_not_strand_the_receiver() {
    loom::model(|| {
        let h = heap(1);
        let h2 = h.clone();
        let receiver = thread::spawn(move || ring(&h2).recv(Wait::Forever));
        let h3 = h.clone();
        let sender = thread::spawn(move || {
            Model::die_at("ring.send.committed");
            let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ring(&h3).send(5, Wait::Forever)
            }));
            assert!(sent.is_err(), "the sender dies inside send");
        });
        sender.join().unwrap();
        assert_eq!(receiver.join().unwrap(), Ok(5));
    });
}

/// A receiver killed after taking its item, holding the lock: a sender waiting on the full
/// ring takes the lock over and gets its item in.
#[test]
fn a_receiver_killed_before_notifying_does_not_strand_the_sender() {
    loom::model(|| {
        let h = heap(1);
        ring(&h).send(1, Wait::No).unwrap();
        let h2 = h.clone();
        let sender = thread::spawn(move || ring(&h2).send(2, Wait::Forever));
        let h3 = h.clone();
        let receiver = thread::spawn(move || {
            Model::die_at("ring.recv.committed");
            let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ring(&h3).recv(Wait::Forever)
            }));
            assert!(got.is_err(), "the receiver dies inside recv");
        });
        receiver.join().unwrap();
        assert_eq!(sender.join().unwrap(), Ok(()));
        assert_eq!(ring(&h).recv(Wait::No), Ok(2));
    });
}

/// `try_` calls never wait for the lock: with the lock held by a live thread they answer
/// at once (full or empty), whatever is in the ring.
#[test]
fn try_calls_do_not_wait_for_a_held_lock() {
    loom::model(|| {
        let h = heap(2);
        let r = ring(&h);
        r.send(1, Wait::No).unwrap();
        let held = h.hdr.lock.lock();
        let h2 = h.clone();
        let t = thread::spawn(move || {
            let r = ring(&h2);
            (r.recv(Wait::No), r.send(9, Wait::No))
        });
        let (got, sent) = t.join().unwrap();
        drop(held);
        assert_eq!(got, Err(RecvFail::Empty));
        assert_eq!(sent, Err(SendFail::Full(9)));
        assert_eq!(r.recv(Wait::No), Ok(1));
    });
}

/// The last sending end going away wakes a receiver waiting on the empty ring, which then
/// says `Disconnected`; an item sent before the end went is received first.
#[test]
fn the_last_sender_going_disconnects_a_waiting_receiver() {
    loom::model(|| {
        let h = heap(1);
        let h2 = h.clone();
        let receiver = thread::spawn(move || {
            let r = ring(&h2);
            (r.recv(Wait::Forever), r.recv(Wait::Forever))
        });
        let r = ring(&h);
        r.add_sender();
        r.send(5, Wait::Forever).unwrap();
        r.drop_sender();
        let (first, second) = receiver.join().unwrap();
        assert_eq!(first, Ok(5));
        assert_eq!(second, Err(RecvFail::Disconnected));
    });
}

/// A kept ring never disconnects: with no sender left, a timed receive times out.
#[test]
fn a_kept_ring_does_not_disconnect() {
    loom::model(|| {
        let h = heap(1);
        h.hdr.keep();
        let r = ring(&h);
        r.add_sender();
        r.drop_sender();
        assert_eq!(
            r.recv(Wait::after::<Model>(Duration::from_millis(10))),
            Err(RecvFail::Timeout)
        );
    });
}
