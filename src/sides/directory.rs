//! [`Directory`]: the table in a region that maps pipe names to pipes.
//!
//! The directory is a pool block found through the region's root word. It holds a lock, a
//! generation word that changes whenever a pipe is added or removed (with a futex wake
//! when a process sleeps on it, counted in the word beside it: a pipe per request pays no
//! system call for it), so a client waiting for a pipe sleeps instead of polling, the
//! offset of the region's
//! [`Names`](super::Names) directory, and 64 entries:
//!
//! | word  | field                                                |
//! |-------|------------------------------------------------------|
//! | 0     | state: 0 free, 1 live                                |
//! | 1     | offset of the pipe block                             |
//! | 2     | users: sides attached to the pipe                    |
//! | 3     | flags: bit 0, keep the pipe when its last user goes  |
//! | 4..12 | the name, 64 bytes, zero-padded                      |
//!
//! A live entry holds one reference to its pipe (pipes are counted, see
//! [`Pipe`](crate::queue::Pipe)), given up when the entry is removed: the pipe's block goes
//! when that and every handle to it are gone, never under a handle.
//!
//! Every change is made under the lock, except that a side's drop takes itself off the
//! users count with an atomic decrement (a drop never waits long for the lock); the entry
//! of a pipe nobody uses and nobody keeps is removed by the next holder of the lock (at
//! once, if the dropping side can take it within a short bound). The decrement that leaves
//! an entry without users marks it in a word of 64 bits, one per entry, and a holder of
//! the lock looks only at the entries marked there: a pipe per request does not scan the
//! whole table three times.
//!
//! Everything read from the directory is checked: names are re-validated, pipes reopened
//! (magic, generation, capacity), states outside {0, 1} are corruption. A process that
//! dies holding the directory lock leaves at worst a wrong user count (its pipe is then
//! kept); the next locker re-checks every entry and frees those that do not hold a pipe.

use std::mem::size_of;
use std::time::{Duration, Instant};

use super::error::SidesError;
use super::name::PipeName;
use crate::alloc::{AllocError, Pool};
use crate::ledger::{flags, Entry as LedgerEntry, Kind as LedgerKind, E_AUX, E_INDEX, E_PIPE};
use crate::queue::{Pipe, PipeError, PipeKind, PipeStats};
use crate::region::{Offset, Shared};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::generation::Generation;
use crate::sync::{ShmMutex, ShmMutexGuard};

/// Pipes one region can hold.
pub const MAX_PIPES: usize = 64;

/// "SHMDIR05", little-endian.
const DIR_MAGIC: u64 = u64::from_le_bytes(*b"SHMDIR05");
const FREE: u64 = 0;
const LIVE: u64 = 1;
const PERSIST: u64 = 1;

/// How long a dropping side waits for the directory lock before it leaves the removal of
/// an unused pipe to the next holder.
const DROP_WAIT: Duration = Duration::from_micros(200);

#[repr(C)]
struct Entry {
    state: AtomicU64,
    pipe: AtomicU64,
    users: AtomicU64,
    flags: AtomicU64,
    name: [AtomicU64; 8],
}

#[repr(C)]
struct DirHead {
    magic: AtomicU64,
    lock: ShmMutex,
    generation: AtomicU32,
    /// Processes asleep on `generation` (see `crate::sync::generation`).
    sleepers: AtomicU32,
    /// The offset of the region's names directory (see [`Names`](super::Names)).
    names: AtomicU64,
    entries: [Entry; MAX_PIPES],
    /// The names of the last [`REMOVED`] pipes removed, in a ring, so that a side waiting
    /// for one can say it was removed rather than never made.
    removed: [[AtomicU64; 8]; REMOVED],
    /// Where the next removed name goes (modulo [`REMOVED`]).
    removed_next: AtomicU64,
    /// Bit `i`: entry `i` may have no user left, for the next holder of the lock to look
    /// at (see [`Directory::sweep`]).
    unused: AtomicU64,
}

