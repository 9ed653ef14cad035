//! [`ShmLocked`]: a container several processes write, under a lock of its own that
//! survives a dead holder, with every write all or nothing.
//!
//! A locked value is an object of the pool holding a [`ShmMutex`](crate::sync::ShmMutex),
//! a journal, and a link to its container (a `Tab`, `OTab`, `Arr`, `Tup` or typed
//! `Array`). Handles to it are counted like any value's, cloned, sent through pipes and
//! published by name; its container is read and written only through a
//! [`LockedGuard`], which holds the lock. Read-only handles stay what they were: a value
//! taken out of a locked table is an ordinary handle, and a container some handle still
//! holds is copied before it is written.
//!
//! The argument for crash atomicity is on [`ShmLocked`].

mod guard;
mod write;

use std::fmt;
use std::time::{Duration, Instant};

use super::build::{child_of, new_obj, IntoShm};
use super::handle::ShmVal;
use super::journal::{settle_gone, LockedObj};
use super::layout::{store_cell, Cell, Kind};
use super::tracked;
use crate::alloc::Pool;
use crate::ledger::{Kind as LedgerKind, E_INDEX, E_OBJ};
use crate::region::Offset;
use crate::sync::atomic::Ordering;
use crate::sync::Owner;
use crate::val::{Tag, ValError};

pub use guard::{LockedGuard, LockedMut};

/// A handle to a locked value: a container any holder of its lock, in any process, reads
/// and writes through a [`LockedGuard`].
///
/// Cloning makes another handle (the value is counted, as [`ShmVal`]'s);
/// [`into_val`](Self::into_val) turns it into a [`ShmVal`] to send through a pipe or
/// publish, and [`ShmVal::into_locked`] back.
///
/// # Why a holder killed at any step leaves the value whole
///
/// Every write is one operation, recorded in the value's journal as it goes:
///
/// 1. Each store to a word a reader can reach (a count, an index slot, a cell, a data
///    link) records the word's old value first; the record is counted before the store.
/// 2. A value placed into the container is listed with its ledger entry before its cell
///    is stored; the entry says `Moving`, so the value is still its process's.
/// 3. A block allocated for the container (a grown table's data) is listed with its
///    ledger entry (`Building`, no container) before it is allocated.
/// 4. A reference or block the container gives up is listed with a new entry
///    (`Detaching`): the container's until the commit.
/// 5. The commit is one store of the journal's state. Then the entries are turned over
///    (what the container took is its own, what it gave up is the process's), the journal
///    is cleared, and only then are the references dropped and the blocks freed.
///
/// Whoever takes the lock next and finds the journal not cleared settles it: before the
/// commit, it stores every old value back (newest first), so the container is as before
/// the operation, and turns the entries back (the placed values are their process's
/// `Value`s, the blocks stay `Building` and are freed, the `Detaching` entries are freed);
/// after it, it finishes turning the entries over. A death at any step therefore leaves
/// the container as before or as after, and each reference and block with exactly one
/// owner, which the dead process's recovery then gives back. Settling again after a
/// settler died does the same thing: stores of old values are idempotent, and entries are
/// turned over only from the kind the operation left them in.
///
/// A process's recovery must not resolve those entries before the journal is settled, so
/// each handle records in the process's ledger (`Locking`) whether it holds the lock, and
/// recovery takes such a lock first (over from the dead process), before anything else.
/// A process with no ledger (a pool not attached through a registry) still gets whole
/// values, but what it held when it died is not given back.
///
/// ```
/// # use std::sync::Arc;
/// # use std::time::Duration;
/// # use shmval::{alloc::Pool, region::{Region, RegionName}, val, ShmLocked};
/// # let name = RegionName::new(format!("shmval-doc-locked-{}", std::process::id())).unwrap();
/// # let pool = Pool::create(Arc::new(Region::create(&name, 1 << 20)?))?;
/// let board = ShmLocked::new(&pool, val!({"status": "starting", "done": 0}))?;
/// let other = board.clone(); // another handle: send it through a pipe, or publish it
///
/// let mut g = other.lock(Duration::from_secs(1))?;
/// g.insert("status", "running")?;
/// g.increment("done", 1)?;
/// assert_eq!(g.get("done")?.unwrap().as_i64()?, 1);
/// drop(g); // unlocks
///
/// let copy = board.snapshot(Duration::from_secs(1))?; // a read-only handle of a copy
/// assert_eq!(copy.field("status")?.as_str()?, "running");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the last handle frees the value"]
pub struct ShmLocked {
    h: ShmVal,
    /// This handle's `Locking` entry in the process's ledger (null: not recorded).
    entry: Offset,
}

