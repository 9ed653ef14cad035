//! The process registry: a slot for each process attached to a region, and a liveness
//! signal the kernel releases when the process dies.
//!
//! A region holds, right after its header, a table of slots (how many:
//! [`CreateOptions::registry`](super::CreateOptions::registry)). A process that attaches
//! claims a free slot and takes an open-file-description lock (`F_OFD_SETLK`) on one byte
//! of the region file that stands for the slot (far past the file's end: such bytes need
//! not exist). The kernel drops the lock when the last reference to that open file goes,
//! which a killed process cannot prevent, so another process tells a live slot from a
//! dead one with `F_OFD_GETLK`, without `/proc` and across pid namespaces (the lock is on
//! the file, not on a pid), as LMDB's reader table and iceoryx2's node files do.
//!
//! # A slot
//!
//! | word | meaning |
//! |---|---|
//! | 0 | state (low byte: free, claiming, live, reclaiming) and incarnation (the rest): one compare-and-swap moves both |
//! | 1 | pid (as the process sees itself) |
//! | 2 | start-time key (see `sync::process_start_key`) |
//! | 3 | pid namespace (inode of `/proc/self/ns/pid`, 0 if unknown) |
//! | 4, 5 | the layers above's words: where the process's holdings are listed |
//! | 6 | when it attached (ns since the epoch) |
//! | 7 | while reclaiming: who reclaims (slot + 1, and that slot's incarnation) |
//!
//! # Claiming, leaving, dying
//!
//! A process claims a slot by moving it from free to claiming (incarnation + 1), then takes
//! the slot's lock, fills in who it is and moves it to live. Leaving normally, it moves the
//! slot back to free before its descriptor closes. A slot that is claiming or live while
//! its lock is free belongs to a dead process: a survivor moves it to reclaiming, naming
//! itself as the reclaimer (one compare-and-swap, so only one survivor reclaims it), lets
//! the layers above give back what the dead process held, and frees it. A reclaimer that
//! dies in turn leaves the slot reclaiming under a dead reclaimer, which the next
//! survivor takes over: giving back is written to be repeatable. A claimer that lost its
//! slot to a survivor (it had not taken the lock yet) drops the lock and claims another.
//!
//! A child forked by a registered process shares its parent's open file, and so its
//! lock: while such a child runs, its parent's slot counts as alive.

use std::os::fd::AsRawFd;

use nix::fcntl::{fcntl, FcntlArg};

use super::error::RegionError;
use super::header::HEADER_SIZE;
use super::mapping::Region;
use super::offset::Offset;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::slots::{self, reclaimer_id, SlotTable, CLAIMING, FREE, LIVE, RECLAIMING};

/// Slots a region of at least 2 MiB gets by default: enough for hundreds of processes.
pub const DEFAULT_SLOTS: u32 = 512;
/// The most slots a registry may have.
pub const MAX_SLOTS: u32 = 1 << 16;

/// The default number of slots for a region of `size` bytes: one per 4 KiB, between 16
/// and [`DEFAULT_SLOTS`], so the registry takes at most about 1.6% of a small region; in a
/// region too small for 16, as many as fit beside the header and a cache line (none in the
/// smallest).
pub(crate) fn default_slots(size: u64) -> u32 {
    let want = (size / 4096).clamp(16, u64::from(DEFAULT_SLOTS));
    let room = size.saturating_sub(HEADER_SIZE + 64 + HEAD_BYTES) / SLOT_BYTES;
    want.min(room) as u32
}

/// "SHMREG01", little-endian: a formatted registry.
const REGISTRY_MAGIC: u64 = u64::from_le_bytes(*b"SHMREG01");
/// Bytes of the registry's head, before the slots.
const HEAD_BYTES: u64 = 128;
/// Bytes of a slot: one cache line.
const SLOT_BYTES: u64 = 64;
/// How long attaching retries a free slot whose lock is still held (see
/// `Region::register`).
const FREE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(200);
/// The lock byte of slot `i` is `LOCK_BASE + i`: far past any region's end.
const LOCK_BASE: i64 = 1 << 62;

