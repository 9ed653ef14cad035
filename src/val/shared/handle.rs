//! [`ShmVal`]: an owned, refcounted handle to a value in a pool.

use std::fmt;

use super::layout::{boxed_cell, Cell, Kind, Obj, BOX_CELL, MAX_REFCOUNT, W_RC};
use super::mutate::ShmValMut;
use super::release::{inc, release};
use super::tracked;
use super::{corrupt, region_id};
use super::{IntoShm, Key, ShmArray, ShmRef, ShmSeq, ShmStr, ShmTab};
use crate::alloc::Pool;
use crate::ledger::{Entry, E_LOCAL};
use crate::region::Offset;
use crate::sync::atomic::{fence, AtomicU64, Ordering};
use crate::sync::MadeIn;
use crate::val::{Elem, Tag, Val, ValError};

/// An owned reference to a value in a [`Pool`]: the shared counterpart of [`Val`].
///
/// A handle holds one count of its object's process-shared refcount. [`Clone`] adds one
/// (a relaxed increment, as `Arc`); dropping the handle removes it, and the drop that
/// removes the last one, in whichever process, frees the value and everything only it
/// holds back to the pool. The handle carries its pool (and through it the region and
/// the region's random id), so nothing of another region can be linked into it.
///
/// Reading needs no copy: [`field`](Self::field) looks a key up (an error naming it when
/// absent), the getters ([`as_f64`](Self::as_f64), [`as_i64`](Self::as_i64),
/// [`as_str`](Self::as_str), ...) convert as [`Val`]'s `TryFrom` does, and
/// [`view`](Self::view) and the other `as_*` methods give typed views borrowed from the
/// handle. Writing needs a unique handle: [`insert`](Self::insert), [`push`](Self::push),
/// [`set`](Self::set) and [`remove`](Self::remove) succeed only while the count is 1, as
/// `Arc::get_mut`, and are [`ValError::NotUnique`] otherwise ([`try_mut`](Self::try_mut)
/// gives the full write access). See the [module docs](super#mutability-and-cycles) for
/// why this makes cycles impossible and lets every process read a shared value without
/// locks.
///
/// ```
/// # use std::sync::Arc;
/// # use shmval::{alloc::Pool, region::{Region, RegionName}, val, PoolExt, ValError};
/// # let name = RegionName::new(format!("shmval-doc-handle-{}", std::process::id())).unwrap();
/// # let pool = Pool::create(Arc::new(Region::create(&name, 1 << 20)?))?;
/// let mut packet = pool.share(&val!({"scale": 2.5, "sequence_number": 7, "name": "probe"}))?;
///
/// // Reads are checked: a missing key or another type is an error, never a panic.
/// let scale = packet.field("scale")?.as_f64()?;
/// let n = packet.field("sequence_number")?.as_i64()?;
/// assert_eq!(packet.field("name")?.as_str()?, "probe");
/// assert_eq!(packet.field("gain").unwrap_err().to_string(), "missing key 'gain'");
///
/// // Writes, while this handle is the only reference.
/// packet.insert("my_sequence", n + 100)?;
/// packet.insert("scaled", scale * 2.0)?;
/// assert_eq!(packet.field("my_sequence")?.as_i64()?, 107);
///
/// let reader = packet.clone(); // now two references: read-only for both
/// assert_eq!(packet.insert("late", 1), Err(ValError::NotUnique));
/// assert_eq!(reader.field("scaled")?.as_f64()?, 5.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping cannot report errors; [`release`](Self::release) drops and reports what a
/// corrupt graph made impossible to free.
#[must_use = "dropping the last handle frees the value"]
pub struct ShmVal {
    pool: Pool,
    /// Null once the reference was given up by `into_raw`.
    off: Offset,
    kind: Kind,
    /// What a view sees: the cell of a boxed scalar (boxes are never written after they
    /// are made), or a link to the object itself.
    cell: Cell,
    /// A child forked from the process that made the handle inherits a copy of it, which
    /// it must not drop: the reference is the parent's.
    made_in: MadeIn,
    /// The ledger entry recording the reference, shared by this process's clones of the
    /// handle (null: not recorded; see [`crate::ledger`]).
    entry: Offset,
}

