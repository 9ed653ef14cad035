//! The names directory's block: its layout, its lock and the repair after a holder that
//! died, and the resolver of a dead process's reference moves.

use std::mem::size_of;
use std::time::{Duration, Instant};

use super::Names;
use crate::alloc::Pool;
use crate::ledger::{Ctx, Entry as LedgerEntry, Kind as LedgerKind, Outcome};
use crate::ledger::{E_AUX, E_INDEX, E_LOCAL, E_OBJ, E_PIPE};
use crate::region::{Offset, Shared};
use crate::sides::error::SidesError;
use crate::sides::name::ValueName;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::generation::Generation;
use crate::sync::{ShmMutex, ShmMutexGuard};
use crate::val::shared::tracked;
use crate::val::{Tag, ValError};
use crate::ShmVal;

/// Named values one region can hold.
pub const MAX_NAMES: usize = 128;

/// "SHMNAME1", little-endian.
const NAMES_MAGIC: u64 = u64::from_le_bytes(*b"SHMNAME1");
pub(super) const FREE: u64 = 0;
pub(super) const LIVE: u64 = 1;

/// `E_INDEX` of a [`LedgerKind::Naming`] entry: the direction of the move (low byte), and
/// [`STORED`] once the names entry was written.
pub(super) const MOVE_IN: u64 = 1;
pub(super) const MOVE_OUT: u64 = 2;
pub(super) const MOVE_SWAP: u64 = 3;
const MOVE_MASK: u64 = 0xff;
pub(super) const STORED: u64 = 1 << 8;

/// How long recovery outside a caller's own call waits for the names lock before it
/// leaves a dead process's move for later.
const RECOVERY_LOCK_WAIT: Duration = Duration::from_millis(20);

/// One name: a value's reference, held while the entry is live.
#[repr(C)]
pub(super) struct Slot {
    pub(super) state: AtomicU64,
    /// The value's object offset.
    pub(super) value: AtomicU64,
    /// The name, 64 bytes, zero-padded.
    pub(super) name: [AtomicU64; 8],
}

#[repr(C)]
pub(super) struct NamesHead {
    magic: AtomicU64,
    pub(super) lock: ShmMutex,
    /// Bumped (with a futex wake) on every change.
    pub(super) generation: AtomicU32,
    /// Processes asleep on `generation` (see `crate::sync::generation`).
    pub(super) sleepers: AtomicU32,
    /// While a holder of the lock moves a reference: the offset of the ledger entry that
    /// records the move (0 otherwise). Set and cleared under the lock.
    pub(super) op: AtomicU64,
    pub(super) slots: [Slot; MAX_NAMES],
}

impl NamesHead {
    /// The generation word, bumped on every change, and its sleepers.
    pub(super) fn generation(&self) -> Generation<'_> {
        Generation::new(&self.generation, &self.sleepers)
    }
}

// SAFETY: repr(C) of atomics only; any bits are a valid (if meaningless) slot.
unsafe impl Shared for Slot {}
// SAFETY: repr(C) of atomics, a ShmMutex and an array of Slot, all valid for any bits.
unsafe impl Shared for NamesHead {}

/// Allocates and formats a names directory in `pool` (by the region's creator, before the
/// region is published); its offset, for the pipe directory's head. Its block is never
/// given back: it lives as long as the region.
pub(crate) fn format(pool: &Pool) -> Result<Offset, SidesError> {
    let len = size_of::<NamesHead>() as u64;
    let off = pool.alloc_block(len, 64)?.into_offset();
    let region = pool.region();
    for w in region.at_slice::<AtomicU64>(off, len / 8)? {
        w.store(0, Ordering::Relaxed);
    }
    let head: &NamesHead = region.at(off)?;
    head.magic.store(NAMES_MAGIC, Ordering::Release);
    Ok(off)
}

/// The names directory at `off` of `pool`'s region, checked.
pub(super) fn check(pool: &Pool, off: Offset) -> Result<(), SidesError> {
    let head: &NamesHead = pool
        .region()
        .at(off)
        .map_err(|_| SidesError::NamesCorrupted("its block lies outside the region"))?;
    if head.magic.load(Ordering::Acquire) != NAMES_MAGIC {
        return Err(SidesError::NamesCorrupted("its magic word is wrong"));
    }
    Ok(())
}

