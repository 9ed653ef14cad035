//! Model checks of the lane protocol (run with `RUSTFLAGS="--cfg shmval_loom"`): one sender
//! and one receiver hand items over in order, sleep and wake without losing a wake-up,
//! close and time out; and a side that dies at every step of its operation leaves a lane
//! whose recovery agrees with its record, as the ring's does (see `loom_records`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use loom::thread;

use super::error::{RecvFail, SendFail};
use super::lane::{HeapLane, Lane};
use super::loom_records::{settled, Record, Resolver};
use super::Wait;
use crate::sync::{Model, Platform};

type Heap = HeapLane<Model>;

fn lane(h: &Heap) -> Lane<'_, Model> {
    h.lane()
}

/// Every item left, without waiting.
fn drain(l: &Lane<'_, Model>) -> Vec<u64> {
    let mut out = Vec::new();
    loop {
        match l.recv(Wait::No, None) {
            Ok(v) => out.push(v),
            Err(RecvFail::Empty | RecvFail::Closed) => return out,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

/// Three items through a lane of `cap` slots, both sides waiting without bound: the
/// sender sleeps on a full lane and the receiver on an empty one, and every item arrives
/// once, in order.
fn three_items(cap: u64) {
    loom::model(move || {
        let h = HeapLane::<Model>::new(cap);
        let h2 = h.clone();
        let receiver = thread::spawn(move || {
            let l = lane(&h2);
            (0..3)
                .map(|_| l.recv(Wait::Forever, None).unwrap())
                .collect::<Vec<_>>()
        });
        let l = lane(&h);
        for i in 1..=3 {
            l.send(i, Wait::Forever, None).unwrap();
        }
        assert_eq!(receiver.join().unwrap(), [1, 2, 3]);
        assert_eq!(l.counts(), (3, 3));
    });
}

#[test]
fn three_items_through_capacity_1() {
    three_items(1);
}

#[test]
fn three_items_through_capacity_2() {
    three_items(2);
}

/// A batch receive takes what is there in one commit, and the sender blocked on the full
/// lane is woken by it.
#[test]
fn a_batch_receive_wakes_the_blocked_sender() {
    loom::model(|| {
        let h = HeapLane::<Model>::new(2);
        let l = lane(&h);
        l.send(1, Wait::No, None).unwrap();
        l.send(2, Wait::No, None).unwrap();
        let h2 = h.clone();
        let sender = thread::spawn(move || lane(&h2).send(3, Wait::Forever, None));
        let mut got = Vec::new();
        assert_eq!(l.recv_many(Wait::Forever, 2, |v| got.push(v), None), Ok(2));
        assert_eq!(sender.join().unwrap(), Ok(()));
        assert_eq!(l.recv(Wait::No, None), Ok(3));
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn close_wakes_a_blocked_sender_and_a_blocked_receiver() {
    loom::model(|| {
        let full = HeapLane::<Model>::new(1);
        lane(&full).send(1, Wait::No, None).unwrap();
        let empty = HeapLane::<Model>::new(1);
        let f2 = full.clone();
        let sender = thread::spawn(move || lane(&f2).send(2, Wait::Forever, None));
        let e2 = empty.clone();
        let receiver = thread::spawn(move || lane(&e2).recv(Wait::Forever, None));
        lane(&full).close();
        lane(&empty).close();
        assert_eq!(sender.join().unwrap(), Err(SendFail::Closed(2)));
        assert_eq!(receiver.join().unwrap(), Err(RecvFail::Closed));
        // What was sent before the close is still received, then the lane says closed.
        assert_eq!(lane(&full).recv(Wait::No, None), Ok(1));
        assert_eq!(lane(&full).recv(Wait::No, None), Err(RecvFail::Closed));
    });
}

#[test]
fn timeouts_return() {
    loom::model(|| {
        let h = HeapLane::<Model>::new(1);
        let l = lane(&h);
        assert_eq!(
            l.recv(Wait::after::<Model>(Duration::from_millis(10)), None),
            Err(RecvFail::Timeout)
        );
        l.send(7, Wait::No, None).unwrap();
        assert_eq!(
            l.send(8, Wait::after::<Model>(Duration::from_millis(10)), None),
            Err(SendFail::Timeout(8))
        );
        assert_eq!(l.recv(Wait::No, None), Ok(7));
    });
}

/// The sender dies at `point`; the receiver receives meanwhile (within a bound), then the
/// sender's recovery runs and a new sender sends. The item reached the lane exactly when
/// the resolution says the send committed, and the new sender's item follows it.
fn sender_dies_at(point: &'static str) {
    loom::model(move || {
        let h = HeapLane::<Model>::new(1);
        let rec = Arc::new(Record::new(true));
        let (h2, rec2) = (h.clone(), rec.clone());
        let sender = thread::spawn(move || {
            Model::die_at(point);
            let sent = catch_unwind(AssertUnwindSafe(|| {
                lane(&h2).send(9, Wait::Forever, Some(&*rec2))
            }));
            assert!(sent.is_err(), "the sender dies inside send");
        });
        let h3 = h.clone();
        let survivor = thread::spawn(move || {
            lane(&h3)
                .recv(Wait::after::<Model>(Duration::from_millis(5)), None)
                .ok()
        });
        sender.join().unwrap();
        let l = lane(&h);
        l.recover_sender(Some(&Resolver(rec.clone())));
        let mut got: Vec<u64> = survivor.join().unwrap().into_iter().collect();
        got.extend(drain(&l));
        let expect: &[u64] = if settled(&rec) { &[9] } else { &[] };
        assert_eq!(got, expect, "resolution and lane disagree at {point}");
        // A new sender takes the dead one's place.
        l.send(10, Wait::No, None).unwrap();
        assert_eq!(drain(&l), [10]);
    });
}

/// The receiver dies at `point` in a batch receive of the two items of a full lane; the
/// sender tries to send one more meanwhile (within a bound), then the receiver's
/// recovery runs. The two left the lane exactly when the resolution says the receive
/// committed, and the sender's item gets in after the recovery if not before.
fn receiver_dies_at(point: &'static str) {
    loom::model(move || {
        let h = HeapLane::<Model>::new(2);
        let rec = Arc::new(Record::new(false));
        lane(&h).send(1, Wait::No, None).unwrap();
        lane(&h).send(2, Wait::No, None).unwrap();
        let (h2, rec2) = (h.clone(), rec.clone());
        let receiver = thread::spawn(move || {
            Model::die_at(point);
            let got = catch_unwind(AssertUnwindSafe(|| {
                lane(&h2).recv_many(Wait::Forever, 2, |_| {}, Some(&*rec2))
            }));
            assert!(got.is_err(), "the receiver dies inside recv");
        });
        let h3 = h.clone();
        let survivor = thread::spawn(move || {
            lane(&h3)
                .send(3, Wait::after::<Model>(Duration::from_millis(5)), None)
                .is_ok()
        });
        receiver.join().unwrap();
        let sent = survivor.join().unwrap();
        let l = lane(&h);
        l.recover_receiver(Some(&Resolver(rec.clone())));
        let mut expect: Vec<u64> = if settled(&rec) { vec![] } else { vec![1, 2] };
        if sent {
            expect.push(3);
        }
        assert_eq!(drain(&l), expect, "resolution and lane disagree at {point}");
        // A new receiver takes the dead one's place; the sender finds room.
        if !sent {
            l.send(3, Wait::No, None).unwrap();
            assert_eq!(drain(&l), [3]);
        }
    });
}

#[test]
fn a_sender_dying_after_writing_its_slot_has_not_sent() {
    sender_dies_at("lane.send.slot_written");
}

#[test]
fn a_sender_dying_after_its_commit_has_sent() {
    sender_dies_at("lane.send.committed");
}

#[test]
fn a_sender_dying_after_recording_its_commit_has_sent() {
    sender_dies_at("lane.send.recorded");
}

#[test]
fn a_receiver_dying_after_reading_has_not_received() {
    receiver_dies_at("lane.recv.read");
}

#[test]
fn a_receiver_dying_after_its_commit_has_received() {
    receiver_dies_at("lane.recv.committed");
}

#[test]
fn a_receiver_dying_after_recording_its_commit_has_received() {
    receiver_dies_at("lane.recv.recorded");
}

/// The sender dies at `point` holding its side; a new sender claims the side while a
/// survivor runs the dead one's recovery, in any order: exactly one of them completes the
/// dead sender's operation, the resolution agrees with the lane, and the new sender's
/// item follows.
fn dead_senders_side_taken_over(point: &'static str) {
    use super::lane::role::{Claim, Side};
    loom::model(move || {
        let h = HeapLane::<Model>::new(2);
        let rec = Arc::new(Record::new(true));
        let (h2, rec2) = (h.clone(), rec.clone());
        let dead = thread::spawn(move || {
            let l = lane(&h2);
            assert_eq!(
                l.claim(Side::Sender, Model::current(), 1, None),
                Claim::Mine
            );
            let me = Model::current();
            Model::die_at(point);
            let sent = catch_unwind(AssertUnwindSafe(|| l.send(9, Wait::No, Some(&*rec2))));
            assert!(sent.is_err(), "the sender dies inside send");
            me
        })
        .join()
        .unwrap();
        let (h3, rec3) = (h.clone(), rec.clone());
        let reaper = thread::spawn(move || {
            let res = Resolver(rec3);
            lane(&h3).recover_role(Side::Sender, dead, Model::current(), Some(&res))
        });
        let l = lane(&h);
        let res = Resolver(rec.clone());
        let me = Model::current();
        let claimed = l.claim(Side::Sender, me, 2, Some(&res));
        let recovered = reaper.join().unwrap();
        // A reaper that found the claimer completing the dead one's send leaves it to it.
        assert!(recovered || claimed == Claim::Mine);
        if claimed == Claim::Held {
            // The reaper was completing the dead one's send: the side is free after it.
            assert_eq!(l.claim(Side::Sender, me, 2, Some(&res)), Claim::Mine);
        }
        l.send(10, Wait::No, None).unwrap();
        let mut expect = if settled(&rec) { vec![9] } else { vec![] };
        expect.push(10);
        assert_eq!(drain(&l), expect, "resolution and lane disagree at {point}");
    });
}

#[test]
fn a_dead_senders_side_is_taken_over_after_its_slot_was_written() {
    dead_senders_side_taken_over("lane.send.slot_written");
}

#[test]
fn a_dead_senders_side_is_taken_over_after_its_commit() {
    dead_senders_side_taken_over("lane.send.committed");
}

/// The sender dies after its commit; the process taking its side over dies too, right
/// after marking the side as its own to recover: the next claimer completes the dead
/// sender's operation (again: it is idempotent), and the committed item arrives once.
#[test]
fn a_taker_dying_while_it_recovers_a_dead_senders_side_is_taken_over_in_turn() {
    use super::lane::role::{Claim, Side};
    loom::model(|| {
        let h = HeapLane::<Model>::new(2);
        let rec = Arc::new(Record::new(true));
        let (h2, rec2) = (h.clone(), rec.clone());
        thread::spawn(move || {
            let l = lane(&h2);
            assert_eq!(
                l.claim(Side::Sender, Model::current(), 1, None),
                Claim::Mine
            );
            Model::die_at("lane.send.committed");
            let sent = catch_unwind(AssertUnwindSafe(|| l.send(9, Wait::No, Some(&*rec2))));
            assert!(sent.is_err(), "the sender dies inside send");
        })
        .join()
        .unwrap();
        let (h3, rec3) = (h.clone(), rec.clone());
        thread::spawn(move || {
            let res = Resolver(rec3);
            Model::die_at("lane.role.taken");
            let took = catch_unwind(AssertUnwindSafe(|| {
                lane(&h3).claim(Side::Sender, Model::current(), 2, Some(&res))
            }));
            assert!(took.is_err(), "the taker dies inside its takeover");
        })
        .join()
        .unwrap();
        let l = lane(&h);
        let res = Resolver(rec.clone());
        assert_eq!(
            l.claim(Side::Sender, Model::current(), 3, Some(&res)),
            Claim::Mine
        );
        l.send(10, Wait::No, None).unwrap();
        assert!(settled(&rec), "the committed send is resolved as sent");
        assert_eq!(drain(&l), [9, 10]);
    });
}
