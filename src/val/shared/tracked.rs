//! Handles recorded in the process's ledger (see [`crate::ledger`]): making, moving and
//! dropping the reference an entry records, and giving back what a dead process's value
//! entries recorded.

use super::free_walk::{free_rooted, Stop, Walker};
use super::layout::Obj;
use super::release::{dec, inc, release};
use super::walk::Children;
use crate::alloc::Pool;
use crate::ledger::{
    self, Ctx, Entry, Kind, Ledger, Outcome, Tally, E_AUX, E_LOCAL, E_OBJ, E_PIPE,
};
use crate::region::Offset;
use crate::sync::atomic::Ordering;
use crate::val::ValError;
use std::time::Instant;

/// Installs the resolvers of the value kinds (once per process).
pub(crate) fn install_resolvers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        ledger::install(Kind::Value, resolve_value);
        ledger::install(Kind::Releasing, resolve_unknown);
        ledger::install(Kind::Freeing, resolve_freeing);
        ledger::install(Kind::Acquiring, resolve_unknown);
        ledger::install(Kind::Moving, resolve_moving);
        ledger::install(Kind::Building, resolve_building);
        ledger::install(Kind::Locking, super::journal::resolve_locking);
        ledger::install(Kind::Detaching, super::journal::resolve_detaching);
    });
}

/// A new entry for a block ([`Kind::Building`]): the data block of the container at
/// `container`, or (with [`Offset::NULL`]) an object. `block` is [`Offset::NULL`] for one
/// about to be allocated (see [`alloc_block`]), or a data block the container links to
/// now and is about to let go of. `None` without a ledger (the block is then not
/// recorded).
pub(crate) fn begin_block(pool: &Pool, container: Offset, block: Offset) -> Option<Entry<'_>> {
    let e = ledger_of(pool)?.take(pool)?;
    e.set(E_OBJ, block.get());
    e.set(E_AUX, container.get());
    e.set(E_PIPE, 0);
    e.set_kind(Kind::Building);
    Some(e)
}

/// Byte offset of `E_OBJ` in an entry.
const OBJ_WORD_BYTES: u64 = 8 * E_OBJ as u64;

/// The region offset of entry `e`'s `E_OBJ` word, where the allocator records a block.
fn block_word(e: &Entry<'_>) -> Offset {
    Offset::new(e.offset().get().saturating_add(OBJ_WORD_BYTES))
}

/// Allocates `size` bytes at `align` (a value object if `object`), recorded in `e` (see
/// [`begin_block`]) if given.
pub(crate) fn alloc_block(
    pool: &Pool,
    e: Option<&Entry<'_>>,
    size: u64,
    align: u64,
    object: bool,
) -> Result<Offset, crate::alloc::AllocError> {
    alloc_block_by(pool, e, size, align, object, None)
}

/// [`alloc_block`], giving up at `deadline` (if any) while a live thread holds the pool
/// lock.
pub(crate) fn alloc_block_by(
    pool: &Pool,
    e: Option<&Entry<'_>>,
    size: u64,
    align: u64,
    object: bool,
    deadline: Option<Instant>,
) -> Result<Offset, crate::alloc::AllocError> {
    match e {
        Some(e) => pool.alloc_recorded(
            size,
            align,
            object,
            (block_word(e), e.word(E_OBJ)),
            deadline,
        ),
        None => match deadline {
            Some(d) => pool.alloc_block_by(size, align, d).map(|b| b.into_offset()),
            None if object => pool.alloc_object(size),
            None => pool.alloc(size, align),
        },
    }
}

/// Frees the block at `off`, clearing `e`'s record of it if given.
///
/// # Safety
///
/// As [`Pool::free`]: the block is the caller's, and nothing refers to it any more.
pub(crate) unsafe fn free_block(
    pool: &Pool,
    e: Option<&Entry<'_>>,
    off: Offset,
) -> Result<(), crate::alloc::AllocError> {
    match e {
        // SAFETY: the caller's promise.
        Some(e) => unsafe { pool.free_recorded(off, block_word(e), e.word(E_OBJ), None) },
        // SAFETY: the caller's promise.
        None => unsafe { pool.free(off) },
    }
}

/// Gives back entry `e` of [`begin_block`], if any, once its block is someone's.
pub(crate) fn end_block(pool: &Pool, e: Option<Entry<'_>>) {
    if let Some(e) = e {
        put(pool, e);
    }
}

