//! [`Writes`]: how a container write reaches the pool. A container its writer holds
//! uniquely is written [`Direct`]ly, each step recorded in the process's ledger as it
//! happens; a locked value is written through its journal (see `locked`), which makes
//! every operation all or nothing.
//!
//! The container code (tables, sequences, arrays) is written once against this trait and
//! says, at each step, which kind of step it is: a store to a word readers can reach, a
//! child placed into a cell, a cell's old reference given up, a data block allocated or
//! let go.

use super::build::Child;
use super::layout::{store_cell, Cell};
use super::release::release_cell;
use super::tracked;
use crate::alloc::Pool;
use crate::ledger::Entry;
use crate::region::Offset;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use crate::val::ValError;

/// The steps of a container write (see the [module docs](self)).
pub(crate) trait Writes {
    /// Stores `v` in a word of the container that readers can reach.
    fn store(&self, w: &AtomicU64, v: u64) -> Result<(), ValError>;

    /// Stores `v` in an index slot that readers can reach.
    fn store32(&self, w: &AtomicU32, v: u32) -> Result<(), ValError>;

    /// Stores a cell's two words (see [`store`](Self::store)).
    fn store_cell(&self, w: &[AtomicU64], c: &Cell) -> Result<(), ValError> {
        let [a, b] = c.encode();
        match w {
            [w0, w1, ..] => {
                self.store(w0, a)?;
                self.store(w1, b)
            }
            _ => Err(super::corrupt(0, "a cell of fewer than two words")),
        }
    }

    /// Places `child` with `store`, which writes its cell: afterwards the container holds
    /// the child's reference. On error the child's reference is given back.
    fn place(
        &self,
        child: Child,
        store: impl FnOnce(&Cell) -> Result<(), ValError>,
    ) -> Result<(), ValError>;

    /// The container no longer holds the reference `old` carried: dropped now, or once
    /// the operation commits.
    fn drop_cell(&self, pool: &Pool, old: Cell) -> Result<(), ValError>;

    /// A record for a data block about to be allocated for the container at `container`
    /// (see [`tracked::begin_block`]).
    fn new_block<'p>(
        &self,
        pool: &'p Pool,
        container: Offset,
    ) -> Result<Option<Entry<'p>>, ValError>;

    /// Done with `rec` of [`new_block`](Self::new_block): the container links to its
    /// block `block` now, or (`block` null) it was never allocated or was freed (its
    /// record cleared by the free).
    fn done_block(&self, pool: &Pool, rec: Option<Entry<'_>>, block: Offset);

    /// A record for the container's data block `block`, about to be let go.
    fn old_block<'p>(
        &self,
        pool: &'p Pool,
        container: Offset,
        block: Offset,
    ) -> Result<Option<Entry<'p>>, ValError>;

    /// The container no longer links to `block` (recorded in `rec`): freed now, or once
    /// the operation commits.
    ///
    /// # Safety
    ///
    /// The block was the container's alone, and the container, which the caller holds
    /// uniquely or under its lock, links to another one now.
    unsafe fn drop_block(
        &self,
        pool: &Pool,
        rec: Option<Entry<'_>>,
        block: Offset,
    ) -> Result<(), ValError>;
}

/// Writes to a container its writer holds uniquely (a fresh object, or through a unique
/// handle): stores go straight to memory and what is let go is freed at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Direct;

impl Writes for Direct {
    #[inline]
    fn store(&self, w: &AtomicU64, v: u64) -> Result<(), ValError> {
        w.store(v, Relaxed);
        Ok(())
    }

    #[inline]
    fn store32(&self, w: &AtomicU32, v: u32) -> Result<(), ValError> {
        w.store(v, Relaxed);
        Ok(())
    }

    #[inline]
    fn store_cell(&self, w: &[AtomicU64], c: &Cell) -> Result<(), ValError> {
        store_cell(w, c);
        Ok(())
    }

    fn place(
        &self,
        child: Child,
        store: impl FnOnce(&Cell) -> Result<(), ValError>,
    ) -> Result<(), ValError> {
        store(&child.cell())?;
        child.commit();
        Ok(())
    }

    fn drop_cell(&self, pool: &Pool, old: Cell) -> Result<(), ValError> {
        release_cell(pool, &old)
    }

    fn new_block<'p>(
        &self,
        pool: &'p Pool,
        container: Offset,
    ) -> Result<Option<Entry<'p>>, ValError> {
        Ok(tracked::begin_block(pool, container, Offset::NULL))
    }

    fn done_block(&self, pool: &Pool, rec: Option<Entry<'_>>, _block: Offset) {
        tracked::end_block(pool, rec);
    }

    fn old_block<'p>(
        &self,
        pool: &'p Pool,
        container: Offset,
        block: Offset,
    ) -> Result<Option<Entry<'p>>, ValError> {
        Ok(tracked::begin_block(pool, container, block))
    }

    unsafe fn drop_block(
        &self,
        pool: &Pool,
        rec: Option<Entry<'_>>,
        block: Offset,
    ) -> Result<(), ValError> {
        // SAFETY: the caller's promise: the block was the container's alone and is no
        // longer linked.
        let r = unsafe { tracked::free_block(pool, rec.as_ref(), block) };
        tracked::end_block(pool, rec);
        r.map_err(Into::into)
    }
}
