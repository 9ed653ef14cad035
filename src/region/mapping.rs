//! [`Region`]: a named shared mapping with a validated header; its identity, resolving
//! offsets, and unlinking. Creating, attaching and stale regions are in the sibling
//! modules `create`, `attach` and `stale`.

use std::fs::File;
use std::mem::{align_of, size_of};
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use memmap2::MmapRaw;

use super::error::RegionError;
use super::header::{HEADER_SIZE, MIXED_OFFSET, ROOT_OFFSET, STATE_OFFSET};
use super::name::RegionName;
use super::offset::{Offset, Shared};
use super::registry::Registration;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{LivenessVeto, MadeIn};

/// Largest region accepted: 1 TiB.
pub const MAX_REGION_SIZE: u64 = 1 << 40;

/// A region's identity: 128 random bits chosen at creation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionId(pub [u8; 16]);

impl std::fmt::Debug for RegionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegionId({self})")
    }
}

impl std::fmt::Display for RegionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// What the header of an attached or created region says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// The region's random id.
    pub id: RegionId,
    /// Its maximum size in bytes: what every process maps, and the most it grows to.
    pub size: u64,
    /// The bytes its file held when this snapshot was taken (it grows, never shrinks).
    pub committed: u64,
    /// Its layout version.
    pub version: u32,
    /// The pid of the process that created it.
    pub creator_pid: u32,
    /// That process's start-time key, to tell it from a later process with the same pid.
    pub creator_start: u64,
    /// That process's pid namespace (the inode number of its `/proc/self/ns/pid`; 0 if it
    /// could not read it). Its pid means something only in that namespace.
    pub creator_pid_ns: u64,
    /// Whether a process of another pid namespace than the creator's has attached (as of
    /// this snapshot; once set, it stays set). Then no process sharing the region judges a
    /// lock owner or the creator dead, since `/proc` cannot show them all.
    pub mixed_namespaces: bool,
    /// Slots of the process registry (0: the region has none; see
    /// [`Region::slots`]).
    pub registry_slots: u32,
}

impl RegionInfo {
    /// Whether the creating process may still be running: `false` only when provably
    /// dead, which needs this process in the creator's pid namespace (both known), a
    /// region that is not mixed, and `/proc` showing no such process (or one that started
    /// at another time). Anything unknown counts as alive.
    pub fn creator_alive(&self) -> bool {
        super::liveness::creator_alive(
            self.creator_pid,
            self.creator_start,
            self.creator_pid_ns,
            self.mixed_namespaces,
        )
    }
}

/// A named shared-memory region, mapped into this process.
///
/// The creator builds the region in an unnamed file (or, where the system has none, under
/// a private name), writes and publishes the header, and only then links it under its
/// real name, so nobody ever opens a half-built region under that name. An attacher checks the file (`fstat`: regular, ours, mode,
/// size) and a copy of the header (magic, version, layout fingerprint, size) before it
/// trusts anything, then waits for the ready word.
///
/// Every link inside the region is an [`Offset`], and [`Region::resolve`] is the one place
/// an offset becomes a reference, after a bounds and alignment check. The mapping may sit
/// at a different address in every process.
///
/// The creating handle unlinks the name on drop unless created with
/// [`CreateOptions::persist`](super::CreateOptions::persist); attachers never unlink. Processes still attached keep
/// their mapping after the name is gone.
#[must_use = "dropping the creating handle unlinks the region's name"]
pub struct Region {
    /// Registers the mixed word with this process's lock liveness checks. Declared before
    /// `map` so that it is dropped, and the word unregistered, before the word is unmapped.
    _veto: LivenessVeto,
    pub(super) map: MmapRaw,
    pub(super) name: RegionName,
    pub(super) info: RegionInfo,
    /// (device, inode) of the file, to unlink only our own file.
    pub(super) inode: (u64, u64),
    /// The file's path (`name` under the shared-memory directory), made once.
    pub(super) path: std::path::PathBuf,
    /// Whether this handle created the region.
    pub(super) creator: bool,
    /// 1: unlink the name on drop (a creator, published, not persisted).
    pub(super) unlink_on_drop: AtomicU32,
    /// A child forked from the process that made this handle never unlinks the name.
    made_in: MadeIn,
    /// This handle's id, unique in the process (see [`Region::handle_id`]).
    handle_id: u64,
    /// The region file, open for as long as the handle lives: the registry's liveness
    /// lock is held on its open file description.
    pub(super) file: File,
    /// Slots of the registry (as the header says, checked).
    pub(super) registry_slots: u32,
    /// This handle's slot in the registry, once registered.
    pub(super) registration: OnceLock<Registration>,
    /// The layers above's per-process state for this handle (what they hold), one per
    /// [`ExtLayer`].
    ext: [OnceLock<Box<dyn RegionExt>>; 2],
    /// Set when this process saw a process of the region die (it took over a lock): the
    /// layers above then look for what to give back.
    death_noted: AtomicU32,
    /// The committed size this process has checked the file holds: offsets are resolved
    /// up to here, and past it only once the file is seen to hold them (see
    /// [`Region::len`]).
    pub(super) committed: AtomicU64,
    /// When (`CLOCK_MONOTONIC` nanoseconds) a look at the file last found the name
    /// standing for this region; 0 before the first (see [`Region::is_current_within`]).
    pub(super) current_at: AtomicU64,
}