/// A block a dead process had allocated and not yet made a value: freed, unless the
/// container it was for links to it (the container is the dead process's own value,
/// still alive in this pass).
fn resolve_building(pool: &Pool, e: Entry<'_>, ctx: &mut Ctx) -> Outcome {
    let block = e.get(E_OBJ);
    if block != 0 {
        let container = Offset::new(e.get(E_AUX));
        let linked = !container.is_null()
            && Obj::open(pool.region(), container, None)
                .is_ok_and(|c| c.load(super::layout::W_DATA) == block);
        if !linked {
            // Inside a caller's own call, a stopped holder of the pool lock is waited for
            // only as briefly as a drop waits; the block is then freed later.
            // SAFETY: the allocator's record (resolved under the pool lock) says the block
            // was allocated to the dead process, which had not made it a value anyone
            // counts, nor linked it into its container: nothing refers to it.
            let freed = unsafe {
                pool.free_recorded(
                    Offset::new(block),
                    block_word(&e),
                    e.word(E_OBJ),
                    ctx.pool_deadline(),
                )
            };
            match freed {
                Ok(()) => ctx.tally.operations = ctx.tally.operations.saturating_add(1),
                Err(crate::alloc::AllocError::TimedOut) => return Outcome::Later,
                Err(_) => ctx.tally.suspects = ctx.tally.suspects.saturating_add(1),
            }
        }
    }
    e.set_kind(Kind::Free);
    Outcome::Done
}

/// This process's ledger for `pool`'s region, with the value resolvers installed.
pub(crate) fn ledger_of(pool: &Pool) -> Option<&Ledger> {
    install_resolvers();
    Ledger::of(pool.region())
}

/// Records a reference to `off` that the caller already holds (an object just made, or a
/// value just taken over) in a new entry; [`Offset::NULL`] if the region has no ledger for
/// this process (or no room for one more entry: the reference is then not recorded).
pub(crate) fn record(pool: &Pool, off: Offset) -> Offset {
    let Some(e) = ledger_of(pool).and_then(|l| l.take(pool)) else {
        return Offset::NULL;
    };
    e.set(E_OBJ, off.get());
    e.set(E_LOCAL, 1);
    e.set(E_PIPE, 0);
    e.set(E_AUX, 0);
    e.set_kind(Kind::Value);
    e.offset()
}

/// Makes one more reference to the object `obj` and records it in a new entry: the entry
/// says `Acquiring` while the count goes up, so a death then leaves the reference counted
/// (at worst one reference too many: never freed early). Returns the entry (or
/// [`Offset::NULL`], the reference then made but not recorded).
pub(crate) fn acquire(pool: &Pool, obj: &Obj<'_>) -> Offset {
    let Some(e) = ledger_of(pool).and_then(|l| l.take(pool)) else {
        inc(obj.rc());
        return Offset::NULL;
    };
    e.set(E_OBJ, obj.off.get());
    e.set(E_LOCAL, 1);
    e.set(E_PIPE, 0);
    e.set(E_AUX, 0);
    e.set_kind(Kind::Acquiring);
    inc(obj.rc());
    crate::fault::pause_point("val.acquire.counted");
    e.set_kind(Kind::Value);
    e.offset()
}

/// The entry at `off` of `pool`'s region (an entry this process took).
#[inline]
pub(crate) fn entry(pool: &Pool, off: Offset) -> Option<Entry<'_>> {
    Entry::at(pool.region(), off)
}

/// Gives an entry that records nothing any more back to the process's free list.
#[inline]
pub(crate) fn put(pool: &Pool, e: Entry<'_>) {
    e.set_kind(Kind::Free);
    if let Some(l) = Ledger::of(pool.region()) {
        l.put(e);
    }
}

/// Drops the reference entry `e` records for the object at `off` (the process's last
/// handle sharing the entry went), freeing the graph if it was the last reference
/// anywhere, and gives the entry back.
pub(crate) fn release_recorded(pool: &Pool, off: Offset, e: Entry<'_>) -> Result<(), ValError> {
    // Opened before the mark, so that the step a death leaves uncertain is the decrement
    // alone.
    let obj = Obj::open(pool.region(), off, None);
    e.set_kind(Kind::Releasing);
    crate::fault::pause_point("val.release.marked");
    let result = obj.and_then(|obj| dec(obj.rc(), off));
    let result = match result {
        Ok(true) => {
            e.set_kind(Kind::Freeing);
            crate::fault::pause_point("val.release.freeing");
            match free_rooted(pool, &e, Walker::Owner) {
                Ok(()) => Ok(()),
                Err(Stop::Corrupt(err)) => Err(err),
                // Only a survivor's walk stops for later.
                Err(Stop::Later) => Ok(()),
            }
        }
        Ok(false) => Ok(()),
        Err(err) => Err(err),
    };
    put(pool, e);
    result
}

