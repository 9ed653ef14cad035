//! [`Directory`]: the table in a region that maps pipe names to pipes.
//!
//! The directory is a pool block found through the region's root word. It holds a lock, a
//! generation word that changes (with a futex wake) whenever a pipe is added or removed,
//! so a client waiting for a pipe sleeps instead of polling, and 64 entries:
//!
//! | word  | field                                                |
//! |-------|------------------------------------------------------|
//! | 0     | state: 0 free, 1 live                                |
//! | 1     | offset of the pipe block                             |
//! | 2     | users: sides attached to the pipe                    |
//! | 3     | flags: bit 0, keep the pipe when its last user goes  |
//! | 4..12 | the name, 64 bytes, zero-padded                      |
//!
//! Everything read from the directory is checked: names are re-validated, pipes reopened
//! through [`Pipe::open`], states outside {0, 1} are corruption. A process that dies
//! holding the directory lock leaves at worst a wrong user count (its pipe is then kept);
//! the next locker re-checks every entry and frees those that do not hold a pipe.

use std::mem::size_of;
use std::time::Duration;

use super::error::SidesError;
use super::name::PipeName;
use crate::alloc::Pool;
use crate::queue::Pipe;
use crate::region::{Offset, Shared};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{Os, Platform, ShmMutex, ShmMutexGuard};

/// Pipes one region can hold.
pub const MAX_PIPES: usize = 64;

/// "SHMDIR01", little-endian.
const DIR_MAGIC: u64 = u64::from_le_bytes(*b"SHMDIR01");
const FREE: u64 = 0;
const LIVE: u64 = 1;
const PERSIST: u64 = 1;

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
    _pad: AtomicU32,
    entries: [Entry; MAX_PIPES],
}

// SAFETY: repr(C) of atomics only; any bits are a valid (if meaningless) entry.
unsafe impl Shared for Entry {}
// SAFETY: repr(C) of atomics, a ShmMutex and an array of Entry, all valid for any bits.
unsafe impl Shared for DirHead {}

/// One pipe as the directory lists it.
#[derive(Debug)]
pub struct DirEntry {
    /// The pipe's name.
    pub name: PipeName,
    /// The pipe.
    pub pipe: Pipe,
    /// Sides attached to it.
    pub users: u64,
    /// Whether it outlives its last user.
    pub persist: bool,
}

/// A region's pipe directory.
#[derive(Clone, Debug)]
pub struct Directory {
    pool: Pool,
    off: Offset,
}

impl Directory {
    /// Allocates and formats a directory in `pool` and points the region's root word at
    /// it. Called by the creator before the region is published.
    pub(crate) fn format(pool: &Pool) -> Result<Directory, SidesError> {
        let len = size_of::<DirHead>() as u64;
        let off = pool.alloc(len, 64)?;
        let region = pool.region();
        // SAFETY: the block was just allocated and nobody else knows its offset.
        unsafe { region.bytes_mut(off, len) }?.fill(0);
        let head: &DirHead = region.resolve(off)?;
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
        let head: &DirHead = region.resolve(off).map_err(|_| no_dir())?;
        if head.magic.load(Ordering::Acquire) != DIR_MAGIC {
            return Err(no_dir());
        }
        Ok(Directory {
            pool: pool.clone(),
            off,
        })
    }

    fn head(&self) -> Result<&DirHead, SidesError> {
        Ok(self.pool.region().resolve(self.off)?)
    }