/// The name stored in slot `s`, if it is a valid one.
pub(super) fn name_of(s: &Slot) -> Option<ValueName> {
    let mut w = [0u64; 8];
    for (o, n) in w.iter_mut().zip(&s.name) {
        *o = n.load(Ordering::Relaxed);
    }
    ValueName::from_words(&w)
}

/// Runs `f` on a handle standing for the reference that a live names entry holds on the
/// value at `off`, and gives that handle up again without a count change. The caller holds
/// the names lock.
pub(super) fn with_entry_value<R>(
    pool: &Pool,
    off: Offset,
    f: impl FnOnce(&ShmVal) -> R,
) -> Result<R, ValError> {
    // SAFETY: the names entry's reference keeps the value alive while the lock is held,
    // and nobody takes that reference over meanwhile. The handle stands for it only
    // within this call: `f` may read it or clone it (a new reference of its own), and the
    // handle is given up with `into_raw` (no count change); a panic in `f` leaves it
    // undropped.
    let h = std::mem::ManuallyDrop::new(unsafe { ShmVal::from_raw_unrecorded(pool, off) }?);
    let r = f(&h);
    let _ = std::mem::ManuallyDrop::into_inner(h).into_raw();
    Ok(r)
}

/// The tag and reference count of the value a live names entry holds (under the lock).
pub(super) fn peek(pool: &Pool, off: Offset) -> Result<(Tag, u64), ValError> {
    with_entry_value(pool, off, |h| (h.tag(), h.ref_count()))
}

/// The value a [`LedgerKind::Naming`] entry whose [`STORED`] flag is settled keeps a
/// reference to, if any: the one moving in until it is stored, the one moving out once it
/// is.
pub(super) fn held_by(e: &LedgerEntry<'_>) -> Option<u64> {
    let how = e.get(E_INDEX);
    match (how & MOVE_MASK, how & STORED != 0) {
        (MOVE_IN | MOVE_SWAP, false) | (MOVE_OUT, true) => Some(e.get(E_OBJ)),
        (MOVE_SWAP, true) => Some(e.get(E_PIPE)),
        _ => None,
    }
}

impl Names {
    pub(super) fn head(&self) -> Result<&NamesHead, SidesError> {
        Ok(self.pool.region().at(self.off)?)
    }

    /// The region offset of slot `s`, for a ledger entry.
    pub(super) fn slot_offset(&self, s: &Slot) -> u64 {
        self.pool.region().offset_of(s).map_or(0, |o| o.get())
    }

