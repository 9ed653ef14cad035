//! Model checks of the undo journal under its lock (run with `RUSTFLAGS="--cfg shmval_loom"`):
//! a writer updates two words as one operation and dies at every step, while another
//! thread takes the lock (over from the dead writer) and repairs with the journal, as a
//! locked value's next holder does. Every holder that gets the lock after the repair sees
//! both words old or both new, never one of each, and a commit the writer reached is never
//! undone.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use loom::thread;

use super::atomic::{AtomicU32, AtomicU64, Ordering};
use super::undo::Undo;
use super::{Model, ShmMutex, ShmMutexGuard};

/// Two words guarded by a lock, with their journal (state and room for four records).
struct Guarded {
    lock: ShmMutex<Model>,
    state: AtomicU64,
    log: [AtomicU64; 8],
    words: [AtomicU64; 2],
}

impl Guarded {
    fn new() -> Arc<Guarded> {
        Arc::new(Guarded {
            lock: ShmMutex::new(),
            state: AtomicU64::new(0),
            log: Default::default(),
            words: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }

    fn undo(&self) -> Undo<'_> {
        Undo::new(&self.state, &self.log)
    }

    /// Locks, repairing with the journal if an operation was cut short: rolled back if it
    /// had not committed, kept if it had.
    fn lock(&self) -> ShmMutexGuard<'_, Model> {
        let mut g = self.lock.lock();
        let u = self.undo();
        if !u.is_idle() {
            if !u.is_committed() {
                u.roll_back(|at| self.words.get(at as usize), |_| None::<&AtomicU32>);
            }
            u.clear();
        }
        if g.owner_died() {
            g.mark_consistent();
        }
        g
    }

    /// The two words, read under the lock: both old (0) or both new (1).
    fn read(&self) -> u64 {
        let _g = self.lock();
        let (a, b) = (
            self.words[0].load(Ordering::Relaxed),
            self.words[1].load(Ordering::Relaxed),
        );
        assert_eq!(a, b, "half an operation is visible");
        a
    }

    /// The writer's operation: both words from 0 to 1, committed, then the journal cleared.
    fn update(&self) {
        let _g = self.lock();
        let u = self.undo();
        u.store(0, &self.words[0], 1).unwrap();
        Model::pause("model.first-stored");
        u.store(1, &self.words[1], 1).unwrap();
        u.commit();
        Model::pause("model.committed-seen");
        u.clear();
    }
}

/// The writer dies at `point`; `kept` says whether that is past its commit.
fn writer_dies_at(point: &'static str, kept: bool) {
    loom::model(move || {
        let g = Guarded::new();
        let g1 = g.clone();
        let writer = thread::spawn(move || {
            Model::die_at(point);
            let r = catch_unwind(AssertUnwindSafe(|| g1.update()));
            assert_eq!(r.is_ok(), point == "model.never-reached");
        });
        let g2 = g.clone();
        let reader = thread::spawn(move || g2.read());
        writer.join().unwrap();
        let during = reader.join().unwrap();
        let after = g.read();
        if kept {
            assert_eq!(after, 1, "a committed operation was undone at {point}");
        } else {
            assert_eq!(after, 0, "an operation cut short at {point} was kept");
        }
        assert!(during <= after, "the words went back after being read new");
    });
}

#[test]
fn a_writer_dying_after_its_first_record_leaves_the_words_old() {
    writer_dies_at("undo.recorded", false);
}

#[test]
fn a_writer_dying_after_its_first_store_leaves_the_words_old() {
    writer_dies_at("undo.stored", false);
}

#[test]
fn a_writer_dying_between_its_stores_leaves_the_words_old() {
    writer_dies_at("model.first-stored", false);
}

#[test]
fn a_writer_dying_at_its_commit_leaves_the_words_new() {
    writer_dies_at("undo.committed", true);
}

#[test]
fn a_writer_dying_after_its_commit_leaves_the_words_new() {
    writer_dies_at("model.committed-seen", true);
}

#[test]
fn a_writer_dying_after_clearing_leaves_the_words_new() {
    writer_dies_at("undo.cleared", true);
}

#[test]
fn a_writer_that_finishes_leaves_the_words_new() {
    writer_dies_at("model.never-reached", true);
}