/// The bit of entry `i` in [`DirHead::unused`].
fn bit(i: usize) -> u64 {
    1u64.checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// Marks entry `i` of `head` as possibly unused. Release: a holder of the lock that sees
/// the mark (acquire) sees the user count that caused it.
fn mark_unused(head: &DirHead, i: usize) {
    head.unused.fetch_or(bit(i), Ordering::Release);
}

/// Removed pipe names the directory remembers.
const REMOVED: usize = 16;

// SAFETY: repr(C) of atomics only; any bits are a valid (if meaningless) entry.
unsafe impl Shared for Entry {}
// SAFETY: repr(C) of atomics, a ShmMutex and an array of Entry, all valid for any bits.
unsafe impl Shared for DirHead {}

/// One pipe as the directory lists it: a snapshot, not a handle.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The pipe's name.
    pub name: PipeName,
    /// Its block's offset in the region.
    pub offset: Offset,
    /// Its counters when listed.
    pub stats: PipeStats,
    /// Sides attached to it.
    pub users: u64,
    /// Whether it outlives its last user.
    pub persist: bool,
    /// The thread holding its lock when listed, if any.
    pub lock_owner: Option<crate::sync::Owner>,
}

/// How [`Directory::create_pipe`] makes a pipe.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PipeSpec {
    /// Slots of a new pipe.
    pub(crate) capacity: u64,
    /// Open a live pipe of the name instead of failing.
    pub(crate) reattach: bool,
    /// Keep the pipe when its last user goes.
    pub(crate) persist: bool,
    /// Send a dead receiver's values back into the pipe.
    pub(crate) redeliver: bool,
    /// One sending and one receiving handle at a time (a lane, without a lock).
    pub(crate) one_to_one: bool,
}

/// A region's pipe directory.
#[derive(Clone, Debug)]
pub struct Directory {
    pool: Pool,
    off: Offset,
}

impl Directory {
    /// Allocates and formats a directory in `pool`, with the names directory it links to,
    /// and points the region's root word at it. Called by the creator before the region is
    /// published.
    pub(crate) fn format(pool: &Pool) -> Result<Directory, SidesError> {
        let names = super::names::format(pool)?;
        let len = size_of::<DirHead>() as u64;
        // The directory lives as long as the region: its block is never given back.
        let off = pool.alloc_block(len, 64)?.into_offset();
        let region = pool.region();
        for w in region.at_slice::<AtomicU64>(off, len / 8)? {
            w.store(0, Ordering::Relaxed);
        }
        let head: &DirHead = region.at(off)?;
        head.names.store(names.get(), Ordering::Relaxed);
        head.magic.store(DIR_MAGIC, Ordering::Release);
        region.root().store(off.get(), Ordering::Release);
        Ok(Directory {
            pool: pool.clone(),
            off,
        })
    }

    /// Opens the directory of `pool`'s region.
    ///
    /// # Errors
    ///
    /// [`SidesError::NoDirectory`] if the region has none.
    pub fn open(pool: &Pool) -> Result<Directory, SidesError> {
        let region = pool.region();
        let off = Offset::new(region.root().load(Ordering::Acquire));
        let no_dir = || SidesError::NoDirectory(region.name().to_string());
        if off.is_null() {
            return Err(no_dir());
        }
        let head: &DirHead = region.at(off).map_err(|_| no_dir())?;
        if head.magic.load(Ordering::Acquire) != DIR_MAGIC {
            return Err(no_dir());
        }
        Ok(Directory {
            pool: pool.clone(),
            off,
        })
    }

    fn head(&self) -> Result<&DirHead, SidesError> {
        Ok(self.pool.region().at(self.off)?)
    }

    /// The offset of the region's names directory (unchecked: see `names::check`).
    pub(crate) fn names_block(&self) -> Result<Offset, SidesError> {
        Ok(Offset::new(self.head()?.names.load(Ordering::Relaxed)))
    }