    /// The slot at region offset `at`, if one is there.
    fn slot_at<'a>(&self, head: &'a NamesHead, at: u64) -> Option<&'a Slot> {
        let base = self.slot_offset(&head.slots[0]);
        let rel = at.checked_sub(base)?;
        let size = size_of::<Slot>() as u64;
        if rel % size != 0 {
            return None;
        }
        head.slots.get(usize::try_from(rel / size).ok()?)
    }

    /// The live slot named `name`, if any (under the lock).
    pub(super) fn find<'a>(&self, head: &'a NamesHead, name: &ValueName) -> Option<&'a Slot> {
        let want = name.words();
        head.slots.iter().find(|s| {
            s.state.load(Ordering::Relaxed) == LIVE
                && want
                    .iter()
                    .zip(&s.name)
                    .all(|(w, n)| *w == n.load(Ordering::Relaxed))
        })
    }

    /// Bumps the generation and wakes every waiter.
    pub(super) fn changed(head: &NamesHead) {
        head.generation().bump();
    }

    /// Locks the names directory (until `deadline`, if given: none waits as long as a live
    /// thread holds the lock), repairing it if a holder died.
    pub(super) fn lock<'a>(
        &self,
        head: &'a NamesHead,
        deadline: Option<Instant>,
    ) -> Result<ShmMutexGuard<'a>, SidesError> {
        let g = super::super::wait::lock_until(&head.lock, deadline, || {
            format!(
                "the names directory of region {}",
                self.pool.region().name()
            )
        })?;
        Ok(self.repaired(head, g))
    }

    /// After a holder died: settles the move it was making (the operation word), then
    /// re-checks every entry, freeing those that do not hold a value under a valid name
    /// (their reference, if any, stays counted: never freed twice).
    fn repaired<'a>(&self, head: &'a NamesHead, mut g: ShmMutexGuard<'a>) -> ShmMutexGuard<'a> {
        if !g.owner_died() {
            return g;
        }
        self.pool.region().note_death();
        let op = head.op.load(Ordering::Relaxed);
        if op != 0 {
            self.settle_op(head, Offset::new(op));
            head.op.store(0, Ordering::Relaxed);
        }
        for s in &head.slots {
            let ok = match s.state.load(Ordering::Relaxed) {
                FREE => true,
                LIVE => {
                    name_of(s).is_some()
                        && peek(&self.pool, Offset::new(s.value.load(Ordering::Relaxed))).is_ok()
                }
                _ => false,
            };
            if !ok {
                s.state.store(FREE, Ordering::Relaxed);
            }
        }
        g.mark_consistent();
        g
    }

    /// Under a lock taken over from a holder that died while the operation word named the
    /// ledger entry at `op`: writes into that entry whether its names entry was stored,
    /// which the names entry shows (nobody changed it since: the lock was held).
    fn settle_op(&self, head: &NamesHead, op: Offset) {
        let Some(e) = LedgerEntry::at(self.pool.region(), op) else {
            return;
        };
        if e.kind() != Some(LedgerKind::Naming) {
            return;
        }
        let Some(s) = self.slot_at(head, e.get(E_AUX)) else {
            return;
        };
        let holds = |v: u64| {
            s.state.load(Ordering::Relaxed) == LIVE && s.value.load(Ordering::Relaxed) == v
        };
        let how = e.get(E_INDEX);
        let stored = match how & MOVE_MASK {
            MOVE_IN | MOVE_SWAP => holds(e.get(E_OBJ)),
            MOVE_OUT => !holds(e.get(E_OBJ)),
            _ => return,
        };
        e.set(E_INDEX, if stored { how | STORED } else { how & !STORED });
    }
}

/// A dead process's reference moving between a handle and a names entry: under the names
/// lock (whose repair settles the move of a holder that died), the entry's [`STORED`] flag
/// says which side holds it; the ledger entry's, if any, is dropped.
pub(crate) fn resolve_naming(pool: &Pool, e: LedgerEntry<'_>, ctx: &mut Ctx) -> Outcome {
    let names = Names::open(pool);
    let head = names.as_ref().ok().and_then(|n| n.head().ok());
    let (Ok(names), Some(head)) = (&names, head) else {
        // No names directory to read: whether the move happened cannot be known.
        ctx.tally.suspects += 1;
        e.set_kind(LedgerKind::Free);
        return Outcome::Done;
    };
    // A free lock, or one whose holder is dead, is taken at once; a live holder is waited
    // for only outside a caller's own call, and briefly.
    let g = match head.lock.try_lock() {
        Some(g) => g,
        None if ctx.patient => match head.lock.lock_timeout(RECOVERY_LOCK_WAIT) {
            Ok(g) => g,
            Err(_) => return Outcome::Later,
        },
        None => return Outcome::Later,
    };
    let g = names.repaired(head, g);
    if head.op.load(Ordering::Relaxed) == e.offset().get() {
        // Only a holder that died leaves the word naming its entry, and the repair has
        // settled it; a word that still does was written by no holder that lives.
        names.settle_op(head, e.offset());
        head.op.store(0, Ordering::Relaxed);
    }
    let held = held_by(&e);
    drop(g);
    ctx.tally.operations += 1;
    match held {
        Some(v) => {
            // The entry records a plain reference from here on: a reclaimer that dies now
            // leaves one its successor drops.
            e.set(E_OBJ, v);
            e.set(E_LOCAL, 1);
            e.set_kind(LedgerKind::Value);
            tracked::release_dead(pool, e, &mut ctx.tally);
        }
        None => e.set_kind(LedgerKind::Free),
    }
    Outcome::Done
}
