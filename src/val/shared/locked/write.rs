//! [`Journal`]: the [`Writes`] of a locked value's guard. Every store to a word readers
//! reach is recorded first; every reference and block the operation takes or gives up is
//! listed with its ledger entry; the operation ends with one store that commits it (or a
//! rollback on error), and only then are references dropped and blocks freed.

use std::cell::Cell as StdCell;

use super::super::build::Child;
use super::super::journal::{
    convert, roll_back, LockedObj, ADOPT_BLOCK, ADOPT_VAL, GIVE_BLOCK, GIVE_VAL,
};
use super::super::layout::Cell;
use super::super::release::release;
use super::super::writes::Writes;
use super::super::{corrupt, tracked};
use crate::alloc::Pool;
use crate::ledger::{Entry, Kind as LedgerKind, E_AUX, E_OBJ, E_PIPE};
use crate::region::Offset;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::undo::{Full, Rec, Undo};
use crate::val::ValError;

/// One operation on a locked value, under its lock (see the module docs).
/// Dropped without [`commit`](Self::commit) (an error, or a panic unwinding), it rolls
/// the operation back.
pub(crate) struct Journal<'a> {
    pool: &'a Pool,
    l: LockedObj<'a>,
    undo: Undo<'a>,
    done: StdCell<bool>,
}

fn full(l: &LockedObj<'_>) -> impl Fn(Full) -> ValError {
    let at = l.obj.off.get();
    move |_| corrupt(at, "an operation too large for the journal")
}

impl<'a> Journal<'a> {
    /// Starts an operation; the journal must be idle (the lock's taker settled it).
    pub(crate) fn begin(pool: &'a Pool, l: LockedObj<'a>) -> Result<Journal<'a>, ValError> {
        let undo = l.undo();
        if !undo.is_idle() {
            return Err(corrupt(l.obj.off.get(), "a journal left unsettled"));
        }
        crate::fault::pause_point("locked.op.begun");
        Ok(Journal {
            pool,
            l,
            undo,
            done: StdCell::new(false),
        })
    }

    fn record(&self, tag: u8, a: Offset, b: u64) -> Result<(), ValError> {
        self.undo.record(tag, a.get(), b).map_err(full(&self.l))
    }

    fn has_room(&self) -> Result<(), ValError> {
        if self.undo.len() >= super::super::layout::JOURNAL_CAP {
            return Err(full(&self.l)(Full));
        }
        Ok(())
    }

    /// A ledger entry taken without looking for dead processes (whose recovery may need
    /// this lock), or `None` without a ledger.
    fn entry(&self) -> Option<Entry<'a>> {
        tracked::ledger_of(self.pool)?.take_quiet(self.pool)
    }

    /// Commits the operation, then gives up what it let go.
    pub(crate) fn commit(self) {
        self.undo.commit();
        // Only the lock's holder writes it.
        let ops = self.l.ops();
        ops.store(
            ops.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        self.done.set(true);
        if self.undo.only_stores() {
            // Nothing taken or given up: the common update of a number or a cell.
            crate::fault::pause_point("locked.op.converted");
            self.undo.clear();
            return;
        }
        let recs: Vec<Rec> = self.undo.records().collect();
        let region = self.pool.region();
        for r in &recs {
            convert(region, r, true);
        }
        crate::fault::pause_point("locked.op.converted");
        self.undo.clear();
        self.settle(&recs, true);
    }

    /// Rolls the operation back, and gives back what it had taken.
    fn abort(&self) {
        let region = self.pool.region();
        roll_back(region, &self.undo);
        let recs: Vec<Rec> = self.undo.records().collect();
        for r in &recs {
            convert(region, r, false);
        }
        self.undo.clear();
        self.done.set(true);
        self.settle(&recs, false);
    }

    /// Drops the references and frees the blocks the settled journal's entries now record
    /// as this process's, and gives the others' entries back. The journal is idle: a death
    /// from here leaves each entry to the process's own recovery.
    fn settle(&self, recs: &[Rec], committed: bool) {
        let pool = self.pool;
        for r in recs {
            let e = tracked::entry(pool, Offset::new(r.a));
            match (r.tag, committed) {
                (ADOPT_VAL, true) | (GIVE_VAL | GIVE_BLOCK, false) => {
                    if let Some(e) = e {
                        tracked::put(pool, e);
                    }
                }
                (ADOPT_VAL, false) | (GIVE_VAL, true) => {
                    let obj = Offset::new(r.b);
                    let _ = match e {
                        Some(e) => tracked::release_recorded(pool, obj, e),
                        None => release(pool, obj),
                    };
                }
                (ADOPT_BLOCK, true) => {
                    if let Some(e) = e {
                        tracked::put(pool, e);
                    }
                }
                (ADOPT_BLOCK, false) | (GIVE_BLOCK, true) => {
                    let block = match (&e, r.tag) {
                        (Some(e), ADOPT_BLOCK) => Offset::new(e.get(E_OBJ)),
                        _ => Offset::new(r.b),
                    };
                    if !block.is_null() {
                        // SAFETY: the block was allocated for this operation, which was
                        // rolled back (nothing links to it), or it is the data block the
                        // committed operation replaced (the container links to another):
                        // either way nothing refers to it, and its record is this one.
                        let _ = unsafe { tracked::free_block(pool, e.as_ref(), block) };
                    }
                    if let Some(e) = e {
                        tracked::put(pool, e);
                    }
                }
                _ => {}
            }
        }
    }
}