/// Head words: the magic, the slot count, slots reclaimed so far, the layers above's
/// words (from [`H_DATA`] on), and the slots' high-water mark.
const H_MAGIC: usize = 0;
const H_SLOTS: usize = 1;
const H_RECLAIMED: usize = 2;
/// The first of the head words the layers above keep (their totals of what recovery gave
/// back): [`HEAD_DATA_WORDS`] of them.
const H_DATA: usize = 3;
/// Head words the layers above keep.
pub(crate) const HEAD_DATA_WORDS: usize = 12;
/// One more than the highest slot any process has tried to claim (raised before the
/// claim): the slots past it have never been taken, and the scans stop there. 0 in a
/// registry made without it: the scans then read every slot.
const H_HIGH: usize = 15;
const _: () = assert!(H_DATA + HEAD_DATA_WORDS <= H_HIGH && H_HIGH < (HEAD_BYTES / 8) as usize);

/// Slot words (see the module docs).
const W_STATE: usize = 0;
const W_PID: usize = 1;
const W_START: usize = 2;
const W_PID_NS: usize = 3;
/// The first of the layers above's words.
const W_DATA: usize = 4;
/// Words the layers above keep in a slot.
pub(crate) const SLOT_DATA_WORDS: usize = 2;
const W_ATTACHED: usize = 6;
const W_RECLAIMER: usize = 7;

/// Bytes a registry of `slots` slots takes after the header.
pub(crate) fn registry_bytes(slots: u32) -> u64 {
    if slots == 0 {
        0
    } else {
        HEAD_BYTES + u64::from(slots) * SLOT_BYTES
    }
}

/// A slot's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// Being claimed by a process that has not taken its lock yet (or died doing so).
    Claiming,
    /// A process's.
    Live,
    /// A survivor is giving back what the slot's dead process held.
    Reclaiming,
}

/// A slot as [`Region::slots`] saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// Its index.
    pub index: u32,
    /// Its state.
    pub state: SlotState,
    /// How many times it has been claimed.
    pub incarnation: u64,
    /// Whether its lock is held: its process lives (always `true` for this handle's own).
    pub alive: bool,
    /// Whether it is this handle's own slot.
    pub own: bool,
    /// The process's pid, as it sees itself.
    pub pid: u32,
    /// Its start-time key.
    pub start_key: u64,
    /// Its pid namespace (0 if unknown).
    pub pid_ns: u64,
    /// When it attached, in ns since the epoch.
    pub attached_ns: u64,
    /// The layers above's words.
    pub data: [u64; SLOT_DATA_WORDS],
}

/// This handle's slot in a region, held for as long as the handle lives.
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) slot: u32,
    pub(crate) incarnation: u64,
}

/// A dead process's slot that this handle now reclaims (see `Region::claim_dead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadSlot {
    /// The slot's index.
    pub index: u32,
    /// Its incarnation (what the dead process claimed).
    pub incarnation: u64,
    /// The dead process's pid, as it saw itself.
    pub pid: u32,
    /// The key of its start time (see `sync::process_start_key`; 0 unknown).
    pub start_key: u64,
}

