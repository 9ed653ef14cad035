//! [`Undo`]: an undo journal that makes a series of stores to shared words all or nothing,
//! for a structure guarded by a [`ShmMutex`](super::ShmMutex) whose holder may die.
//!
//! The holder of the lock records each word's old value before it stores the new one, and
//! ends the operation with one store to the state word (the commit). Whoever takes the
//! lock over from a dead holder reads the state: not committed, it stores the old values
//! back, newest first, so the structure is as before the operation; committed, the
//! operation is whole and only the records' other work is left (the caller's: references
//! and blocks the operation took or gave up). Either way it clears the state, after which
//! the records mean nothing.
//!
//! | word | meaning |
//! |---|---|
//! | state | records written (bits 0..32), [`COMMITTED`] (bit 32); 0: no operation |
//! | log, 2 per record | the record's tag (bits 56..64) and its first field, its second |
//!
//! Every record is written before the state counts it (a release store), and counted
//! before the store it allows: a holder that dies at any step leaves every store it made
//! covered by a counted record. Restoring a value that was never overwritten changes
//! nothing, so a taker that dies while rolling back leaves work the next one redoes.

use super::atomic::{AtomicU32, AtomicU64, Ordering};
use super::pause;

/// The state bit that says the operation committed.
pub(crate) const COMMITTED: u64 = 1 << 32;
/// The state bits that count records.
const COUNT: u64 = COMMITTED - 1;
/// Where a record's tag sits in its first word.
const TAG_SHIFT: u32 = 56;

/// A record's tag for a 64-bit store: the word's offset, its old value.
pub(crate) const STORE64: u8 = 1;
/// A record's tag for a 32-bit store: the word's offset, its old value.
pub(crate) const STORE32: u8 = 2;

/// The journal is full: the operation wrote more records than it has room for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Full;

/// One record: a tag (the two store tags, or the caller's own, above them) and two fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rec {
    pub(crate) tag: u8,
    pub(crate) a: u64,
    pub(crate) b: u64,
}

/// An undo journal over a state word and a log of `2 × capacity` words (see the
/// [module docs](self)). Only the holder of the guarding lock uses it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Undo<'a> {
    state: &'a AtomicU64,
    log: &'a [AtomicU64],
}

impl<'a> Undo<'a> {
    pub(crate) fn new(state: &'a AtomicU64, log: &'a [AtomicU64]) -> Undo<'a> {
        Undo { state, log }
    }

    fn capacity(&self) -> usize {
        self.log.len() / 2
    }

    /// The records counted now, at most the capacity (a larger count is not trusted).
    pub(crate) fn len(&self) -> usize {
        let n = (self.state.load(Ordering::Acquire) & COUNT) as usize;
        n.min(self.capacity())
    }

    /// Whether no operation is under way.
    pub(crate) fn is_idle(&self) -> bool {
        self.state.load(Ordering::Acquire) == 0
    }

    /// Whether the operation under way has committed.
    pub(crate) fn is_committed(&self) -> bool {
        self.state.load(Ordering::Acquire) & COMMITTED != 0
    }

    /// Appends a record (`a` below 2^56); counted once written.
    pub(crate) fn record(&self, tag: u8, a: u64, b: u64) -> Result<(), Full> {
        let n = self.len();
        let (Some(w0), Some(w1)) = (self.log.get(2 * n), self.log.get(2 * n + 1)) else {
            return Err(Full);
        };
        w0.store(
            u64::from(tag) << TAG_SHIFT | (a & ((1 << TAG_SHIFT) - 1)),
            Ordering::Relaxed,
        );
        w1.store(b, Ordering::Relaxed);
        // SYNC POINT: release, so a taker that counts the record reads it whole.
        self.state.store(n as u64 + 1, Ordering::Release);
        pause("undo.recorded");
        Ok(())
    }

    /// Stores `v` in `w` (at offset `at`), recording its old value first.
    pub(crate) fn store(&self, at: u64, w: &AtomicU64, v: u64) -> Result<(), Full> {
        self.record(STORE64, at, w.load(Ordering::Relaxed))?;
        w.store(v, Ordering::Relaxed);
        pause("undo.stored");
        Ok(())
    }

    /// Stores `v` in the 32-bit word `w` (at offset `at`), recording its old value first.
    pub(crate) fn store32(&self, at: u64, w: &AtomicU32, v: u32) -> Result<(), Full> {
        self.record(STORE32, at, u64::from(w.load(Ordering::Relaxed)))?;
        w.store(v, Ordering::Relaxed);
        pause("undo.stored");
        Ok(())
    }

    /// The counted records, oldest first.
    pub(crate) fn records(&self) -> impl DoubleEndedIterator<Item = Rec> + '_ {
        (0..self.len()).map(|i| {
            let w0 = self.log[2 * i].load(Ordering::Relaxed);
            Rec {
                tag: (w0 >> TAG_SHIFT) as u8,
                a: w0 & ((1 << TAG_SHIFT) - 1),
                b: self.log[2 * i + 1].load(Ordering::Relaxed),
            }
        })
    }

    /// Whether every counted record is a store (no other work to settle).
    pub(crate) fn only_stores(&self) -> bool {
        self.records().all(|r| matches!(r.tag, STORE64 | STORE32))
    }

    /// Commits the operation: from here a taker finishes it instead of rolling it back.
    pub(crate) fn commit(&self) {
        let n = self.len() as u64;
        // SYNC POINT: release, so the operation's stores are visible with the commit.
        self.state.store(n | COMMITTED, Ordering::Release);
        pause("undo.committed");
    }

    /// Stores back the old value of every store record, newest first, through `word` and
    /// `word32`, which find a recorded offset's word (`None`: not a word of the structure,
    /// and skipped).
    pub(crate) fn roll_back<'w>(
        &self,
        word: impl Fn(u64) -> Option<&'w AtomicU64>,
        word32: impl Fn(u64) -> Option<&'w AtomicU32>,
    ) {
        for r in self.records().rev() {
            match r.tag {
                STORE64 => {
                    if let Some(w) = word(r.a) {
                        w.store(r.b, Ordering::Relaxed);
                    }
                }
                STORE32 => {
                    if let Some(w) = word32(r.a) {
                        w.store(r.b as u32, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
    }

    /// Ends the operation: the records mean nothing from here.
    pub(crate) fn clear(&self) {
        // SYNC POINT: release, so a rollback's stores come before the journal says idle.
        self.state.store(0, Ordering::Release);
        pause("undo.cleared");
    }
}