/// How long [`ShmLocked::acquire`] waits for a live holder.
#[derive(Clone, Copy, Debug)]
enum Wait {
    For(Duration),
    Until(Instant),
    No,
}

/// What a locked value's lock and journal say now (a snapshot, for diagnostics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockedStatus {
    /// The thread holding the lock, if any.
    pub holder: Option<Owner>,
    /// Whether a thread may be waiting for the lock.
    pub contended: bool,
    /// Operations committed since the value was made.
    pub operations: u64,
    /// Whether an operation is under way (or was cut short and not yet settled).
    pub in_operation: bool,
    /// The kind of container it holds.
    pub tag: Tag,
    /// Its length (entries or elements) when read, without the lock.
    pub len: u64,
}

impl fmt::Debug for ShmLocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmLocked")
            .field("offset", &self.h.offset())
            .finish()
    }
}

impl ShmLocked {
    /// A new locked value in `pool` holding `value` (a heap value, copied; or a handle,
    /// moved in), which must be a `Tab`, `OTab`, `Arr`, `Tup` or typed `Array`.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] for another kind of value, [`ValError::Locked`] for a
    /// locked value, [`ValError::ForeignRegion`], [`ValError::OutOfMemory`].
    pub fn new(pool: &Pool, value: impl IntoShm) -> Result<ShmLocked, ValError> {
        let item = value.into_shm();
        let h = new_obj(pool, Kind::Locked, None, 0, Cell::Empty, |_| Ok(()))?;
        let child = child_of(pool, item, h.offset())?;
        match child.cell() {
            Cell::Obj(Tag::Tab | Tag::OTab | Tag::Arr | Tag::Tup | Tag::Array, _) => {}
            c => {
                return Err(ValError::WrongType {
                    expected: "a Tab, OTab, Arr, Tup or Array",
                    found: c.tag().unwrap_or(Tag::None),
                })
            }
        }
        let l = LockedObj::open(pool.region(), h.offset())?;
        // The object is this process's alone until the handle leaves this function.
        store_cell(l.root(), &child.cell());
        child.commit();
        Ok(ShmLocked::adopt(h))
    }

    fn adopt(h: ShmVal) -> ShmLocked {
        let pool = h.pool();
        let entry = tracked::ledger_of(pool)
            .and_then(|l| l.take(pool))
            .map_or(Offset::NULL, |e| {
                e.set(E_OBJ, h.offset().get());
                e.set(E_INDEX, 0);
                e.set_kind(LedgerKind::Locking);
                e.offset()
            });
        ShmLocked { h, entry }
    }

    /// The pool the value lives in.
    pub fn pool(&self) -> &Pool {
        self.h.pool()
    }

    /// The handle as a [`ShmVal`], to send through a pipe or publish by name.
    pub fn into_val(self) -> ShmVal {
        let mut me = std::mem::ManuallyDrop::new(self);
        me.release_entry();
        // SAFETY: `me` is never used or dropped again; its handle is moved out once.
        unsafe { std::ptr::read(&me.h) }
    }

    /// The handle, as a [`ShmVal`] (clone it to send a copy of the handle).
    pub fn as_val(&self) -> &ShmVal {
        &self.h
    }

