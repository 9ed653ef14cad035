//! A ledger entry: one cache line in a process's chunks that records one thing the
//! process holds or one operation it is in the middle of.
//!
//! | word | meaning |
//! |---|---|
//! | 0 | state: the kind of holding or operation ([`Kind`]) |
//! | 1 | handles of this process sharing the entry (clones): the live process's own count |
//! | 2 | the value's object offset (value kinds) |
//! | 3 | the pipe block (sending to it, received from it, or a pipe handle's) |
//! | 4 | the ring position of a send or receive, or a pipe handle's counted flags |
//! | 5 | a wait in progress on one of the pipe's condition variables |
//! | 6 | the next entry: of the free list, or of a batch being received |
//! | 7 | kind-specific: the container a value moves into, the pipe's generation, the names entry a reference moves to or from |

use crate::region::{Offset, Region};
use crate::sync::atomic::{AtomicU64, Ordering};

/// Bytes of an entry.
pub(crate) const ENTRY_BYTES: u64 = 64;

pub(crate) const E_STATE: usize = 0;
pub(crate) const E_LOCAL: usize = 1;
pub(crate) const E_OBJ: usize = 2;
pub(crate) const E_PIPE: usize = 3;
pub(crate) const E_INDEX: usize = 4;
pub(crate) const E_WAIT: usize = 5;
pub(crate) const E_NEXT: usize = 6;
pub(crate) const E_AUX: usize = 7;

/// `E_INDEX` of a send or receive that has not reached its commit.
pub(crate) const NO_INDEX: u64 = u64::MAX;

/// What an entry records. The numbers are stored in shared memory: never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// Nothing: on the process's free list.
    Free = 0,
    /// One reference to the value at `E_OBJ` (received from the pipe at `E_PIPE` if that
    /// is not 0 and the pipe redelivers).
    Value = 1,
    /// The reference at `E_OBJ` is being dropped: the decrement may or may not have
    /// happened.
    Releasing = 2,
    /// The last reference to `E_OBJ` was dropped and its graph is being freed.
    Freeing = 3,
    /// The reference at `E_OBJ` is moving into the container at `E_AUX`.
    Moving = 4,
    /// The reference at `E_OBJ` is being sent into the pipe at `E_PIPE`; `E_INDEX` is its
    /// ring position once the send is about to commit.
    Sending = 5,
    /// A value is being received from the pipe at `E_PIPE`: `E_OBJ` and `E_INDEX` are
    /// written under the pipe's lock before the commit.
    Receiving = 6,
    /// A new reference to `E_OBJ` is being made (its count incremented).
    Acquiring = 7,
    /// A pipe handle's counts on the pipe at `E_PIPE` (generation `E_AUX`): flags in
    /// `E_INDEX`.
    Pipe = 8,
    /// A directory user count of the pipe listed at `E_PIPE` (the directory entry's
    /// offset), flags in `E_INDEX`.
    DirUser = 9,
    /// As [`Kind::Value`], for a value received from the pipe at `E_PIPE` (generation
    /// `E_AUX`) that redelivers: if the process dies holding it, it goes back into the pipe.
    Received = 10,
    /// A block this process allocated (its offset in `E_OBJ`, written by the allocator
    /// under the pool lock; 0 while not allocated), not yet a value anyone counts: freed
    /// raw, unless the container at `E_AUX` (if not 0) links to it as its data block.
    Building = 11,
    /// A handle of the locked value at `E_OBJ`; `E_INDEX` is 1 while this process holds
    /// its lock, when the value's journal may hold records naming this process's entries.
    Locking = 12,
    /// The reference (`E_AUX` 0) or data block (`E_AUX` 1) at `E_OBJ` that a locked
    /// value's operation gives up: the value's until the operation commits, this
    /// process's after. The value's journal lists the entry; whoever settles the journal
    /// turns it into a [`Kind::Value`] or [`Kind::Building`] (committed) or frees it.
    Detaching = 13,
    /// A reference moving between a handle of this process and the entry of the names
    /// directory at `E_AUX` (see `sides::names`): the value `E_OBJ` moving in or out, and
    /// for a replacement the value `E_PIPE` moving out; the direction, and whether the
    /// entry was written, in `E_INDEX`.
    Naming = 14,
}