/// Which layer's state a [`RegionExt`] is: a handle going away tells the higher one
/// first, whose giving back may use the lower one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExtLayer {
    /// The allocator (a process's block cache).
    Alloc = 0,
    /// The ledger (what a process holds).
    Ledger = 1,
}

/// Per-process state the layers above keep with a region handle, told when the handle
/// goes (while the region is still mapped) so it can give back what it keeps there.
pub(crate) trait RegionExt: Send + Sync + 'static {
    /// As `Any`, to find the concrete state again.
    fn as_any(&self) -> &dyn std::any::Any;
    /// The handle is being dropped; the region is still mapped.
    fn detach(&self, region: &Region);
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("name", &self.name)
            .field("id", &self.info.id)
            .field("size", &self.info.size)
            .field("creator", &self.creator)
            .field(
                "unlink_on_drop",
                &(self.unlink_on_drop.load(Ordering::Relaxed) != 0),
            )
            .finish()
    }
}

pub(super) fn io_err(
    op: &'static str,
    name: &RegionName,
    e: impl Into<std::io::Error>,
) -> RegionError {
    RegionError::Io {
        op,
        name: name.to_string(),
        source: e.into(),
    }
}

impl Region {
    /// A handle to the mapped region `map` (at least a header long), whose mixed word is
    /// registered as a liveness veto for as long as the handle lives.
    pub(super) fn from_mapping(
        map: MmapRaw,
        file: File,
        name: RegionName,
        info: RegionInfo,
        inode: (u64, u64),
        creator: bool,
    ) -> Region {
        assert!(map.len() as u64 >= HEADER_SIZE, "a region holds its header");
        let committed = info.committed.clamp(HEADER_SIZE, map.len() as u64);
        // SAFETY: the mapping holds at least HEADER_SIZE bytes (asserted) and is
        // page-aligned, so the mixed word at MIXED_OFFSET lies inside and is aligned for
        // AtomicU32, which is valid for any bits; it is only accessed atomically.
        let word = unsafe { &*map.as_ptr().add(MIXED_OFFSET as usize).cast::<AtomicU32>() };
        // SAFETY: the guard is stored in the handle's `_veto` field, declared before `map`,
        // so it is dropped (and the word unregistered) before `map` unmaps the word.
        let veto = unsafe { crate::sync::add_liveness_veto(word) };
        Region {
            _veto: veto,
            map,
            path: name.file_path(),
            name,
            info,
            inode,
            creator,
            unlink_on_drop: AtomicU32::new(0),
            made_in: MadeIn::this_process(),
            handle_id: crate::sync::unique_id(),
            file,
            registry_slots: info.registry_slots,
            registration: OnceLock::new(),
            ext: [OnceLock::new(), OnceLock::new()],
            death_noted: AtomicU32::new(0),
            committed: AtomicU64::new(committed),
            current_at: AtomicU64::new(0),
        }
    }