    fn obj(&self) -> Result<LockedObj<'_>, ValError> {
        LockedObj::open(self.pool().region(), self.h.offset())
    }

    /// Records whether this handle holds the lock (see [`ShmLocked`]).
    pub(super) fn set_holding(&self, on: bool) {
        if let Some(e) = tracked::entry(self.pool(), self.entry) {
            e.word(E_INDEX).store(u64::from(on), Ordering::Release);
        }
    }

    fn release_entry(&mut self) {
        if let Some(e) = tracked::entry(self.h.pool(), self.entry) {
            tracked::put(self.h.pool(), e);
        }
        self.entry = Offset::NULL;
    }

    /// Takes the lock, waiting at most `timeout` while a live thread holds it. A holder
    /// found dead is taken over and its last operation settled first (see
    /// [`LockedGuard::owner_died`]).
    ///
    /// # Errors
    ///
    /// [`ValError::LockTimeout`], [`ValError::Relock`] if this thread holds it already,
    /// [`ValError::Corrupt`].
    pub fn lock(&self, timeout: Duration) -> Result<LockedGuard<'_>, ValError> {
        self.acquire(Wait::For(timeout))
    }

    /// Takes the lock, waiting until `deadline` at most (see [`lock`](Self::lock)).
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock).
    pub fn lock_deadline(&self, deadline: Instant) -> Result<LockedGuard<'_>, ValError> {
        self.acquire(Wait::Until(deadline))
    }

    /// Takes the lock if it is free (or its holder dead), without waiting.
    ///
    /// # Errors
    ///
    /// [`ValError::LockTimeout`] (having waited 0) if a live thread holds it, and as
    /// [`lock`](Self::lock).
    pub fn try_lock(&self) -> Result<LockedGuard<'_>, ValError> {
        self.acquire(Wait::No)
    }

    fn acquire(&self, wait: Wait) -> Result<LockedGuard<'_>, ValError> {
        let l = self.obj()?;
        let m = l.mutex()?;
        // Free and clean: one compare-and-swap, no clock.
        let mut g = match m.try_lock_free() {
            Some(g) => g,
            None => {
                if m.held_by_me() {
                    return Err(ValError::Relock);
                }
                let start = Instant::now();
                let g = match wait {
                    Wait::For(t) => m.lock_timeout(t).ok(),
                    Wait::Until(d) => m.lock_deadline(d).ok(),
                    Wait::No => m.try_lock(),
                };
                g.ok_or_else(|| ValError::LockTimeout {
                    waited: start.elapsed(),
                })?
            }
        };
        self.set_holding(true);
        crate::fault::pause_point("locked.lock.taken");
        let mut died = g.owner_died();
        died |= settle_gone(self.pool().region(), &l);
        if g.owner_died() {
            g.mark_consistent();
        }
        Ok(LockedGuard {
            h: self,
            l,
            _lock: g,
            owner_died: died,
        })
    }

    /// A read-only handle of a copy of the value, made under the lock (waiting at most
    /// `timeout` for it): a consistent picture that later writes do not change. Sharing
    /// the copy then takes the pool lock, waiting as long as a live process holds it.
    ///
    /// # Errors
    ///
    /// As [`lock`](Self::lock), and [`ValError::OutOfMemory`].
    pub fn snapshot(&self, timeout: Duration) -> Result<ShmVal, ValError> {
        let g = self.lock(timeout)?;
        let v = g.to_val()?;
        drop(g);
        super::build::PoolExt::share(self.pool(), &v)
    }

    /// What the lock and journal say now, read without the lock.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`].
    pub fn status(&self) -> Result<LockedStatus, ValError> {
        status_of(self.obj()?)
    }
}

/// What the lock and journal of the locked value at `off` say now, if a locked value is
/// there: for a tool that shows a region without taking references (everything read is
/// checked, and a value freed meanwhile reads as `None` or an error, never as memory
/// misread).
///
/// # Errors
///
/// [`ValError::Corrupt`] if the object there is a locked value that does not check out.
pub fn locked_status(pool: &Pool, off: Offset) -> Result<Option<LockedStatus>, ValError> {
    match LockedObj::open(pool.region(), off) {
        Ok(l) => status_of(l).map(Some),
        Err(_) => Ok(None),
    }
}

fn status_of(l: LockedObj<'_>) -> Result<LockedStatus, ValError> {
    let m = l.mutex()?;
    let root = Cell::decode(super::layout::load_cell(l.root()), 0)?;
    let (tag, len) = match root {
        Cell::Obj(tag, off) => {
            let obj = super::layout::Obj::open_linked(l.obj.region, tag, off)?;
            (tag, obj.load(super::layout::W_LEN))
        }
        c => (c.tag().unwrap_or(Tag::None), 0),
    };
    Ok(LockedStatus {
        holder: m.owner(),
        contended: m.is_contended(),
        operations: l.ops().load(Ordering::Relaxed),
        in_operation: !l.undo().is_idle(),
        tag,
        len,
    })
}

impl Clone for ShmLocked {
    fn clone(&self) -> ShmLocked {
        ShmLocked::adopt(self.h.clone())
    }
}

impl Drop for ShmLocked {
    fn drop(&mut self) {
        self.release_entry();
    }
}

impl ShmVal {
    /// This handle as a [`ShmLocked`], if it is a locked value's.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] for any other value.
    pub fn into_locked(self) -> Result<ShmLocked, ValError> {
        if self.kind() != Kind::Locked {
            return Err(ValError::WrongType {
                expected: "a locked value",
                found: self.tag(),
            });
        }
        Ok(ShmLocked::adopt(self))
    }

    /// Whether this is a locked value's handle.
    pub fn is_locked(&self) -> bool {
        self.kind() == Kind::Locked
    }
}