fn lock_arg(slot: u32, kind: libc::c_short) -> libc::flock {
    // SAFETY: flock is a plain C struct of integers, for which all-zero bytes are valid.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = LOCK_BASE + i64::from(slot);
    fl.l_len = 1;
    fl
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Whether the registry of the region file `file` (read, not mapped; `slots` as its
/// header says) has a slot whose lock is held: a process is attached. A slot that cannot
/// be read or tested counts as live.
pub(super) fn file_has_live_process(file: &std::fs::File, slots: u32) -> bool {
    use std::os::unix::fs::FileExt;
    (0..slots.min(MAX_SLOTS)).any(|i| {
        let at = HEADER_SIZE + HEAD_BYTES + u64::from(i) * SLOT_BYTES;
        let mut word = [0u8; 8];
        if file.read_exact_at(&mut word, at).is_err() {
            return true;
        }
        if u64::from_ne_bytes(word) & 0xff == FREE {
            return false;
        }
        let mut fl = lock_arg(i, libc::F_WRLCK as _);
        match fcntl(file.as_raw_fd(), FcntlArg::F_OFD_GETLK(&mut fl)) {
            Ok(_) => fl.l_type != libc::F_UNLCK as libc::c_short,
            Err(_) => true,
        }
    })
}

impl Region {
    /// Slots of this region's registry (0: it has none).
    pub fn registry_slots(&self) -> u32 {
        self.registry_slots
    }

    /// The registry's head words, if the region has a registry.
    fn registry_head(&self) -> Option<&[AtomicU64]> {
        if self.registry_slots == 0 {
            return None;
        }
        self.at_slice::<AtomicU64>(Offset::new(HEADER_SIZE), HEAD_BYTES / 8)
            .ok()
    }

    /// The words the layers above keep in the registry's head (zero at creation).
    pub(crate) fn registry_data(&self) -> Option<&[AtomicU64]> {
        Some(&self.registry_head()?[H_DATA..H_DATA + HEAD_DATA_WORDS])
    }

    /// The words of slot `i`.
    /// The slots not free now, for the scans that look for dead processes (a free slot
    /// holds nobody to reclaim): up to the high-water mark ([`H_HIGH`]), the table resolved
    /// once and each state word read once, so a scan of a registry with few processes
    /// costs little more than its loads. A slot claimed after the mark or its word was
    /// read is seen by the next scan, as with any scan.
    fn taken_slots(&self) -> impl Iterator<Item = u32> + '_ {
        let words = (SLOT_BYTES / 8) as usize;
        let all = self
            .at_slice::<AtomicU64>(
                Offset::new(HEADER_SIZE + HEAD_BYTES),
                u64::from(self.registry_slots) * (SLOT_BYTES / 8),
            )
            .ok();
        let high = self
            .registry_head()
            .map_or(0, |h| h[H_HIGH].load(Ordering::Acquire));
        let end = match u32::try_from(high) {
            Ok(h) if h != 0 => h.min(self.registry_slots),
            _ => self.registry_slots,
        };
        (0..end).filter(move |&i| {
            // Unresolvable: let the slot's own checks decide.
            all.and_then(|a| a.get(i as usize * words + W_STATE))
                .is_none_or(|w| w.load(Ordering::Acquire) & 0xff != slots::FREE)
        })
    }

    fn slot_words(&self, i: u32) -> Option<&[AtomicU64]> {
        if i >= self.registry_slots {
            return None;
        }
        let at = HEADER_SIZE + HEAD_BYTES + u64::from(i) * SLOT_BYTES;
        self.at_slice::<AtomicU64>(Offset::new(at), SLOT_BYTES / 8)
            .ok()
    }

    /// Writes a fresh registry's head (the creator, before publishing).
    pub(super) fn format_registry(&self) {
        if let Some(h) = self.registry_head() {
            h[H_SLOTS].store(u64::from(self.registry_slots), Ordering::Relaxed);
            h[H_MAGIC].store(REGISTRY_MAGIC, Ordering::Release);
        }
    }

    /// Checks an attached region's registry head.
    pub(super) fn check_registry(&self) -> Result<(), RegionError> {
        let Some(h) = self.registry_head() else {
            return Ok(());
        };
        if h[H_MAGIC].load(Ordering::Acquire) != REGISTRY_MAGIC
            || h[H_SLOTS].load(Ordering::Relaxed) != u64::from(self.registry_slots)
        {
            return Err(RegionError::Corrupted {
                name: self.name.to_string(),
                what: "the process registry's head does not check out".into(),
            });
        }
        Ok(())
    }

    /// Claims a slot of the registry for this handle (see the module docs). Does nothing
    /// for a region without a registry or a handle already registered.
    ///
    /// # Errors
    ///
    /// [`RegionError::RegistryFull`] when every slot is taken by a live process.
    pub(super) fn register(&self) -> Result<(), RegionError> {
        if self.registry_slots == 0 || self.registration.get().is_some() {
            return Ok(());
        }
        // A dead process's slot is free again once a survivor has reclaimed it. A free
        // slot's lock may still be held for a moment by a process that just left (or by
        // a child forked, between its fork and its exec, by any process that had the
        // file open): such slots are tried again for a while before the registry counts
        // as full.
        let give_up = std::time::Instant::now() + FREE_LOCK_WAIT;
        loop {
            for i in 0..self.registry_slots {
                if let Some(reg) = self.try_claim(i) {
                    let _ = self.registration.set(reg);
                    return Ok(());
                }
            }
            let free_but_locked = (0..self.registry_slots).any(|i| {
                self.slot_words(i)
                    .is_some_and(|w| w[W_STATE].load(Ordering::Acquire) & 0xff == FREE)
            });
            if !free_but_locked || std::time::Instant::now() >= give_up {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(RegionError::RegistryFull {
            name: self.name.to_string(),
            slots: self.registry_slots,
        })
    }

    fn try_claim(&self, i: u32) -> Option<Registration> {
        let w = self.slot_words(i)?;
        if let Some(h) = self.registry_head() {
            // Before the claim, so that a scan that sees the slot taken scans that far.
            h[H_HIGH].fetch_max(u64::from(i) + 1, Ordering::AcqRel);
        }
        let inc = slots::claim(&Table(self), i, || {
            let pid = std::process::id();
            w[W_PID].store(u64::from(pid), Ordering::Relaxed);
            w[W_START].store(
                crate::sync::process_start_key(pid).unwrap_or(0),
                Ordering::Relaxed,
            );
            w[W_PID_NS].store(super::liveness::own_pid_ns(), Ordering::Relaxed);
            w[W_ATTACHED].store(now_ns(), Ordering::Relaxed);
        })?;
        Some(Registration {
            slot: i,
            incarnation: inc,
        })
    }

    /// This handle's slot, if it registered (and was made in this process: a forked
    /// child's copy of a handle has no slot of its own).
    #[inline]
    pub fn process_slot(&self) -> Option<u32> {
        if !self.made_in_this_process() {
            return None;
        }
        self.registration.get().map(|r| r.slot)
    }

    /// The layers above's words of this handle's slot (see the module docs).
    pub(crate) fn own_slot_data(&self) -> Option<&[AtomicU64]> {
        let slot = self.process_slot()?;
        Some(&self.slot_words(slot)?[W_DATA..W_DATA + SLOT_DATA_WORDS])
    }

    /// The layers above's words of a slot this handle reclaims.
    pub(crate) fn dead_slot_data(&self, dead: &DeadSlot) -> Option<&[AtomicU64]> {
        Some(&self.slot_words(dead.index)?[W_DATA..W_DATA + SLOT_DATA_WORDS])
    }

    /// Whether slot `i`'s lock is held by some open file (this handle's own slot: yes).
    fn slot_locked(&self, i: u32) -> bool {
        if self.process_slot() == Some(i) {
            return true;
        }
        let mut fl = lock_arg(i, libc::F_WRLCK as _);
        match fcntl(self.file.as_raw_fd(), FcntlArg::F_OFD_GETLK(&mut fl)) {
            Ok(_) => fl.l_type != libc::F_UNLCK as libc::c_short,
            // Unknown means alive: never reclaim what a live process may hold.
            Err(_) => true,
        }
    }

    /// A snapshot of the registry's slots that are not free.
    pub fn slots(&self) -> Vec<SlotInfo> {
        let own = self.process_slot();
        let mut out = Vec::new();
        for i in 0..self.registry_slots {
            let Some(w) = self.slot_words(i) else { break };
            let s = w[W_STATE].load(Ordering::Acquire);
            let state = match s & 0xff {
                CLAIMING => SlotState::Claiming,
                LIVE => SlotState::Live,
                RECLAIMING => SlotState::Reclaiming,
                _ => continue,
            };
            let mut data = [0; SLOT_DATA_WORDS];
            for (d, w) in data.iter_mut().zip(&w[W_DATA..W_DATA + SLOT_DATA_WORDS]) {
                *d = w.load(Ordering::Relaxed);
            }
            out.push(SlotInfo {
                index: i,
                state,
                incarnation: s >> 8,
                alive: self.slot_locked(i),
                own: own == Some(i),
                pid: w[W_PID].load(Ordering::Relaxed) as u32,
                start_key: w[W_START].load(Ordering::Relaxed),
                pid_ns: w[W_PID_NS].load(Ordering::Relaxed),
                attached_ns: w[W_ATTACHED].load(Ordering::Relaxed),
                data,
            });
        }
        out
    }

    /// Whether a live process other than through this handle is registered: a region with
    /// one is not stale, whatever happened to its creator.
    pub fn has_live_processes(&self) -> bool {
        self.slots()
            .iter()
            .any(|s| s.alive && !s.own && s.state != SlotState::Reclaiming)
    }

    /// Whether some slot belongs to a dead process and waits to be reclaimed (a scan of
    /// the slots, one `F_OFD_GETLK` per taken slot).
    pub fn has_dead_slots(&self) -> bool {
        let own = self.process_slot();
        self.taken_slots()
            .any(|i| Some(i) != own && slots::dead_state(&Table(self), i).is_some())
    }

    /// Whether what a dead process held may not all be given back yet: a slot of a dead
    /// process waits to be reclaimed, or a survivor is reclaiming one.
    pub fn recovery_pending(&self) -> bool {
        let own = self.process_slot();
        let t = Table(self);
        self.taken_slots().filter(|&i| Some(i) != own).any(|i| {
            slots::dead_state(&t, i).is_some()
                || self
                    .slot_words(i)
                    .is_some_and(|w| w[W_STATE].load(Ordering::Acquire) & 0xff == RECLAIMING)
        })
    }

    /// Claims every slot of a dead process that nobody else reclaims, naming this handle
    /// as its reclaimer, and returns them for the layers above to give back what each
    /// held, then [`finish_reclaim`](Self::finish_reclaim). Needs a registered handle made
    /// in this process; otherwise claims nothing.
    ///
    /// The reclaimer word is taken first (one compare-and-swap from nobody, or from a
    /// reclaimer that is gone), then the state moved to reclaiming: of two survivors only
    /// the one whose swap succeeded goes on, and a survivor that dies between the two
    /// steps leaves a reclaimer word that names a dead handle, which the next one takes.
    pub(crate) fn claim_dead(&self) -> Vec<DeadSlot> {
        let (Some(me), Some(reg)) = (self.process_slot(), self.registration.get()) else {
            return Vec::new();
        };
        let my_id = reclaimer_id(me, reg.incarnation);
        let table = Table(self);
        self.taken_slots()
            .filter(|&i| i != me)
            .filter_map(|i| {
                let incarnation = slots::claim_dead(&table, i, my_id)?;
                let w = self.slot_words(i)?;
                Some(DeadSlot {
                    index: i,
                    incarnation,
                    pid: w[W_PID].load(Ordering::Relaxed) as u32,
                    start_key: w[W_START].load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    /// Ends the reclaiming of `dead`: with `done`, frees the slot (its holdings all given
    /// back, the layers above's words cleared); otherwise leaves it reclaiming with no
    /// reclaimer, so the next survivor tries again.
    pub(crate) fn finish_reclaim(&self, dead: DeadSlot, done: bool) {
        let (Some(me), Some(reg)) = (self.process_slot(), self.registration.get()) else {
            return;
        };
        let my_id = reclaimer_id(me, reg.incarnation);
        if slots::finish(&Table(self), dead.index, dead.incarnation, my_id, done) {
            if let Some(h) = self.registry_head() {
                h[H_RECLAIMED].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Slots reclaimed from dead processes since the region was made.
    pub fn reclaimed_slots(&self) -> u64 {
        self.registry_head()
            .map_or(0, |h| h[H_RECLAIMED].load(Ordering::Relaxed))
    }

    /// Gives this handle's slot back (a normal detach), before the descriptor closes. A
    /// slot whose holdings list is not empty (the layers above left something) stays
    /// live, to be reclaimed like a dead process's once the descriptor is closed.
    pub(super) fn unregister(&self) {
        let Some(r) = self.registration.get() else {
            return;
        };
        let Some(w) = self.slot_words(r.slot) else {
            return;
        };
        if w[W_DATA..W_DATA + SLOT_DATA_WORDS]
            .iter()
            .any(|d| d.load(Ordering::Relaxed) != 0)
        {
            return;
        }
        slots::leave(&Table(self), r.slot, r.incarnation);
    }
}

/// The region's slots, with the file's byte-range locks as their liveness.
struct Table<'a>(&'a Region);

impl SlotTable for Table<'_> {
    fn words(&self, i: u32) -> Option<(&AtomicU64, &AtomicU64)> {
        let w = self.0.slot_words(i)?;
        Some((&w[W_STATE], &w[W_RECLAIMER]))
    }

    fn lock(&self, i: u32) -> bool {
        let fd = self.0.file.as_raw_fd();
        fcntl(fd, FcntlArg::F_OFD_SETLK(&lock_arg(i, libc::F_WRLCK as _))).is_ok()
    }

    fn unlock(&self, i: u32) {
        let fd = self.0.file.as_raw_fd();
        let _ = fcntl(fd, FcntlArg::F_OFD_SETLK(&lock_arg(i, libc::F_UNLCK as _)));
    }

    fn locked(&self, i: u32) -> bool {
        self.0.slot_locked(i)
    }

    fn clear_data(&self, i: u32) {
        if let Some(w) = self.0.slot_words(i) {
            for d in &w[W_DATA..W_DATA + SLOT_DATA_WORDS] {
                d.store(0, Ordering::Relaxed);
            }
        }
    }
}
