//! Model checks of the ring's operation records (run with `RUSTFLAGS="--cfg shmval_loom"`):
//! a sender or a batch receiver dies at every step of its critical section while a
//! survivor works on the ring, and the survivor's resolution of the dead holder's record
//! always agrees with the ring: an operation it calls committed moved its items, one it
//! calls not committed left the ring as it was. That agreement is what lets recovery give
//! a dead process's value back exactly once (committed send: the ring's; not committed:
//! the sender's; committed receive: the receiver's; not committed: the ring's).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use loom::thread;

use super::error::RecvFail;
use super::ring::{op_committed, HeapRing, OpRecord, OpResolver};
use super::{Ring, Wait};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::Model;

pub(super) const NONE: u64 = u64::MAX;
pub(super) const PENDING: u64 = 1;
pub(super) const COMMITTED: u64 = 2;
pub(super) const ABORTED: u64 = 3;

/// One operation's record, as a process's ledger keeps it: the position it began at and
/// whether it committed.
pub(super) struct Record {
    send: bool,
    at: AtomicU64,
    state: AtomicU64,
}

impl Record {
    pub(super) fn new(send: bool) -> Record {
        Record {
            send,
            at: AtomicU64::new(NONE),
            state: AtomicU64::new(PENDING),
        }
    }
}

impl OpRecord for Record {
    fn begin(&self, at: u64) -> u64 {
        self.at.store(at, Ordering::Relaxed);
        1
    }

    fn committed(&self) {
        self.state.store(COMMITTED, Ordering::Relaxed);
    }
}

/// The survivors' side: resolves the dead holder's record with the ring's rule.
pub(super) struct Resolver(pub(super) Arc<Record>);

impl OpResolver for Resolver {
    fn resolve(&self, op: u64, head: u64, tail: u64) {
        assert_eq!(op, 1, "the operation word names the record");
        let r = &self.0;
        if r.state.load(Ordering::Relaxed) == PENDING {
            let at = r.at.load(Ordering::Relaxed);
            let count = if r.send { tail } else { head };
            let done = at != NONE && op_committed(at, count);
            r.state
                .store(if done { COMMITTED } else { ABORTED }, Ordering::Relaxed);
        }
    }
}

/// What a record says once the survivors hold the lock: a record still pending never
/// reached its commit (its begin may not even have been written), as the ledger's reaper
/// concludes under the lock.
pub(super) fn settled(r: &Record) -> bool {
    match r.state.load(Ordering::Relaxed) {
        COMMITTED => true,
        PENDING | ABORTED => false,
        s => panic!("record state {s}"),
    }
}

type Heap = HeapRing<Model>;

fn ring<'a>(h: &'a Heap, res: &'a Resolver) -> Ring<'a, Model> {
    h.ring().with_resolver(res)
}

/// Takes the lock as the ledger's reaper does (taking it over from a dead holder, whose
/// record the repair resolves), then every item left.
fn drain(r: &Ring<'_, Model>) -> Vec<u64> {
    drop(
        r.lock_for_recovery(Wait::Until(u64::MAX))
            .expect("nobody alive holds the lock"),
    );
    let mut out = Vec::new();
    loop {
        match r.recv(Wait::No) {
            Ok(v) => out.push(v),
            Err(RecvFail::Empty) => return out,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

/// A sender dies at `point`; a survivor receives meanwhile (within a bound). The item
/// reached the ring exactly when the resolution says the send committed.
fn sender_dies_at(point: &'static str) {
    loom::model(move || {
        let h = HeapRing::<Model>::new(1);
        let rec = Arc::new(Record::new(true));
        let res = Arc::new(Resolver(rec.clone()));
        let (h2, rec2, res2) = (h.clone(), rec.clone(), res.clone());
        let sender = thread::spawn(move || {
            Model::die_at(point);
            let sent = catch_unwind(AssertUnwindSafe(|| {
                ring(&h2, &res2).send_recorded(9, Wait::Forever, Some(&*rec2))
            }));
            assert!(sent.is_err(), "the sender dies inside send");
        });
        let (h3, res3) = (h.clone(), res.clone());
        let survivor = thread::spawn(move || {
            ring(&h3, &res3)
                .recv(Wait::after::<Model>(Duration::from_millis(5)))
                .ok()
        });
        sender.join().unwrap();
        let mut got: Vec<u64> = survivor.join().unwrap().into_iter().collect();
        let left = drain(&ring(&h, &res));
        got.extend(left);
        let expect: &[u64] = if settled(&rec) { &[9] } else { &[] };
        assert_eq!(got, expect, "resolution and ring disagree at {point}");
    });
}

/// A batch receiver dies at `point` with two items in the ring; a survivor sends one
/// more meanwhile (within a bound). The two left the ring exactly when the resolution
/// says the receive committed.
fn receiver_dies_at(point: &'static str) {
    loom::model(move || {
        let h = HeapRing::<Model>::new(3);
        let rec = Arc::new(Record::new(false));
        let res = Arc::new(Resolver(rec.clone()));
        ring(&h, &res).send(1, Wait::No).unwrap();
        ring(&h, &res).send(2, Wait::No).unwrap();
        let (h2, rec2, res2) = (h.clone(), rec.clone(), res.clone());
        let receiver = thread::spawn(move || {
            Model::die_at(point);
            let got = catch_unwind(AssertUnwindSafe(|| {
                ring(&h2, &res2).recv_many_recorded(Wait::Forever, 2, |_| {}, Some(&*rec2))
            }));
            assert!(got.is_err(), "the receiver dies inside recv");
        });
        let (h3, res3) = (h.clone(), res.clone());
        let survivor = thread::spawn(move || {
            ring(&h3, &res3)
                .send(3, Wait::after::<Model>(Duration::from_millis(5)))
                .is_ok()
        });
        receiver.join().unwrap();
        let sent = survivor.join().unwrap();
        let got = drain(&ring(&h, &res));
        let mut expect: Vec<u64> = if settled(&rec) { vec![] } else { vec![1, 2] };
        if sent {
            expect.push(3);
        }
        assert_eq!(got, expect, "resolution and ring disagree at {point}");
    });
}

#[test]
fn a_sender_dying_after_writing_its_slot_has_not_sent() {
    sender_dies_at("ring.send.slot_written");
}

#[test]
fn a_sender_dying_after_its_commit_has_sent() {
    sender_dies_at("ring.send.committed");
}

#[test]
fn a_sender_dying_after_recording_its_commit_has_sent() {
    sender_dies_at("ring.send.recorded");
}

#[test]
fn a_receiver_dying_after_reading_has_not_received() {
    receiver_dies_at("ring.recv.read");
}

#[test]
fn a_receiver_dying_after_its_commit_has_received() {
    receiver_dies_at("ring.recv.committed");
}

#[test]
fn a_receiver_dying_after_recording_its_commit_has_received() {
    receiver_dies_at("ring.recv.recorded");
}
