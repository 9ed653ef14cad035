//! A locked value's object: its lock, its journal and the link to the container it holds;
//! and settling the journal a holder left when it died (see `locked` for the protocol).
//!
//! | word | field |
//! |---|---|
//! | 0, 1 | kind, refcount (as every object) |
//! | 2, 3 | the lock ([`ShmMutex`]) |
//! | 4 | the journal's state ([`Undo`]) |
//! | 5 | operations committed so far |
//! | 6, 7 | the cell linking the container |
//! | 8.. | the journal's records, two words each |
//!
//! Besides the stores it can undo, the journal lists the ledger entries an operation moves
//! references and blocks through: [`ADOPT_VAL`] (a value placed into the container, its
//! entry `Moving`), [`ADOPT_BLOCK`] (a data block allocated for it, its entry
//! `Building`), [`GIVE_VAL`] and [`GIVE_BLOCK`] (a reference or a data block the container
//! gives up, its entry `Detaching`). Settling turns each entry into what the outcome makes
//! it: rolled back, the values placed are their process's again and the blocks allocated
//! are freed; committed, the container keeps what it took and the process gets what it
//! gave up.

use std::time::Duration;

use super::corrupt;
use super::layout::{words, Kind, Obj, JOURNAL_CAP, LOCKED_WORDS};
use crate::alloc::Pool;
use crate::ledger::{Ctx, Entry, Kind as LedgerKind, Outcome, E_AUX, E_INDEX, E_LOCAL, E_OBJ};
use crate::region::{Offset, Region};
use crate::sync::atomic::{AtomicU32, AtomicU64};
use crate::sync::undo::{Rec, Undo};
use crate::sync::ShmMutex;
use crate::val::ValError;

pub(crate) const W_LOCK: usize = 2;
pub(crate) const W_JOURNAL: usize = 4;
pub(crate) const W_OPS: usize = 5;
pub(crate) const W_ROOT: usize = 6;
pub(crate) const W_LOG: usize = 8;

/// Record tags beside the journal's stores: a value placed into the container.
pub(crate) const ADOPT_VAL: u8 = 3;
/// A data block allocated for the container.
pub(crate) const ADOPT_BLOCK: u8 = 4;
/// A reference the container gives up.
pub(crate) const GIVE_VAL: u8 = 5;
/// A data block the container gives up.
pub(crate) const GIVE_BLOCK: u8 = 6;

/// How long the ledger's patient recovery waits for a locked value's lock held by a live
/// thread before it leaves the dead process for later.
const RECOVERY_WAIT: Duration = Duration::from_millis(50);

const _: () = assert!(LOCKED_WORDS == W_LOG + 2 * JOURNAL_CAP);

/// A locked value's object, its header checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LockedObj<'a> {
    pub(crate) obj: Obj<'a>,
}

impl<'a> LockedObj<'a> {
    pub(crate) fn open(region: &'a Region, off: Offset) -> Result<LockedObj<'a>, ValError> {
        Ok(LockedObj {
            obj: Obj::open(region, off, Some(Kind::Locked))?,
        })
    }

    /// The value's lock.
    pub(crate) fn mutex(&self) -> Result<&'a ShmMutex, ValError> {
        let at = self.word_at(W_LOCK)?;
        self.obj
            .region
            .at::<ShmMutex>(at)
            .map_err(|e| corrupt(at.get(), e.to_string()))
    }

    /// The value's journal.
    pub(crate) fn undo(&self) -> Undo<'a> {
        let w = self.obj.words;
        Undo::new(&w[W_JOURNAL], &w[W_LOG..W_LOG + 2 * JOURNAL_CAP])
    }

    /// The two words of the cell linking the container.
    pub(crate) fn root(&self) -> &'a [AtomicU64] {
        &self.obj.words[W_ROOT..W_ROOT + 2]
    }

    /// The region offset of the cell linking the container.
    pub(crate) fn root_at(&self) -> Result<Offset, ValError> {
        self.word_at(W_ROOT)
    }

    /// Operations committed since the value was made.
    pub(crate) fn ops(&self) -> &'a AtomicU64 {
        &self.obj.words[W_OPS]
    }

    fn word_at(&self, w: usize) -> Result<Offset, ValError> {
        self.obj
            .off
            .checked_add(8u64.saturating_mul(w as u64))
            .ok_or_else(|| corrupt(self.obj.off.get(), "a locked value past the region"))
    }
}