impl Drop for Journal<'_> {
    fn drop(&mut self) {
        if !self.done.get() {
            self.abort();
        }
    }
}

impl Writes for Journal<'_> {
    fn store(&self, w: &AtomicU64, v: u64) -> Result<(), ValError> {
        // A word that keeps its value needs no record (a cell whose tag stays).
        if w.load(Ordering::Relaxed) == v {
            return Ok(());
        }
        let at = self
            .pool
            .region()
            .offset_of(w)
            .ok_or_else(|| corrupt(0, "a word outside the region"))?;
        self.undo.store(at.get(), w, v).map_err(full(&self.l))
    }

    fn store32(&self, w: &AtomicU32, v: u32) -> Result<(), ValError> {
        let at = self
            .pool
            .region()
            .offset_of(w)
            .ok_or_else(|| corrupt(0, "a word outside the region"))?;
        self.undo.store32(at.get(), w, v).map_err(full(&self.l))
    }

    fn place(
        &self,
        child: Child,
        store: impl FnOnce(&Cell) -> Result<(), ValError>,
    ) -> Result<(), ValError> {
        self.has_room()?;
        let (cell, obj) = child.into_journal();
        if let Some((off, entry)) = obj {
            self.record(ADOPT_VAL, entry, off.get())?;
        }
        store(&cell)
    }

    fn drop_cell(&self, _pool: &Pool, old: Cell) -> Result<(), ValError> {
        let Cell::Obj(_, off) = old else {
            return Ok(());
        };
        self.has_room()?;
        let e = self.entry();
        if let Some(e) = &e {
            e.set(E_OBJ, off.get());
            e.set(E_AUX, 0);
            e.set(E_PIPE, 0);
            e.set_kind(LedgerKind::Detaching);
        }
        self.record(GIVE_VAL, e.map_or(Offset::NULL, |e| e.offset()), off.get())
    }

    fn new_block<'p>(
        &self,
        pool: &'p Pool,
        _container: Offset,
    ) -> Result<Option<Entry<'p>>, ValError> {
        self.has_room()?;
        // Recorded with no container: until the commit, a death frees it.
        let e = tracked::ledger_of(pool).and_then(|l| l.take_quiet(pool));
        if let Some(e) = &e {
            e.set(E_OBJ, 0);
            e.set(E_AUX, 0);
            e.set(E_PIPE, 0);
            e.set_kind(LedgerKind::Building);
            self.record(ADOPT_BLOCK, e.offset(), 0)?;
        }
        Ok(e)
    }

    fn done_block(&self, _pool: &Pool, rec: Option<Entry<'_>>, block: Offset) {
        // Without a ledger the block is listed once it is linked (a rollback frees it).
        if rec.is_none() && !block.is_null() {
            let _ = self.record(ADOPT_BLOCK, Offset::NULL, block.get());
        }
    }

    fn old_block<'p>(
        &self,
        pool: &'p Pool,
        _container: Offset,
        block: Offset,
    ) -> Result<Option<Entry<'p>>, ValError> {
        self.has_room()?;
        let e = tracked::ledger_of(pool).and_then(|l| l.take_quiet(pool));
        if let Some(e) = &e {
            e.set(E_OBJ, block.get());
            e.set(E_AUX, 1);
            e.set(E_PIPE, 0);
            e.set_kind(LedgerKind::Detaching);
        }
        self.record(
            GIVE_BLOCK,
            e.as_ref().map_or(Offset::NULL, |e| e.offset()),
            block.get(),
        )?;
        Ok(e)
    }

    unsafe fn drop_block(
        &self,
        _pool: &Pool,
        _rec: Option<Entry<'_>>,
        _block: Offset,
    ) -> Result<(), ValError> {
        // Freed once the operation commits (see `settle`).
        Ok(())
    }
}