/// A dead process's walk freeing a graph whose last reference it dropped (see
/// [`super::free_walk`]): finished from where it stopped.
fn resolve_freeing(pool: &Pool, e: Entry<'_>, ctx: &mut Ctx) -> Outcome {
    let walker = Walker::Survivor {
        deadline: ctx.pool_deadline(),
        tally: &mut ctx.tally,
    };
    match free_rooted(pool, &e, walker) {
        Ok(()) => ctx.tally.handles = ctx.tally.handles.saturating_add(1),
        Err(Stop::Later) => return Outcome::Later,
        Err(Stop::Corrupt(_)) => ctx.tally.suspects = ctx.tally.suspects.saturating_add(1),
    }
    e.set_kind(Kind::Free);
    Outcome::Done
}

/// A dead process's reference: dropped. Marked `Releasing` first, so a reclaimer that
/// dies meanwhile leaves it counted rather than dropped twice.
fn resolve_value(pool: &Pool, e: Entry<'_>, ctx: &mut Ctx) -> Outcome {
    release_dead(pool, e, &mut ctx.tally);
    Outcome::Done
}

/// Drops the reference to `E_OBJ` that a dead process's entry `e` records, and frees the
/// entry (see [`resolve_value`]).
pub(crate) fn release_dead(pool: &Pool, e: Entry<'_>, t: &mut Tally) {
    let off = Offset::new(e.get(E_OBJ));
    e.set_kind(Kind::Releasing);
    crate::fault::pause_point("reap.value.marked");
    let _ = release(pool, off);
    t.handles = t.handles.saturating_add(1);
    e.set_kind(Kind::Free);
}

/// A death came between recording a step and finishing it, where it cannot be known
/// whether the shared count changed: the reference stays counted ("not freed yet").
fn resolve_unknown(_pool: &Pool, e: Entry<'_>, ctx: &mut Ctx) -> Outcome {
    ctx.tally.suspects = ctx.tally.suspects.saturating_add(1);
    e.set_kind(Kind::Free);
    Outcome::Done
}

/// A reference moving into a container: the container is the dead process's own (it was
/// writing it), so nobody changes it; if it holds the object, the reference is the
/// container's, otherwise the entry's, and dropped.
fn resolve_moving(pool: &Pool, e: Entry<'_>, ctx: &mut Ctx) -> Outcome {
    let child = Offset::new(e.get(E_OBJ));
    let container = Offset::new(e.get(E_AUX));
    match holds(pool, container, child) {
        Ok(true) => {}
        Ok(false) => {
            e.set_kind(Kind::Releasing);
            let _ = release(pool, child);
            ctx.tally.handles = ctx.tally.handles.saturating_add(1);
        }
        Err(_) => ctx.tally.suspects = ctx.tally.suspects.saturating_add(1),
    }
    e.set_kind(Kind::Free);
    Outcome::Done
}

/// Whether the container at `container` links to the object at `child`.
fn holds(pool: &Pool, container: Offset, child: Offset) -> Result<bool, ValError> {
    let obj = Obj::open(pool.region(), container, None)?;
    if obj.kind == super::layout::Kind::Locked {
        // A locked value being made: its own cell links its container.
        let root = super::journal::LockedObj { obj }.root();
        return Ok(super::layout::load_cell(root)[1] == child.get());
    }
    if !(obj.kind.is_seq() || obj.kind.is_table()) {
        return Ok(false);
    }
    let mut children = Children::open(pool, obj)?;
    while let Some(cell) = children.next_cell()? {
        if let super::layout::Cell::Obj(_, off) = cell {
            if off == child {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Whether the entry at `e` is the only one of the process for its handle's clones (its
/// local count is 1).
pub(crate) fn sole(pool: &Pool, e: Offset) -> bool {
    entry(pool, e).is_some_and(|e| e.word(E_LOCAL).load(Ordering::Acquire) == 1)
}