/// Stores back every recorded store of the journal (offsets checked by the region).
pub(crate) fn roll_back(region: &Region, u: &Undo<'_>) {
    u.roll_back(
        |at| words(region, Offset::new(at), 1).ok().map(|w| &w[0]),
        |at| region.at::<AtomicU32>(Offset::new(at)).ok(),
    )
}

/// Turns the entry record `r` names into what the outcome makes it (see the
/// [module docs](self)). Only entries still in the kind the operation left are changed:
/// settling again, after a settler died, changes nothing twice.
pub(crate) fn convert(region: &Region, r: &Rec, committed: bool) {
    if matches!(
        r.tag,
        crate::sync::undo::STORE64 | crate::sync::undo::STORE32
    ) {
        return;
    }
    let Some(e) = Entry::at(region, Offset::new(r.a)) else {
        return;
    };
    let is = |k: LedgerKind| e.kind() == Some(k);
    match (r.tag, committed) {
        (ADOPT_VAL, true) => {
            e.swap_kind(LedgerKind::Moving, LedgerKind::Free);
        }
        (ADOPT_VAL, false) if is(LedgerKind::Moving) => {
            e.set(E_AUX, 0);
            e.set(E_LOCAL, 1);
            e.swap_kind(LedgerKind::Moving, LedgerKind::Value);
        }
        (ADOPT_BLOCK, true) => {
            e.swap_kind(LedgerKind::Building, LedgerKind::Free);
        }
        (GIVE_VAL, true) if is(LedgerKind::Detaching) => {
            e.set(E_AUX, 0);
            e.set(E_LOCAL, 1);
            e.swap_kind(LedgerKind::Detaching, LedgerKind::Value);
        }
        (GIVE_BLOCK, true) if is(LedgerKind::Detaching) => {
            e.set(E_AUX, 0);
            e.swap_kind(LedgerKind::Detaching, LedgerKind::Building);
        }
        (GIVE_VAL | GIVE_BLOCK, false) => {
            e.swap_kind(LedgerKind::Detaching, LedgerKind::Free);
        }
        _ => {}
    }
}

/// Settles the journal of a holder that is gone (it died, or its thread unwound without
/// finishing), under the lock: an operation not committed is rolled back, and the entries
/// it listed are turned over for their process's recovery. Returns whether there was
/// anything to settle.
pub(crate) fn settle_gone(region: &Region, l: &LockedObj<'_>) -> bool {
    let u = l.undo();
    if u.is_idle() {
        return false;
    }
    let committed = u.is_committed();
    if !committed {
        roll_back(region, &u);
    }
    for r in u.records() {
        convert(region, &r, committed);
    }
    u.clear();
    true
}

/// A dead process's handle of a locked value: if it held the lock, the value's journal
/// may list its entries, so the lock is taken (over from the dead process) and the journal
/// settled before any of them is resolved. Left for later while a live thread holds the
/// lock.
pub(crate) fn resolve_locking(pool: &Pool, e: Entry<'_>, ctx: &mut Ctx) -> Outcome {
    if e.get(E_INDEX) != 0 {
        let region = pool.region();
        match LockedObj::open(region, Offset::new(e.get(E_OBJ))).and_then(|l| Ok((l, l.mutex()?))) {
            Ok((l, m)) => {
                if m.held_by_me() {
                    return Outcome::Later;
                }
                let g = if ctx.patient {
                    m.lock_timeout(RECOVERY_WAIT).ok()
                } else {
                    m.try_lock()
                };
                let Some(mut g) = g else {
                    return Outcome::Later;
                };
                if settle_gone(region, &l) {
                    ctx.tally.operations = ctx.tally.operations.saturating_add(1);
                }
                if g.owner_died() {
                    g.mark_consistent();
                }
            }
            Err(_) => ctx.tally.suspects = ctx.tally.suspects.saturating_add(1),
        }
    }
    e.set_kind(LedgerKind::Free);
    Outcome::Done
}

/// A reference or block a dead process's operation was giving up, still `Detaching` once
/// the journals are settled: the operation never committed (or never listed it), so the
/// container kept it.
pub(crate) fn resolve_detaching(_pool: &Pool, e: Entry<'_>, _ctx: &mut Ctx) -> Outcome {
    e.set_kind(LedgerKind::Free);
    Outcome::Done
}