    /// Locks the directory, re-checking every entry if a holder died.
    fn lock<'a>(&self, head: &'a DirHead) -> ShmMutexGuard<'a> {
        let mut g = head.lock.lock();
        if g.owner_died() {
            for e in &head.entries {
                let state = e.state.load(Ordering::Relaxed);
                let ok = state == FREE
                    || (state == LIVE
                        && Pipe::open(&self.pool, Offset::new(e.pipe.load(Ordering::Relaxed)))
                            .is_ok()
                        && PipeName::from_words(&words(e)).is_some());
                if !ok {
                    e.state.store(FREE, Ordering::Relaxed);
                }
            }
            g.mark_consistent();
        }
        g
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
        head.generation.fetch_add(1, Ordering::Release);
        Os::wake(&head.generation, u32::MAX);
    }

    /// Creates the pipe `name` with `capacity` slots, or with `reattach` opens the live
    /// pipe of that name. Either way the caller becomes one of its users.
    pub(crate) fn create_pipe(
        &self,
        name: &PipeName,
        capacity: u64,
        reattach: bool,
        persist: bool,
    ) -> Result<(Pipe, usize), SidesError> {
        let head = self.head()?;
        let _g = self.lock(head);
        if let Some(i) = Self::find(head, name) {
            if !reattach {
                return Err(SidesError::PipeExists(name.to_string()));
            }
            let e = &head.entries[i];
            let pipe = Pipe::open(&self.pool, Offset::new(e.pipe.load(Ordering::Relaxed)))?;
            e.users.fetch_add(1, Ordering::Relaxed);
            return Ok((pipe, i));
        }
        let i = head
            .entries
            .iter()
            .position(|e| e.state.load(Ordering::Relaxed) == FREE)
            .ok_or(SidesError::DirectoryFull(MAX_PIPES))?;
        let pipe = Pipe::create(&self.pool, capacity)?;
        let e = &head.entries[i];
        for (w, n) in name.words().iter().zip(&e.name) {
            n.store(*w, Ordering::Relaxed);
        }
        e.pipe.store(pipe.offset().get(), Ordering::Relaxed);
        e.users.store(1, Ordering::Relaxed);
        e.flags
            .store(if persist { PERSIST } else { 0 }, Ordering::Relaxed);
        // The entry becomes live last: a holder dying before this leaves a free entry (and
        // a leaked pipe block), never a live entry without a pipe.
        e.state.store(LIVE, Ordering::Relaxed);
        Self::changed(head);
        Ok((pipe, i))
    }

    /// Opens the live pipe `name`, if there is one, and counts the caller as a user.
    pub(crate) fn open_pipe(&self, name: &PipeName) -> Result<Option<(Pipe, usize)>, SidesError> {
        let head = self.head()?;
        let _g = self.lock(head);
        let Some(i) = Self::find(head, name) else {
            return Ok(None);
        };
        let e = &head.entries[i];
        let pipe = Pipe::open(&self.pool, Offset::new(e.pipe.load(Ordering::Relaxed)))?;
        e.users.fetch_add(1, Ordering::Relaxed);
        Ok(Some((pipe, i)))
    }

    /// The caller stops using the pipe in entry `slot`. The last user of a pipe not
    /// persisted removes it from the directory and gets it back to destroy.
    pub(crate) fn release(&self, slot: usize, pipe: &Pipe) -> Result<Option<Pipe>, SidesError> {
        let head = self.head()?;
        let _g = self.lock(head);
        let e = head
            .entries
            .get(slot)
            .ok_or(SidesError::Corrupted("slot out of range"))?;
        if e.state.load(Ordering::Relaxed) != LIVE
            || e.pipe.load(Ordering::Relaxed) != pipe.offset().get()
        {
            // Removed by a repair meanwhile: nothing of ours left there.
            return Ok(None);
        }
        let users = e.users.load(Ordering::Relaxed).saturating_sub(1);
        e.users.store(users, Ordering::Relaxed);
        if users == 0 && e.flags.load(Ordering::Relaxed) & PERSIST == 0 {
            e.state.store(FREE, Ordering::Relaxed);
            Self::changed(head);
            return Ok(Some(pipe.clone()));
        }
        Ok(None)
    }

    /// The generation word's value now; see [`wait_change`](Self::wait_change).
    pub fn generation(&self) -> Result<u32, SidesError> {
        Ok(self.head()?.generation.load(Ordering::Acquire))
    }

    /// Sleeps until the directory changes from generation `seen`, or `timeout` passes.
    pub fn wait_change(&self, seen: u32, timeout: Duration) -> Result<(), SidesError> {
        Os::wait(&self.head()?.generation, seen, Some(timeout));
        Ok(())
    }

    /// The live pipes, in directory order. Entries that do not check out are skipped.
    pub fn list(&self) -> Result<Vec<DirEntry>, SidesError> {
        let head = self.head()?;
        let _g = self.lock(head);
        Ok(head
            .entries
            .iter()
            .filter(|e| e.state.load(Ordering::Relaxed) == LIVE)
            .filter_map(|e| {
                Some(DirEntry {
                    name: PipeName::from_words(&words(e))?,
                    pipe: Pipe::open(&self.pool, Offset::new(e.pipe.load(Ordering::Relaxed)))
                        .ok()?,
                    users: e.users.load(Ordering::Relaxed),
                    persist: e.flags.load(Ordering::Relaxed) & PERSIST != 0,
                })
            })
            .collect())
    }
}

fn words(e: &Entry) -> [u64; 8] {
    let mut w = [0u64; 8];
    for (o, n) in w.iter_mut().zip(&e.name) {
        *o = n.load(Ordering::Relaxed);
    }
    w
}