impl ShmVal {
    /// Takes over one reference to the checked object at `off` (internal constructor).
    /// `cell` is the box's cell for a [`Kind::Boxed`], else ignored.
    pub(crate) fn adopt(pool: &Pool, off: Offset, kind: Kind, cell: Cell) -> ShmVal {
        let cell = match kind.tag() {
            Some(tag) => Cell::Obj(tag, off),
            None if kind == Kind::Locked => Cell::Locked(off),
            None => cell,
        };
        ShmVal {
            pool: pool.clone(),
            off,
            kind,
            cell,
            made_in: MadeIn::this_process(),
            entry: Offset::NULL,
        }
    }

    /// This handle with its reference recorded in the process's ledger (a handle a user
    /// gets: made, received, or taken from a view).
    pub(crate) fn tracked(mut self) -> ShmVal {
        if self.entry.is_null() && !self.off.is_null() {
            self.entry = tracked::record(&self.pool, self.off);
        }
        self
    }

    /// A handle for the reference that entry `entry` already records.
    pub(crate) fn with_entry(mut self, entry: Offset) -> ShmVal {
        self.entry = entry;
        self
    }

    /// The entry recording this handle's reference, made its own first: a handle whose
    /// entry other clones of this process share gets a new reference and entry of its own
    /// (so it can be sent or moved alone). `None` for a handle not recorded.
    #[inline]
    pub(crate) fn sole_entry(&mut self) -> Option<Entry<'_>> {
        if self.entry.is_null() {
            return None;
        }
        if !tracked::sole(&self.pool, self.entry) {
            let obj = self.obj().ok()?;
            let new = tracked::acquire(&self.pool, &obj);
            let old = std::mem::replace(&mut self.entry, new);
            // The entry keeps its own reference for the other clones (or, if they all went
            // meanwhile, drops it as their last).
            let _ = self.drop_local(old);
            if new.is_null() {
                return None;
            }
        }
        tracked::entry(&self.pool, self.entry)
    }

    /// Gives up this handle without touching its reference or entry: the object's offset
    /// and the entry recording the reference (null if none), for a caller that records
    /// them elsewhere (a locked value's journal).
    pub(crate) fn into_parts(mut self) -> (Offset, Offset) {
        let parts = (self.off, self.entry);
        self.entry = Offset::NULL;
        self.off = Offset::NULL;
        parts
    }

    /// Gives up the handle after its reference left by the operation its entry recorded
    /// (a send that committed, a move into a container): the entry, which records nothing
    /// any more, goes back to the free list.
    #[inline]
    pub(crate) fn into_moved(mut self) {
        if let Some(e) = tracked::entry(&self.pool, self.entry) {
            tracked::put(&self.pool, e);
        }
        self.entry = Offset::NULL;
        self.off = Offset::NULL;
    }

    /// Gives up the handle leaving its reference and its entry as they are: the caller
    /// takes both over (an entry about to record another reference, once the one it
    /// records has moved elsewhere). Returns the entry (null: not recorded).
    pub(crate) fn into_entry(mut self) -> Offset {
        self.off = Offset::NULL;
        std::mem::replace(&mut self.entry, Offset::NULL)
    }

    /// Drops one of this process's handles sharing entry `e` (the last drops the
    /// reference the entry records).
    fn drop_local(&self, e: Offset) -> Result<(), ValError> {
        let Some(entry) = tracked::entry(&self.pool, e) else {
            return Ok(());
        };
        // SYNC POINT: release, so this handle's uses happen before the last local drop
        // (acquire below), which then drops the shared reference with a release.
        if entry.word(E_LOCAL).fetch_sub(1, Ordering::Release) == 1 {
            fence(Ordering::Acquire);
            return tracked::release_recorded(&self.pool, self.off, entry);
        }
        Ok(())
    }

    /// Drops the reference this handle holds (through its entry, or directly).
    fn drop_ref(&mut self) -> Result<(), ValError> {
        let off = std::mem::replace(&mut self.off, Offset::NULL);
        if off.is_null() {
            return Ok(());
        }
        let e = std::mem::replace(&mut self.entry, Offset::NULL);
        if e.is_null() {
            return release(&self.pool, off);
        }
        self.off = off;
        let r = self.drop_local(e);
        self.off = Offset::NULL;
        r
    }

    /// The pool the value lives in.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The region offset of the value's object: what [`into_raw`](Self::into_raw) gives.
    pub fn offset(&self) -> Offset {
        self.off
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn cell(&self) -> Cell {
        self.cell
    }

    /// The object's header, checked again.
    pub(crate) fn obj(&self) -> Result<Obj<'_>, ValError> {
        Obj::open(self.pool.region(), self.off, Some(self.kind))
    }

    fn rc(&self) -> Option<&AtomicU64> {
        const RC_AT: u64 = 8 * W_RC as u64;
        let at = self.off.checked_add(RC_AT)?;
        self.pool.region().at::<AtomicU64>(at).ok()
    }

    /// The number of references to the value now: handles in every process plus containers
    /// and pipes holding it. A snapshot: other processes may change it at any time. The
    /// clones of a handle in another process count once (they share one reference there,
    /// see [`crate::ledger`]); this handle's own clones count each.
    pub fn ref_count(&self) -> u64 {
        let shared = self.rc().map_or(0, |rc| rc.load(Ordering::Relaxed));
        let local = tracked::entry(&self.pool, self.entry)
            .map_or(1, |e| e.word(E_LOCAL).load(Ordering::Relaxed));
        shared.saturating_add(local.saturating_sub(1))
    }

    /// The kind of value.
    pub fn tag(&self) -> Tag {
        self.view().tag()
    }

    /// A read-only view of the value, borrowed from the handle.
    pub fn view(&self) -> ShmRef<'_> {
        if let Cell::Short(_) = self.cell {
            // A boxed short string is read in place from its box's cell, which lies in the
            // header checked when this handle was made.
            let at = self.off.checked_add(BOX_CELL);
            if let Some(w) = at.and_then(|at| self.pool.region().at_slice(at, 2).ok()) {
                return ShmRef::in_cell(&self.pool, self.cell, w);
            }
        }
        ShmRef::new(&self.pool, self.cell)
    }

    /// A copy of the value on the heap, equal to what was shared and of the same types,
    /// if it takes at most [`MAX_COPY_BYTES`](super::MAX_COPY_BYTES).
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`] if any part of the value fails its checks,
    /// [`ValError::TooDeep`] past [`MAX_NESTING`](super::MAX_NESTING) levels,
    /// [`ValError::TooLarge`] past the limit (a value holding shared children many times).
    pub fn to_val(&self) -> Result<Val, ValError> {
        self.view().to_val()
    }

    /// A copy of the value on the heap, if it takes at most `limit` bytes; see
    /// [`ShmRef::to_val_within`].
    ///
    /// # Errors
    ///
    /// As for [`to_val`](Self::to_val).
    pub fn to_val_within(&self, limit: u64) -> Result<Val, ValError> {
        self.view().to_val_within(limit)
    }

    /// Checks the whole graph: every offset, tag, length, refcount and string, each object
    /// as the kind its handle or link expects, so that what passes every reader can read.
    /// See [validation](super#validation).
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`] naming the first problem found.
    pub fn validate(&self) -> Result<(), ValError> {
        super::validate::validate(&self.pool, self.off, self.kind)
    }

    /// The value as a table (`Tab` or `OTab`).
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn as_tab(&self) -> Result<ShmTab<'_>, ValError> {
        self.view().as_tab()
    }

    /// The value as a sequence (`Arr` or `Tup`).
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn as_seq(&self) -> Result<ShmSeq<'_>, ValError> {
        self.view().as_seq()
    }

    /// The value as a string.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`] (also for invalid UTF-8).
    pub fn as_str(&self) -> Result<ShmStr<'_>, ValError> {
        self.view().as_str()
    }

    /// The value as a typed array.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`], [`ValError::Corrupt`].
    pub fn as_array(&self) -> Result<ShmArray<'_>, ValError> {
        self.view().as_array()
    }

    /// The elements of a typed array of `T`, in place.
    ///
    /// # Errors
    ///
    /// [`ValError::WrongType`] unless the value is an array of `T`, [`ValError::Corrupt`].
    pub fn as_slice<T: Elem>(&self) -> Result<&[T], ValError> {
        self.view().as_slice()
    }

    /// Whether this is the only reference to the value (then [`get_mut`](Self::get_mut)
    /// succeeds).
    pub fn is_unique(&mut self) -> bool {
        // SYNC POINT: acquire, pairing with the release decrements of references dropped
        // by other threads or processes, so their reads happen before this one's writes.
        self.rc().is_some_and(|rc| rc.load(Ordering::Acquire) == 1)
            && (self.entry.is_null() || tracked::sole(&self.pool, self.entry))
    }

    /// Write access, if this is the only reference to the value (its refcount is 1):
    /// after a clone, or once held by a container or a queue, the value is read-only.
    pub fn get_mut(&mut self) -> Option<ShmValMut<'_>> {
        if self.is_unique() {
            Some(ShmValMut::new(self))
        } else {
            None
        }
    }

    /// Write access, or [`ValError::NotUnique`] when other references exist.
    ///
    /// # Errors
    ///
    /// [`ValError::NotUnique`].
    pub fn try_mut(&mut self) -> Result<ShmValMut<'_>, ValError> {
        self.get_mut().ok_or(ValError::NotUnique)
    }

    /// Inserts `value` under `key` in a `Tab` or `OTab` if this is the only reference to it,
    /// as [`ShmValMut::insert`]: `packet.insert("my_sequence", n + 100)?`. Returns whether
    /// it replaced a value.
    ///
    /// # Errors
    ///
    /// [`ValError::NotUnique`] while other references exist (the table is unchanged and
    /// `value` dropped), and as for [`ShmValMut::insert`].
    pub fn insert(&mut self, key: impl Into<Val>, value: impl IntoShm) -> Result<bool, ValError> {
        self.try_mut()?.insert(key, value)
    }

    /// Removes `key`'s entry from a `Tab` or `OTab` if this is the only reference to it, as
    /// [`ShmValMut::remove`]. Returns whether there was one.
    ///
    /// # Errors
    ///
    /// [`ValError::NotUnique`], and as for [`ShmValMut::remove`].
    pub fn remove(&mut self, key: impl Key) -> Result<bool, ValError> {
        self.try_mut()?.remove(key)
    }

    /// Appends `value` to an `Arr`, `Tup` or typed array if this is the only reference to
    /// it, as [`ShmValMut::push`].
    ///
    /// # Errors
    ///
    /// [`ValError::NotUnique`] (`value` is dropped), and as for [`ShmValMut::push`].
    pub fn push(&mut self, value: impl IntoShm) -> Result<(), ValError> {
        self.try_mut()?.push(value)
    }

    /// Replaces element `i` of an `Arr` or `Tup` if this is the only reference to it, as
    /// [`ShmValMut::set`].
    ///
    /// # Errors
    ///
    /// [`ValError::NotUnique`] (`value` is dropped), and as for [`ShmValMut::set`].
    pub fn set(&mut self, i: usize, value: impl IntoShm) -> Result<(), ValError> {
        self.try_mut()?.set(i, value)
    }

    /// Gives up the handle without dropping its reference, and returns the object's
    /// offset: the form in which a value crosses to another process (through a queue
    /// slot, or any word of the region). [`from_raw`](Self::from_raw) takes the reference
    /// over again; until then the value cannot be freed.
    pub fn into_raw(mut self) -> Offset {
        let e = std::mem::replace(&mut self.entry, Offset::NULL);
        if let Some(entry) = tracked::entry(&self.pool, e) {
            if entry.word(E_LOCAL).fetch_sub(1, Ordering::AcqRel) == 1 {
                // The last of this process's handles: the entry's reference is the raw
                // one now, no longer recorded.
                tracked::put(&self.pool, entry);
            } else if let Some(rc) = self.rc() {
                // Other clones keep the entry's reference: the raw offset carries a new one.
                inc(rc);
            }
        }
        // A null offset tells `drop` that the reference was given up.
        std::mem::replace(&mut self.off, Offset::NULL)
    }

    /// Takes over one reference to the value at `off` in `pool`'s region, which
    /// [`into_raw`](Self::into_raw) gave (in this process or another).
    ///
    /// The object header is checked first: its magic, kind, a plausible refcount (at
    /// least one) and that the pool's block at `off` holds it. Only the top object is
    /// checked; call [`validate`](Self::validate) to check the graph of a value from an
    /// untrusted writer.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`] if `off` does not hold a live value; nothing is taken over then.
    ///
    /// # Safety
    ///
    /// `off` carries one reference that nobody else takes over: it came from `into_raw`,
    /// and this is the only call that adopts it. Two handles made from one reference would
    /// each see a count of 1 and could write the value ([`get_mut`](Self::get_mut)) while
    /// the other reads it.
    pub unsafe fn from_raw(pool: &Pool, off: Offset) -> Result<ShmVal, ValError> {
        // SAFETY: the caller's promise, passed on.
        unsafe { Self::from_raw_unrecorded(pool, off) }.map(ShmVal::tracked)
    }

    /// [`from_raw`](Self::from_raw) without recording the reference in the ledger: for a
    /// reference whose entry the caller manages (a receive), or that is dropped at once.
    ///
    /// # Errors
    ///
    /// As for [`from_raw`](Self::from_raw).
    ///
    /// # Safety
    ///
    /// As for [`from_raw`](Self::from_raw).
    #[inline]
    pub(crate) unsafe fn from_raw_unrecorded(pool: &Pool, off: Offset) -> Result<ShmVal, ValError> {
        let obj = Obj::open(pool.region(), off, None)?;
        let rc = obj.rc().load(Ordering::Relaxed);
        if rc == 0 || rc > MAX_REFCOUNT {
            return Err(corrupt(off.get(), format!("refcount {rc}")));
        }
        // Without the pool lock: the caller owns a reference, so the block is live and its
        // header fixed (the lock would move the pool's lock line between processes on
        // every receive); a corrupt offset still gives an error or a checked header.
        let usable = pool
            .usable_size_unlocked(off)
            .map_err(|e| corrupt(off.get(), e.to_string()))?;
        if usable < obj.kind.header_bytes() {
            return Err(corrupt(off.get(), format!("block of {usable} bytes")));
        }
        let cell = if obj.kind == Kind::Boxed {
            boxed_cell(&obj)?
        } else {
            Cell::Empty
        };
        Ok(ShmVal::adopt(pool, off, obj.kind, cell))
    }

    /// Drops the handle, reporting what could not be freed if this was the last reference
    /// and the graph turned out corrupt (the parts that could be freed are).
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`], or [`ValError::Pool`] if the pool refused a free.
    pub fn release(mut self) -> Result<(), ValError> {
        self.drop_ref()
    }

    /// Settles a value received from a pipe that redelivers (see
    /// [`ServerSideBuilder::redeliver`](crate::sides::ServerSideBuilder::redeliver)): if
    /// this process dies from now on while it holds the value, the value is dropped, not
    /// sent back to the pipe. Does nothing for any other value. Sending the value on,
    /// moving it into a container, or dropping every handle of it settles it too.
    pub fn acknowledge(&self) {
        if let Some(e) = tracked::entry(&self.pool, self.entry) {
            if e.kind() == Some(crate::ledger::Kind::Received) {
                e.set_kind(crate::ledger::Kind::Value);
            }
        }
    }

    /// Whether the two handles name the same object (as `Arc::ptr_eq`).
    pub fn ptr_eq(&self, other: &ShmVal) -> bool {
        self.off == other.off && region_id(&self.pool) == region_id(&other.pool)
    }
}

impl Clone for ShmVal {
    /// Another handle to the same value: one more reference (a relaxed increment).
    fn clone(&self) -> ShmVal {
        // The count lies in the header checked when this handle was made; the region's size
        // never changes, so it resolves.
        match tracked::entry(&self.pool, self.entry) {
            // Another handle of this process: the entry's count, a line only this process
            // writes.
            Some(e) => {
                e.word(E_LOCAL).fetch_add(1, Ordering::Relaxed);
            }
            None => {
                if let Some(rc) = self.rc() {
                    inc(rc);
                }
            }
        }
        ShmVal {
            pool: self.pool.clone(),
            off: self.off,
            kind: self.kind,
            cell: self.cell,
            made_in: MadeIn::this_process(),
            entry: self.entry,
        }
    }
}

impl Drop for ShmVal {
    fn drop(&mut self) {
        if self.off.is_null() || !self.made_in.is_this_process() {
            return;
        }
        // Errors cannot be reported from a drop; `release` reports them.
        let _ = self.drop_ref();
    }
}

impl fmt::Display for ShmVal {
    /// The value's Python literal, as [`Val`]'s, printed from a copy; `<error>` if it
    /// cannot be copied (corrupt, too deep, or past
    /// [`MAX_COPY_BYTES`](super::MAX_COPY_BYTES)).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_val() {
            Ok(v) => fmt::Display::fmt(&v, f),
            Err(e) => write!(f, "<{e}>"),
        }
    }
}