    /// A layer's state for this handle, made by `init` on first use.
    pub(crate) fn ext_or_init(
        &self,
        layer: ExtLayer,
        init: impl FnOnce() -> Box<dyn RegionExt>,
    ) -> &dyn RegionExt {
        self.ext[layer as usize].get_or_init(init).as_ref()
    }

    /// Notes that a process of the region died (a lock was taken over from it).
    pub(crate) fn note_death(&self) {
        self.death_noted.store(1, Ordering::Relaxed);
    }

    /// Whether a death was noted since the last call (and clears the note).
    pub(crate) fn take_death_note(&self) -> bool {
        self.death_noted.load(Ordering::Relaxed) != 0
            && self.death_noted.swap(0, Ordering::Relaxed) != 0
    }

    /// Whether this handle was made in the calling process (not inherited by `fork`).
    pub(crate) fn made_in_this_process(&self) -> bool {
        self.made_in.is_this_process()
    }

    /// An id of this handle that no other handle of this process ever has, even one
    /// mapped later at the same address: what per-thread state of a handle is kept by.
    #[inline]
    pub(crate) fn handle_id(&self) -> u64 {
        self.handle_id
    }

    /// The region's name.
    pub fn name(&self) -> &RegionName {
        &self.name
    }

    /// What the header says: id, size, version, creator, and whether the region is shared
    /// across pid namespaces (read now).
    pub fn info(&self) -> RegionInfo {
        RegionInfo {
            mixed_namespaces: self.mixed_word().load(Ordering::SeqCst) != 0,
            committed: self.committed_now(),
            ..self.info
        }
    }

    /// The region's random id.
    pub fn id(&self) -> RegionId {
        self.info.id
    }