    /// Locks the directory (until `deadline`, if given), re-checking every entry if a
    /// holder died, and removes the entries of pipes nobody uses or keeps. Returns the
    /// offsets of the pipes so removed, whose references the caller gives up after
    /// unlocking ([`release_removed`](Self::release_removed)).
    fn lock<'a>(
        &self,
        head: &'a DirHead,
        deadline: Option<Instant>,
    ) -> Result<(ShmMutexGuard<'a>, Vec<Offset>), SidesError> {
        let mut g = super::wait::lock_until(&head.lock, deadline, || {
            format!("the pipe directory of region {}", self.pool.region().name())
        })?;
        if g.owner_died() {
            // The dead holder may have been between a decrement and its mark: look at all.
            head.unused.store(u64::MAX, Ordering::Relaxed);
            for e in &head.entries {
                let state = e.state.load(Ordering::Relaxed);
                // SAFETY: a live entry's reference keeps its pipe alive, and entries change
                // only under the lock, which is held.
                let ok = state == FREE
                    || (state == LIVE
                        && unsafe {
                            Pipe::open(&self.pool, Offset::new(e.pipe.load(Ordering::Relaxed)))
                        }
                        .is_ok()
                        && PipeName::from_words(&words(e)).is_some());
                if !ok {
                    e.state.store(FREE, Ordering::Relaxed);
                }
            }
            g.mark_consistent();
        }
        let removed = self.sweep(head);
        Ok((g, removed))
    }

    /// Removes the entries of pipes that nobody uses, that are not kept, and that hold no
    /// value (a pipe with values in it stays, for a reader that comes later); their
    /// offsets. Only the entries marked in [`DirHead::unused`] are looked at: an entry's
    /// users fall to 0 only by [`take_user`], which marks it, or under a holder that
    /// died, after which every entry is marked. A marked entry that keeps values, or
    /// does not check out, stays marked for the next holder.
    fn sweep(&self, head: &DirHead) -> Vec<Offset> {
        let mut removed = Vec::new();
        // Acquire: pairs with `mark_unused`. A mark made after this swap stays set for the
        // next holder.
        let mut marked = head.unused.swap(0, Ordering::AcqRel);
        let mut again = 0;
        while marked != 0 {
            let i = marked.trailing_zeros() as usize;
            marked &= marked.wrapping_sub(1);
            let Some(e) = head.entries.get(i) else { break };
            if e.state.load(Ordering::Relaxed) != LIVE
                || e.users.load(Ordering::Relaxed) != 0
                || e.flags.load(Ordering::Relaxed) & PERSIST != 0
            {
                continue;
            }
            if self.open_entry(e).is_ok_and(|p| p.is_empty()) {
                removed.push(Self::unlist(head, e));
            } else {
                again |= bit(i);
            }
        }
        if again != 0 {
            head.unused.fetch_or(again, Ordering::Relaxed);
        }
        removed
    }

    /// Frees entry `e` (under the lock), remembers its name as removed, and returns the
    /// offset of its pipe, whose reference the caller gives up after unlocking.
    fn unlist(head: &DirHead, e: &Entry) -> Offset {
        e.state.store(FREE, Ordering::Relaxed);
        let at = head.removed_next.fetch_add(1, Ordering::Relaxed) as usize % REMOVED;
        for (w, n) in words(e).iter().zip(&head.removed[at]) {
            n.store(*w, Ordering::Relaxed);
        }
        Self::changed(head);
        Offset::new(e.pipe.load(Ordering::Relaxed))
    }

    /// Removes the pipe `name` from the directory, whatever it holds: the values still in
    /// it are dropped once no handle to it is left. Returns whether there was one. Waits
    /// for the directory lock until `deadline`.
    ///
    /// # Errors
    ///
    /// [`SidesError::Timeout`] if a live thread holds the directory lock past `deadline`.
    pub fn remove(&self, name: &PipeName, deadline: Option<Instant>) -> Result<bool, SidesError> {
        let head = self.head()?;
        let (g, mut removed) = self.lock(head, deadline)?;
        let found = Self::find(head, name).map(|i| Self::unlist(head, &head.entries[i]));
        drop(g);
        removed.extend(found);
        self.release_removed(removed);
        Ok(found.is_some())
    }

    /// Whether a pipe of this name was among the last ones removed (and is not back).
    pub fn was_removed(&self, name: &PipeName) -> Result<bool, SidesError> {
        let head = self.head()?;
        let want = name.words();
        Ok(head.removed.iter().any(|r| {
            want.iter()
                .zip(r)
                .all(|(w, n)| *w == n.load(Ordering::Relaxed))
        }))
    }

    /// Gives up the references the removed entries held (after the lock is released:
    /// the last one destroys its pipe, which drops the values still in it).
    fn release_removed(&self, removed: Vec<Offset>) {
        for off in removed {
            // SAFETY: the entry that listed `off` held one reference and was just made
            // free under the lock, so this is the only release of that reference.
            let _ = unsafe { Pipe::release_listed(&self.pool, off) };
        }
    }

    /// Runs `f` under the directory lock (taken by `deadline`), then gives up the
    /// references of the entries the lock's sweep removed.
    fn with_lock<R>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&DirHead) -> Result<R, SidesError>,
    ) -> Result<R, SidesError> {
        let head = self.head()?;
        let (g, removed) = self.lock(head, deadline)?;
        let r = f(head);
        drop(g);
        self.release_removed(removed);
        r
    }

    fn find(head: &DirHead, name: &PipeName) -> Option<usize> {
        let want = name.words();
        head.entries.iter().position(|e| {
            e.state.load(Ordering::Relaxed) == LIVE
                && want
                    .iter()
                    .zip(&e.name)
                    .all(|(w, n)| *w == n.load(Ordering::Relaxed))
        })
    }

    fn changed(head: &DirHead) {
        Self::generation_of(head).bump();
    }

    fn generation_of(head: &DirHead) -> Generation<'_> {
        Generation::new(&head.generation, &head.sleepers)
    }

    /// A handle to the live pipe in entry `i` (under the lock).
    fn open_entry(&self, e: &Entry) -> Result<Pipe, SidesError> {
        // SAFETY: the entry is live and the lock is held: its reference keeps the pipe
        // alive for the call.
        Ok(unsafe { Pipe::open(&self.pool, Offset::new(e.pipe.load(Ordering::Relaxed))) }?)
    }

    /// Creates the pipe `name` with `capacity` slots, or with `reattach` opens the live
    /// pipe of that name. Either way the caller becomes one of its users. Waits for the
    /// directory lock until `deadline` (none: as long as a live thread holds it).
    pub(crate) fn create_pipe(
        &self,
        name: &PipeName,
        spec: PipeSpec,
        deadline: Option<Instant>,
        user: Option<LedgerEntry<'_>>,
    ) -> Result<(Pipe, usize), SidesError> {
        let PipeSpec {
            capacity,
            reattach,
            persist,
            redeliver,
            one_to_one,
        } = spec;
        let started = Instant::now();
        self.with_lock(deadline, |head| {
            if let Some(i) = Self::find(head, name) {
                if !reattach {
                    return Err(SidesError::PipeExists(name.to_string()));
                }
                let e = &head.entries[i];
                let pipe = self.open_entry(e)?;
                self.count_user(e, user, || {
                    e.users.fetch_add(1, Ordering::Relaxed);
                });
                return Ok((pipe, i));
            }
            let i = head
                .entries
                .iter()
                .position(|e| e.state.load(Ordering::Relaxed) == FREE)
                .ok_or(SidesError::DirectoryFull(MAX_PIPES))?;
            let pipe = Pipe::create_by(
                &self.pool,
                capacity,
                PipeKind {
                    kept: persist,
                    redeliver,
                    one_to_one,
                },
                deadline,
            )
            .map_err(|e| match e {
                PipeError::Alloc(AllocError::TimedOut) => SidesError::Timeout {
                    what: format!(
                        "the pool of region {} (its lock is held by a live thread)",
                        self.pool.region().name()
                    ),
                    waited: started.elapsed(),
                },
                e => e.into(),
            })?;
            let e = &head.entries[i];
            for (w, n) in name.words().iter().zip(&e.name) {
                n.store(*w, Ordering::Relaxed);
            }
            // The entry's own reference.
            e.pipe
                .store(pipe.clone().into_listed().get(), Ordering::Relaxed);
            self.count_user(e, user, || e.users.store(1, Ordering::Relaxed));
            e.flags
                .store(if persist { PERSIST } else { 0 }, Ordering::Relaxed);
            // The entry becomes live last: a holder dying before this leaves a free entry
            // (and a leaked pipe block), never a live entry without a pipe.
            crate::fault::pause_point("dir.create.filled");
            e.state.store(LIVE, Ordering::Relaxed);
            Self::changed(head);
            Ok((pipe, i))
        })
    }

    /// Opens the live pipe `name`, if there is one, and counts the caller as a user.
    /// Waits for the directory lock until `deadline`.
    pub(crate) fn open_pipe(
        &self,
        name: &PipeName,
        deadline: Option<Instant>,
        user: Option<LedgerEntry<'_>>,
    ) -> Result<Option<(Pipe, usize)>, SidesError> {
        self.with_lock(deadline, |head| {
            let Some(i) = Self::find(head, name) else {
                return Ok(None);
            };
            let e = &head.entries[i];
            let pipe = self.open_entry(e)?;
            self.count_user(e, user, || {
                e.users.fetch_add(1, Ordering::Relaxed);
            });
            Ok(Some((pipe, i)))
        })
    }

    /// Counts a user of entry `e` by `change`, recorded in the caller's ledger entry
    /// `user` (if any) as the directory entry and its pipe.
    fn count_user(&self, e: &Entry, user: Option<LedgerEntry<'_>>, change: impl FnOnce()) {
        if let Some(u) = user {
            let at = self.pool.region().offset_of(e).map_or(0, |o| o.get());
            u.set(E_PIPE, e.pipe.load(Ordering::Relaxed));
            u.set(E_AUX, at);
            u.set(E_INDEX, 0);
            u.set_kind(LedgerKind::DirUser);
        }
        crate::queue::count_change(user, flags::HELD_REF, true, change);
    }

    /// Takes back a user count of the pipe at `pipe` listed in the entry at `at` that a
    /// dead process held (a reclaimer). Nothing if the entry no longer lists that pipe.
    pub(crate) fn give_back_user(&self, at: Offset, pipe: Offset) -> Result<(), SidesError> {
        let head = self.head()?;
        let Some(i) = self.entry_at(head, at) else {
            return Ok(());
        };
        let e = &head.entries[i];
        if e.state.load(Ordering::Relaxed) != LIVE || e.pipe.load(Ordering::Relaxed) != pipe.get() {
            return Ok(());
        }
        let was = take_user(head, i);
        self.remove_if_unused(head, e, was);
        Ok(())
    }

    /// The index of the entry at offset `at`, if one is there.
    fn entry_at(&self, head: &DirHead, at: Offset) -> Option<usize> {
        head.entries
            .iter()
            .position(|e| self.pool.region().offset_of(e) == Some(at))
    }

    /// Marks the entry at `at` for the next holder of the lock to look at: a process died
    /// holding a user count of it, perhaps between taking the count off and marking it.
    pub(crate) fn mark_entry(&self, at: Offset) -> Result<(), SidesError> {
        let head = self.head()?;
        if let Some(i) = self.entry_at(head, at) {
            mark_unused(head, i);
        }
        Ok(())
    }

    /// A handle to the live pipe `name`, if there is one, without counting the caller as
    /// a user (for monitors such as the harness). Waits for the lock until `deadline`.
    ///
    /// # Errors
    ///
    /// [`SidesError::Timeout`] if a live thread holds the directory lock past `deadline`;
    /// a region or pipe error if the entry does not check out.
    pub fn pipe(
        &self,
        name: &PipeName,
        deadline: Option<Instant>,
    ) -> Result<Option<Pipe>, SidesError> {
        self.with_lock(deadline, |head| match Self::find(head, name) {
            Some(i) => self.open_entry(&head.entries[i]).map(Some),
            None => Ok(None),
        })
    }

    /// The caller stops using the pipe in entry `slot`: one user fewer, counted without
    /// the lock. A pipe left with no user that is not kept is removed at once if the lock
    /// comes within a short bound, else by the next holder of the lock.
    pub(crate) fn release(
        &self,
        slot: usize,
        pipe: &Pipe,
        user: Option<LedgerEntry<'_>>,
    ) -> Result<(), SidesError> {
        let head = self.head()?;
        let e = head
            .entries
            .get(slot)
            .ok_or(SidesError::Corrupted("slot out of range"))?;
        if e.state.load(Ordering::Relaxed) != LIVE
            || e.pipe.load(Ordering::Relaxed) != pipe.offset().get()
        {
            // Removed by a repair meanwhile: nothing of ours left there.
            return Ok(());
        }
        let mut was = 0;
        crate::queue::count_change(user, flags::HELD_REF, false, || {
            was = take_user(head, slot);
        });
        self.remove_if_unused(head, e, was);
        Ok(())
    }

    /// After a user count of entry `e` went from `was`: a pipe left with no user that is
    /// not kept is removed by the lock's sweep if the lock comes within [`DROP_WAIT`], else
    /// by the next holder of the lock.
    fn remove_if_unused(&self, head: &DirHead, e: &Entry, was: u64) {
        if was == 1 && e.flags.load(Ordering::Relaxed) & PERSIST == 0 {
            if let Ok((g, removed)) = self.lock(head, Some(Instant::now() + DROP_WAIT)) {
                drop(g);
                self.release_removed(removed);
            }
        }
    }

    /// The generation word's value now; see [`wait_change`](Self::wait_change).
    pub fn generation(&self) -> Result<u32, SidesError> {
        Ok(Self::generation_of(self.head()?).get())
    }

    /// Sleeps until the directory changes from generation `seen`, or `timeout` passes.
    pub fn wait_change(&self, seen: u32, timeout: Duration) -> Result<(), SidesError> {
        Self::generation_of(self.head()?).wait_change(seen, Some(timeout));
        Ok(())
    }

    /// The live pipes, in directory order, as snapshots. Entries that do not check out are
    /// skipped. Waits for the directory lock until `deadline`.
    ///
    /// # Errors
    ///
    /// [`SidesError::Timeout`] if a live thread holds the directory lock past `deadline`.
    pub fn list(&self, deadline: Option<Instant>) -> Result<Vec<DirEntry>, SidesError> {
        self.with_lock(deadline, |head| {
            Ok(head
                .entries
                .iter()
                .filter(|e| e.state.load(Ordering::Relaxed) == LIVE)
                .filter_map(|e| {
                    let pipe = self.open_entry(e).ok()?;
                    Some(DirEntry {
                        name: PipeName::from_words(&words(e))?,
                        offset: pipe.offset(),
                        stats: pipe.stats().ok()?,
                        users: e.users.load(Ordering::Relaxed),
                        persist: e.flags.load(Ordering::Relaxed) & PERSIST != 0,
                        lock_owner: pipe.lock_owner(),
                    })
                })
                .collect())
        })
    }
}

fn words(e: &Entry) -> [u64; 8] {
    let mut w = [0u64; 8];
    for (o, n) in w.iter_mut().zip(&e.name) {
        *o = n.load(Ordering::Relaxed);
    }
    w
}

/// Takes one user count off entry `i` of `head` (never below 0), marking the entry if that
/// leaves it without users; returns the count before.
fn take_user(head: &DirHead, i: usize) -> u64 {
    let Some(e) = head.entries.get(i) else {
        return 0;
    };
    let was = e
        .users
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| u.checked_sub(1))
        .unwrap_or(0);
    if was == 1 {
        crate::fault::pause_point("dir.release.counted");
        mark_unused(head, i);
    }
    was
}