impl Kind {
    pub(crate) const COUNT: usize = 15;

    pub(crate) fn from_word(w: u64) -> Option<Kind> {
        Some(match w & 0xff {
            0 => Kind::Free,
            1 => Kind::Value,
            2 => Kind::Releasing,
            3 => Kind::Freeing,
            4 => Kind::Moving,
            5 => Kind::Sending,
            6 => Kind::Receiving,
            7 => Kind::Acquiring,
            8 => Kind::Pipe,
            9 => Kind::DirUser,
            10 => Kind::Received,
            11 => Kind::Building,
            12 => Kind::Locking,
            13 => Kind::Detaching,
            14 => Kind::Naming,
            _ => return None,
        })
    }
}

/// Flags of a [`Kind::Pipe`] or [`Kind::DirUser`] entry's `E_INDEX`: a count is held
/// (`HELD_*`), or is being taken or given up (`MOVING_*`, when a death leaves it unknown
/// whether the count changed).
pub(crate) mod flags {
    pub(crate) const HELD_REF: u64 = 1;
    pub(crate) const HELD_SENDER: u64 = 2;
    pub(crate) const HELD_RECEIVER: u64 = 4;
    pub(crate) const MOVING_REF: u64 = 1 << 8;
    pub(crate) const MOVING_SENDER: u64 = 2 << 8;
    pub(crate) const MOVING_RECEIVER: u64 = 4 << 8;
}

/// An entry of some process's chunks.
#[derive(Clone, Copy)]
pub(crate) struct Entry<'a> {
    off: Offset,
    w: &'a [AtomicU64],
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("offset", &self.off)
            .field("state", &self.kind())
            .field("obj", &self.get(E_OBJ))
            .finish()
    }
}

impl<'a> Entry<'a> {
    /// The entry at `off` of `region` (64-aligned, in bounds), or `None`.
    #[inline]
    pub(crate) fn at(region: &'a Region, off: Offset) -> Option<Entry<'a>> {
        if off.is_null() || off.get() % ENTRY_BYTES != 0 {
            return None;
        }
        let w = region.at_slice::<AtomicU64>(off, ENTRY_BYTES / 8).ok()?;
        Some(Entry { off, w })
    }

    /// Its offset.
    pub(crate) fn offset(&self) -> Offset {
        self.off
    }

    /// Word `i`.
    pub(crate) fn word(&self, i: usize) -> &'a AtomicU64 {
        &self.w[i]
    }

    pub(crate) fn get(&self, i: usize) -> u64 {
        self.w[i].load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, i: usize, v: u64) {
        self.w[i].store(v, Ordering::Relaxed);
    }

    /// The kind recorded (an unknown number reads as `None`).
    pub(crate) fn kind(&self) -> Option<Kind> {
        Kind::from_word(self.w[E_STATE].load(Ordering::Acquire))
    }

    /// Records `kind`: a release store, so the words written before it are seen with it.
    pub(crate) fn set_kind(&self, kind: Kind) {
        self.w[E_STATE].store(kind as u64, Ordering::Release);
    }

    /// Records `kind`, and `then`: the kind an operation in progress leaves once it
    /// commits (a receive: [`Kind::Value`] or [`Kind::Received`]).
    pub(crate) fn set_kind_then(&self, kind: Kind, then: Kind) {
        self.w[E_STATE].store(kind as u64 | (then as u64) << 8, Ordering::Release);
    }

    /// Changes the kind from `from` to `to` if it is `from` now; whether it did. For a
    /// survivor settling another process's entry, which may have moved on meanwhile.
    pub(crate) fn swap_kind(&self, from: Kind, to: Kind) -> bool {
        let w = self.word(E_STATE);
        let now = w.load(Ordering::Acquire);
        (now & 0xff) == from as u64
            && w.compare_exchange(now, to as u64, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// The kind recorded by [`set_kind_then`](Self::set_kind_then) as the next one.
    pub(crate) fn then_kind(&self) -> Option<Kind> {
        Kind::from_word(self.w[E_STATE].load(Ordering::Acquire) >> 8)
    }
}