    /// The region's committed size: the bytes its file holds, and so the bytes offsets
    /// may reach, as this process last checked. It grows (see [`grow`](Self::grow)),
    /// never shrinks; [`max_len`](Self::max_len) is the most it grows to.
    pub fn len(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// The region's maximum size: what every process maps (address space, not memory), so
    /// that growing moves nothing.
    pub fn max_len(&self) -> u64 {
        self.info.size
    }

    /// Always `false`: a region holds at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether this handle created the region (it then unlinks the name on drop, unless
    /// created with [`CreateOptions::persist`](super::CreateOptions::persist)).
    pub fn is_creator(&self) -> bool {
        self.creator
    }

    /// Unlinks the name now if it still stands for this region's file (a creator's drop
    /// does this unless persisted). Processes that mapped the region keep it. Returns
    /// whether the name was removed; [`try_unlink`](Self::try_unlink) says why not.
    pub fn unlink(&self) -> bool {
        self.try_unlink().unwrap_or(false)
    }

    /// [`unlink`](Self::unlink), reporting a refusal: `Ok(false)` if the name no longer
    /// stands for this region's file.
    ///
    /// # Errors
    ///
    /// [`RegionError::UnlinkDenied`] if the system refuses: in the sticky `/dev/shm` only
    /// the file's owner (or root) may unlink it, which a process that changed its
    /// effective uid since creating the region, or a member of the region's group, is
    /// not. [`RegionError::Io`] otherwise.
    pub fn try_unlink(&self) -> Result<bool, RegionError> {
        self.unlink_on_drop.store(0, Ordering::Relaxed);
        match std::fs::symlink_metadata(&self.path) {
            Ok(now) if (now.dev(), now.ino()) == self.inode => {
                let removed = super::stale::unlink_checked(&self.path, &now, self.name.as_str())?;
                if removed {
                    // Every process holding the region now sees the name gone without
                    // asking the file (see `is_current`).
                    self.mark_removed();
                }
                Ok(removed)
            }
            _ => Ok(false),
        }
    }

    /// First offset past the header and the process registry: where the layers above
    /// start (64-aligned).
    pub fn data_start(&self) -> Offset {
        Offset::new(HEADER_SIZE + super::registry::registry_bytes(self.registry_slots))
    }

    /// The header's root word: the offset of the root object of the layers above
    /// (0 until one is set).
    pub fn root(&self) -> &AtomicU64 {
        // The root word lies inside the header, which every region holds.
        self.at::<AtomicU64>(Offset::new(ROOT_OFFSET))
            .expect("the header is always mapped")
    }

    /// The mixed-namespaces word (see [`RegionInfo::mixed_namespaces`]).
    pub(super) fn mixed_word(&self) -> &AtomicU32 {
        // The mixed word lies inside the header, which every region holds.
        self.at::<AtomicU32>(Offset::new(MIXED_OFFSET))
            .expect("the header is always mapped")
    }

    pub(super) fn state_word(&self) -> &AtomicU32 {
        // The state word lies inside the header, which every region holds.
        self.at::<AtomicU32>(Offset::new(STATE_OFFSET))
            .expect("the header is always mapped")
    }

    #[inline]
    fn check_range(&self, off: Offset, len: u64, align: u64) -> Result<usize, RegionError> {
        match off.get().checked_add(len) {
            Some(end)
                if off.get() % align == 0
                    && (end <= self.committed.load(Ordering::Relaxed)
                        || end <= self.committed_now()) =>
            {
                Ok(off.get() as usize)
            }
            _ => Err(self.bad_offset(off, len, align)),
        }
    }

    #[cold]
    #[inline(never)]
    fn bad_offset(&self, off: Offset, len: u64, align: u64) -> RegionError {
        RegionError::BadOffset {
            offset: off.get(),
            len,
            align,
            size: self.info.size,
        }
    }

    /// A reference to the `T` at `off`, after checking that it lies inside the region and
    /// is aligned for `T`. This, [`at_slice`](Self::at_slice) and
    /// [`at_then_slice`](Self::at_then_slice) are the one place offsets become references.
    ///
    /// Crate-internal: the crate places its atomic structures (headers, cells, locks, ring
    /// slots) only where it never accesses plain bytes, so a reference it makes never
    /// overlaps a string's, an array's or a block's payload while that is read or written
    /// as plain memory. [`resolve`](Self::resolve) is the public, `unsafe` form.
    #[inline]
    pub(crate) fn at<T: Shared>(&self, off: Offset) -> Result<&T, RegionError> {
        let at = self.check_range(off, size_of::<T>() as u64, align_of::<T>() as u64)?;
        // SAFETY: `at..at+size_of::<T>()` lies inside the mapping and is aligned for T
        // (checked above; the mapping is page-aligned). T: Shared is valid for any bits and
        // is only mutated through atomics, so a shared reference is sound even while other
        // processes access the same bytes atomically; the crate's layout keeps these bytes
        // apart from plain payloads (see above). The mapping lives as long as `self`.
        Ok(unsafe { &*self.map.as_ptr().add(at).cast::<T>() })
    }

    /// A slice of `count` `T`s at `off`, checked like [`at`](Self::at).
    #[inline]
    pub(crate) fn at_slice<T: Shared>(&self, off: Offset, count: u64) -> Result<&[T], RegionError> {
        let len =
            count
                .checked_mul(size_of::<T>() as u64)
                .ok_or_else(|| RegionError::BadOffset {
                    offset: off.get(),
                    len: u64::MAX,
                    align: align_of::<T>() as u64,
                    size: self.info.size,
                })?;
        let at = self.check_range(off, len, align_of::<T>() as u64)?;
        // SAFETY: as in `at`, for `count` consecutive elements: the whole range was checked
        // to lie inside the mapping, and alignment holds for every element.
        Ok(unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(at).cast::<T>(), count as usize)
        })
    }

    /// The `H` at `off` and the `count` `T`s right after it, checked like [`at`](Self::at)
    /// as one range: a header and its slots resolved with one bounds check.
    #[inline]
    pub(crate) fn at_then_slice<H: Shared, T: Shared>(
        &self,
        off: Offset,
        count: u64,
    ) -> Result<(&H, &[T]), RegionError> {
        let head = size_of::<H>() as u64;
        let align = align_of::<H>().max(align_of::<T>()) as u64;
        let len = count
            .checked_mul(size_of::<T>() as u64)
            .and_then(|l| l.checked_add(head))
            // The slice starts aligned for `T` only if `H`'s size keeps it so.
            .filter(|_| head % align_of::<T>() as u64 == 0)
            .ok_or_else(|| self.bad_offset(off, u64::MAX, align))?;
        let at = self.check_range(off, len, align)?;
        // SAFETY: as in `at` and `at_slice`: `at..at+len` lies inside the mapping (checked
        // above), `at` is aligned for `H` and for `T`, and `H`'s size is a multiple of
        // `T`'s alignment, so the `count` `T`s after the `H` are aligned too; the two
        // parts do not overlap. The mapping lives as long as `self`.
        Ok(unsafe {
            let base = self.map.as_ptr().add(at);
            (
                &*base.cast::<H>(),
                std::slice::from_raw_parts(base.add(head as usize).cast::<T>(), count as usize),
            )
        })
    }

    /// A reference to the `T` at `off` (a word, a lock, a structure of atomics), after
    /// checking that it lies inside the region and is aligned for `T`: for programs that
    /// place structures of their own in a region.
    ///
    /// # Errors
    ///
    /// [`RegionError::BadOffset`] if `off` is out of bounds or misaligned.
    ///
    /// # Safety
    ///
    /// While the reference is used, no thread of any process accesses these bytes as plain
    /// memory: they are not part of a value's payload (a string's or an array's bytes), of
    /// an [`alloc::Block`](crate::alloc::Block)'s bytes, or of a slice from
    /// [`bytes`](Self::bytes) or [`bytes_mut`](Self::bytes_mut). Mixing atomic and plain
    /// accesses to the same bytes is a data race.
    pub unsafe fn resolve<T: Shared>(&self, off: Offset) -> Result<&T, RegionError> {
        self.at(off)
    }

    /// A slice of `count` `T`s at `off`, checked like [`resolve`](Self::resolve).
    ///
    /// # Errors
    ///
    /// [`RegionError::BadOffset`] if the range is out of bounds, misaligned, or its size
    /// overflows.
    ///
    /// # Safety
    ///
    /// As for [`resolve`](Self::resolve), for the whole range.
    pub unsafe fn resolve_slice<T: Shared>(
        &self,
        off: Offset,
        count: u64,
    ) -> Result<&[T], RegionError> {
        self.at_slice(off, count)
    }

    /// Plain bytes at `off`, checked like [`resolve`](Self::resolve).
    ///
    /// # Errors
    ///
    /// [`RegionError::BadOffset`] if the range is out of bounds.
    ///
    /// # Safety
    ///
    /// No process may write these bytes while the returned slice lives (the caller's
    /// protocol makes them immutable, e.g. a value shared read-only).
    pub unsafe fn bytes(&self, off: Offset, len: u64) -> Result<&[u8], RegionError> {
        let at = self.check_range(off, len, 1)?;
        // SAFETY: the range is inside the mapping (checked); the caller guarantees no
        // concurrent writes for the slice's lifetime.
        Ok(unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(at), len as usize) })
    }

    /// Plain bytes at `off` for writing, checked like [`resolve`](Self::resolve).
    ///
    /// # Errors
    ///
    /// [`RegionError::BadOffset`] if the range is out of bounds.
    ///
    /// # Safety
    ///
    /// The caller has exclusive use of these bytes while the slice lives (for example it
    /// allocated them and has not shared them yet), and holds no other slice over them.
    #[allow(clippy::mut_from_ref)] // exclusivity is the caller's documented obligation
    pub unsafe fn bytes_mut(&self, off: Offset, len: u64) -> Result<&mut [u8], RegionError> {
        let at = self.check_range(off, len, 1)?;
        // SAFETY: the range is inside the mapping (checked); the caller guarantees
        // exclusive access for the slice's lifetime.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(at), len as usize) })
    }

    /// The offset of `r`, which must lie inside this region's mapping.
    pub fn offset_of<T>(&self, r: &T) -> Option<Offset> {
        let base = self.map.as_ptr() as usize;
        let p = r as *const T as usize;
        (p >= base && p + size_of::<T>() <= base + self.map.len())
            .then(|| Offset::new((p - base) as u64))
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // A normal detach gives back what the layers above keep in the region, then the
        // registry slot, before the file closes (a forked child's copy has no slot of its
        // own and gives back nothing).
        if self.made_in.is_this_process() {
            for ext in self.ext.iter().rev().filter_map(OnceLock::get) {
                ext.detach(self);
            }
            self.unregister();
        }
        // A forked child's copy of the handle leaves the name to the parent.
        if self.unlink_on_drop.load(Ordering::Relaxed) != 0 && self.made_in.is_this_process() {
            // Unlink only if the name still stands for our file (a file that replaced ours
            // under the same name is left alone, up to the window between the check and
            // the unlink, which POSIX cannot close). A drop has nobody to report a refusal
            // to: a creator that may be refused calls `try_unlink` first.
            let _ = self.try_unlink();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::region::AttachOptions;

    use crate::region::name::unique_test_name as unique;

    #[test]
    fn the_longest_name_can_be_created() {
        // The private build name adds a suffix beyond MAX_NAME_LEN.
        let short = unique("long");
        let name = RegionName::new(format!(
            "{}{}",
            short,
            "x".repeat(crate::region::MAX_NAME_LEN - short.as_str().len())
        ))
        .unwrap();
        assert_eq!(name.as_str().len(), crate::region::MAX_NAME_LEN);
        let a = Region::create(&name, 4096).unwrap();
        let b = Region::attach(&name).unwrap();
        assert_eq!(a.id(), b.id());
    }

    #[test]
    fn a_header_and_its_slots_resolve_as_one_checked_range() {
        let name = unique("parts");
        let size = 1u64 << 16;
        let a = Region::create(&name, size).unwrap();
        let (h, s) = a
            .at_then_slice::<[AtomicU64; 2], AtomicU64>(Offset::new(4096), 3)
            .unwrap();
        h[1].store(5, Ordering::Relaxed);
        s[0].store(6, Ordering::Relaxed);
        s[2].store(7, Ordering::Relaxed);
        // The slots follow the header, as separate lookups see them.
        let words = a.at_slice::<AtomicU64>(Offset::new(4096), 5).unwrap();
        let seen: Vec<u64> = words.iter().map(|w| w.load(Ordering::Relaxed)).collect();
        assert_eq!(seen, [0, 5, 6, 0, 7]);
        // The range ends exactly at the region's end, or one word past it.
        let last = size - 5 * 8;
        assert!(a
            .at_then_slice::<[AtomicU64; 2], AtomicU64>(Offset::new(last), 3)
            .is_ok());
        assert!(a
            .at_then_slice::<[AtomicU64; 2], AtomicU64>(Offset::new(last + 8), 3)
            .is_err());
        // Misaligned, or a count whose size overflows.
        assert!(a
            .at_then_slice::<[AtomicU64; 2], AtomicU64>(Offset::new(4100), 1)
            .is_err());
        assert!(a
            .at_then_slice::<[AtomicU64; 2], AtomicU64>(Offset::new(8), u64::MAX / 4)
            .is_err());
        // A header whose size would leave the slots misaligned is refused.
        assert!(a
            .at_then_slice::<AtomicU32, AtomicU64>(Offset::new(4096), 1)
            .is_err());
    }

    #[test]
    fn an_unbounded_timeout_is_accepted() {
        let name = unique("forever");
        let _a = Region::create(&name, 4096).unwrap();
        drop(
            AttachOptions::new()
                .timeout(Duration::MAX)
                .attach(&name)
                .unwrap(),
        );
    }

    #[test]
    fn create_attach_share_and_unlink() {
        let name = unique("smoke");
        let a = Region::create(&name, 1 << 16).unwrap();
        let b = Region::attach(&name).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(b.info().creator_pid, std::process::id());
        assert!(b.info().creator_alive());
        let w: &AtomicU64 = a.at(Offset::new(4096)).unwrap();
        w.store(77, Ordering::SeqCst);
        assert_eq!(
            b.at::<AtomicU64>(Offset::new(4096))
                .unwrap()
                .load(Ordering::SeqCst),
            77
        );
        assert!(matches!(
            Region::create(&name, 1 << 16),
            Err(RegionError::AlreadyExists(_))
        ));
        assert!(a.at::<AtomicU64>(Offset::new(4097)).is_err());
        assert!(a.at::<AtomicU64>(Offset::new((1 << 16) - 4)).is_err());
        assert!(a
            .at_slice::<AtomicU64>(Offset::new(8), u64::MAX / 4)
            .is_err());
        drop(b);
        drop(a);
        assert!(matches!(
            Region::attach(&name),
            Err(RegionError::NotFound(_))
        ));
    }
}
