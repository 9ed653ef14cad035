//! Creating a region: [`CreateOptions`], building it unseen, and [`Unpublished::publish`].

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;

use memmap2::MmapOptions;
use nix::errno::Errno;
use nix::fcntl::AtFlags;

use super::error::RegionError;
use super::header::{
    layout_fingerprint, RawHeader, COMMITTED_OFFSET, HEADER_SIZE, LAYOUT_VERSION, MAGIC,
    PID_NS_OFFSET, RAW_HEADER_SIZE, READ_SIZE, REGISTRY_OFFSET, STATE_READY,
};
use super::liveness::own_pid_ns;
use super::mapping::{io_err, Region, RegionId, RegionInfo, MAX_REGION_SIZE};
use super::name::RegionName;
use super::registry::{default_slots, registry_bytes, MAX_SLOTS};
use super::SHM_DIR;
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{self, Platform};

/// Options for [`Region::create`].
#[derive(Clone, Debug)]
pub struct CreateOptions {
    mode: u32,
    persist: bool,
    layout: u64,
    group: Option<u32>,
    /// Slots of the process registry (`None`: [`default_slots`] of the size).
    registry: Option<u32>,
    /// Build in an unnamed file where the system allows it (always, but for tests of the
    /// private-name fallback).
    unnamed: bool,
    /// The most the region may grow to (`None`: its starting size, no growth).
    max: Option<u64>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            mode: 0o600,
            persist: false,
            layout: 0,
            group: None,
            registry: None,
            unnamed: true,
            max: None,
        }
    }
}

impl CreateOptions {
    /// Default options: mode 0600, unlinked on drop, no extra layout fingerprint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits of the region file (default 0600: owner only).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// Gives the region file group `gid` (`fchown`, before it is published), to share it
    /// with the members of that group: pair it with [`mode`](Self::mode)`(0o660)`, and
    /// have them attach with [`AttachOptions::group`]. The creator must be a member of
    /// `gid` (root need not be), else creation fails with [`RegionError::NotInGroup`].
    ///
    /// [`AttachOptions::group`]: super::AttachOptions::group
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// Slots of the process registry: how many processes may be attached at once (default:
    /// one per 4 KiB of the region, 16 to 512, as many as fit). Each takes 64 bytes after the header;
    /// 0 makes a region without a registry, whose processes' holdings are not recorded
    /// and so not given back when they die.
    pub fn registry(mut self, slots: u32) -> Self {
        self.registry = Some(slots);
        self
    }

    /// The most the region may grow to (default: its starting size). Every process maps
    /// the maximum (address space, not memory), and the file holds only what
    /// [`Region::grow`] allocated: a growing region never moves.
    pub fn max_size(mut self, max: u64) -> Self {
        self.max = Some(max);
        self
    }

    /// Keep the name after the creating handle drops (default: unlink it).
    pub fn persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// The layout fingerprint of the layers above, mixed into the header's.
    pub fn layout(mut self, fingerprint: u64) -> Self {
        self.layout = fingerprint;
        self
    }

    /// Builds under the private name `<name>.tmp-<pid>-<n>` even where an unnamed file
    /// could be used: the fallback for systems without `O_TMPFILE`, for its tests.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn private_build_name(mut self, private: bool) -> Self {
        self.unnamed = !private;
        self
    }

    /// Creates the region `name` of `size` bytes.
    ///
    /// # Errors
    ///
    /// See [`Region::create`].
    pub fn create(&self, name: &RegionName, size: u64) -> Result<Region, RegionError> {
        Region::create_with(name, size, self)
    }

    /// Builds the region `name` of `size` bytes out of sight (see [`Unpublished`]), for the
    /// caller to format before [`Unpublished::publish`] makes it visible.
    ///
    /// # Errors
    ///
    /// As [`Region::create`], except that a taken name is only found at publication.
    pub fn build(&self, name: &RegionName, size: u64) -> Result<Unpublished, RegionError> {
        Region::build_private(name, size, self)
    }
}

/// A region built out of sight, not yet visible under its name: the creator formats what
/// the layers above need (a pool, a directory) through [`region`](Self::region), then
/// [`publish`](Self::publish)es it, so no attacher ever sees it half-built. Dropping it
/// unpublished removes it.
///
/// It lives in an unnamed file (`O_TMPFILE`), which disappears with its last descriptor
/// whatever happens to the creator. Where the system cannot make one, it lives under the
/// private name `<name>.tmp-<pid>-<n>`, unlinked at publication or drop; a creator killed
/// meanwhile leaves that file behind, for [`remove_unfinished_build`](super::remove_unfinished_build).
pub struct Unpublished {
    region: Arc<Region>,
    file: BuildFile,
    persist: bool,
}

impl std::fmt::Debug for Unpublished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unpublished")
            .field("region", &self.region)
            .field("private_name", &self.file.private)
            .finish()
    }
}

/// The file a region is built in: unnamed, or under a private name that is unlinked when
/// this drops.
struct BuildFile {
    file: File,
    /// The private name, when the file has one.
    private: Option<RegionName>,
}

impl Drop for BuildFile {
    fn drop(&mut self) {
        if let Some(tmp) = &self.private {
            let _ = std::fs::remove_file(tmp.file_path());
        }
    }
}

impl Unpublished {
    /// The region being built (shared, so a pool can be formatted in it before
    /// publication).
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// Marks the region ready and links it under its name.
    ///
    /// # Errors
    ///
    /// [`RegionError::AlreadyExists`] if the name was taken meanwhile (the region is then
    /// removed), [`RegionError::PermissionDenied`], [`RegionError::Io`].
    pub fn publish(self) -> Result<Arc<Region>, RegionError> {
        let region = self.region.clone();
        // SYNC POINT: the release store publishes the header and everything the creator
        // wrote before it.
        let state = region.state_word();
        state.store(STATE_READY, Ordering::Release);
        sync::Os::wake(state, u32::MAX);
        let name = region.name.clone();
        // `link` fails if the name is taken: publication is atomic and exclusive.
        let linked = match &self.file.private {
            // The descriptor's entry in /proc names the unnamed file; AT_SYMLINK_FOLLOW
            // links the file it stands for, not the entry.
            None => nix::unistd::linkat(
                None,
                &PathBuf::from(format!("/proc/self/fd/{}", self.file.file.as_raw_fd())),
                None,
                &name.file_path(),
                AtFlags::AT_SYMLINK_FOLLOW,
            ),
            Some(tmp) => nix::unistd::linkat(
                None,
                &tmp.file_path(),
                None,
                &name.file_path(),
                AtFlags::empty(),
            ),
        };
        match linked {
            Ok(()) => {
                region
                    .unlink_on_drop
                    .store(u32::from(!self.persist), Ordering::Relaxed);
                Ok(region)
            }
            Err(Errno::EEXIST) => Err(RegionError::AlreadyExists(name.to_string())),
            Err(Errno::EACCES | Errno::EPERM) => {
                Err(RegionError::PermissionDenied(name.to_string()))
            }
            Err(e) => Err(io_err("link", &name, e)),
        }
        // `self` drops here: an unnamed file stays only under the name it was linked to,
        // a private name is unlinked.
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many private names of our own (left by an earlier process that had our pid) a
/// fallback build skips before it gives up.
const PRIVATE_NAME_ATTEMPTS: u32 = 16;

fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    let mut filled = 0;
    while filled < id.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `id`.
        let r = unsafe { libc::getrandom(id[filled..].as_mut_ptr().cast(), id.len() - filled, 0) };
        if r > 0 {
            filled += r as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // getrandom is always present on supported kernels; fall back to the clock
            // and pid so ids stay distinct even so.
            let t = sync::Os::now_ns() ^ (u64::from(std::process::id()) << 32);
            id[..8].copy_from_slice(&t.to_le_bytes());
            id[8..].copy_from_slice(&TMP_COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
            break;
        }
    }
    id
}

/// Opens the file to build `name` in: an unnamed one in `/dev/shm` (`O_TMPFILE`) when the
/// system supports it and `/proc/self/fd` is there to link it by, else a private name.
fn open_build_file(name: &RegionName, opts: &CreateOptions) -> Result<BuildFile, RegionError> {
    let proc_fds = std::fs::metadata("/proc/self/fd").is_ok_and(|m| m.is_dir());
    if opts.unnamed && proc_fds {
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(opts.mode)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(SHM_DIR);
        match opened {
            Ok(file) => {
                return Ok(BuildFile {
                    file,
                    private: None,
                })
            }
            // No O_TMPFILE here (an old kernel, or a file system without it): fall back.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(RegionError::PermissionDenied(name.to_string()))
            }
            Err(e) => return Err(io_err("open O_TMPFILE", name, e)),
        }
    }
    // The private name is built from the pid and a counter. One of ours that is taken was
    // left by an earlier process with our pid, and is skipped; one of another user's is
    // a squatter, reported at once.
    let me = nix::unistd::geteuid().as_raw();
    let mut attempt = 0;
    loop {
        let tmp = name.private_name(&format!(
            "{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(opts.mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(tmp.file_path());
        match opened {
            Ok(file) => {
                return Ok(BuildFile {
                    file,
                    private: Some(tmp),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                attempt += 1;
                let owner = std::fs::symlink_metadata(tmp.file_path()).map(|m| m.uid());
                match owner {
                    Ok(owner) if owner != me || attempt >= PRIVATE_NAME_ATTEMPTS => {
                        return Err(RegionError::BuildNameTaken {
                            name: name.to_string(),
                            private: tmp.to_string(),
                            owner,
                        })
                    }
                    // Ours, or gone meanwhile: try the next name.
                    _ => {}
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(RegionError::PermissionDenied(name.to_string()))
            }
            Err(e) => return Err(io_err("open", name, e)),
        }
    }
}

impl Region {
    /// Creates the region `name` of `size` bytes with default [`CreateOptions`].
    ///
    /// # Errors
    ///
    /// [`RegionError::AlreadyExists`] if the name is taken (by a region or any other
    /// file), [`RegionError::BadSize`] below 192 bytes (a header and a cache line) or above
    /// [`MAX_REGION_SIZE`], [`RegionError::NoSpace`] if `/dev/shm` cannot hold it (found now, by
    /// `posix_fallocate`, rather than as a SIGBUS later), [`RegionError::PermissionDenied`],
    /// [`RegionError::BuildNameTaken`] (only where regions are built under private names),
    /// [`RegionError::NotInGroup`] (with [`CreateOptions::group`]), or [`RegionError::Io`].
    pub fn create(name: &RegionName, size: u64) -> Result<Region, RegionError> {
        Self::create_with(name, size, &CreateOptions::default())
    }

    pub(super) fn create_with(
        name: &RegionName,
        size: u64,
        opts: &CreateOptions,
    ) -> Result<Region, RegionError> {
        let region = Self::build_private(name, size, opts)?.publish()?;
        // Nobody else holds the region yet: `build_private` made the only handle and
        // `publish` returned it.
        Ok(Arc::try_unwrap(region).expect("the only handle to a region just created"))
    }

    pub(super) fn build_private(
        name: &RegionName,
        size: u64,
        opts: &CreateOptions,
    ) -> Result<Unpublished, RegionError> {
        if size < HEADER_SIZE + 64 {
            return Err(RegionError::BadSize {
                size,
                why: "smaller than the header and one cache line (192 bytes)",
            });
        }
        let slots = opts.registry.unwrap_or_else(|| default_slots(size));
        if slots > MAX_SLOTS {
            return Err(RegionError::BadSize {
                size,
                why: "a registry of more than 65536 slots asked for",
            });
        }
        if HEADER_SIZE + registry_bytes(slots) + 64 > size {
            return Err(RegionError::BadSize {
                size,
                why: "smaller than the header, the registry asked for and one cache line",
            });
        }
        let max = opts.max.unwrap_or(size);
        if max < size {
            return Err(RegionError::BadSize {
                size: max,
                why: "a maximum below the starting size",
            });
        }
        if max > MAX_REGION_SIZE {
            return Err(RegionError::BadSize {
                size: max,
                why: "larger than 1 TiB",
            });
        }
        if usize::try_from(max).is_err() {
            return Err(RegionError::BadSize {
                size: max,
                why: "larger than the address space",
            });
        }
        // On failure `file` drops, and with it the unnamed file or the private name.
        let file = open_build_file(name, opts)?;
        let region = Self::build(name, &file.file, size, opts)?;
        Ok(Unpublished {
            region: Arc::new(region),
            file,
            persist: opts.persist,
        })
    }

    fn build(
        name: &RegionName,
        file: &File,
        size: u64,
        opts: &CreateOptions,
    ) -> Result<Region, RegionError> {
        let no_space = || RegionError::NoSpace {
            name: name.to_string(),
            size,
        };
        let len = libc::off_t::try_from(size).map_err(|_| RegionError::BadSize {
            size,
            why: "does not fit in off_t",
        })?;
        nix::unistd::ftruncate(file, len).map_err(|e| match e {
            Errno::ENOSPC | Errno::EFBIG => no_space(),
            e => io_err("ftruncate", name, e),
        })?;
        if let Some(gid) = opts.group {
            // The kernel lets only a member of `gid` (or root) give a file that group.
            nix::unistd::fchown(
                file.as_raw_fd(),
                None,
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(|e| match e {
                Errno::EPERM => RegionError::NotInGroup {
                    name: name.to_string(),
                    gid,
                },
                e => io_err("fchown", name, e),
            })?;
        }
        // open applies the umask (and fchown may clear set-id bits); set exactly the mode
        // asked for.
        file.set_permissions(std::fs::Permissions::from_mode(opts.mode))
            .map_err(|e| io_err("fchmod", name, e))?;
        // The header goes in first, in the building state, so that even a file left under
        // a private name by a builder killed in the long allocation below says whose it is.
        let pid = std::process::id();
        let max = opts.max.unwrap_or(size);
        let info = RegionInfo {
            id: RegionId(random_id()),
            size: max,
            committed: size,
            version: LAYOUT_VERSION,
            creator_pid: pid,
            creator_start: sync::process_start_key(pid).unwrap_or(0),
            creator_pid_ns: own_pid_ns(),
            mixed_namespaces: false,
            registry_slots: opts.registry.unwrap_or_else(|| default_slots(size)),
        };
        let raw = RawHeader {
            magic: MAGIC,
            version: LAYOUT_VERSION,
            header_size: HEADER_SIZE as u32,
            fingerprint: layout_fingerprint(opts.layout),
            size: max,
            id: info.id.0,
            creator_pid: pid,
            reserved0: 0,
            creator_start: info.creator_start,
        };
        let mut image = [0u8; READ_SIZE];
        image[..RAW_HEADER_SIZE].copy_from_slice(&raw.to_bytes());
        let ns = PID_NS_OFFSET as usize;
        image[ns..ns + 8].copy_from_slice(&info.creator_pid_ns.to_ne_bytes());
        let reg = REGISTRY_OFFSET as usize;
        image[reg..reg + 4].copy_from_slice(&info.registry_slots.to_ne_bytes());
        let c = COMMITTED_OFFSET as usize;
        image[c..c + 8].copy_from_slice(&size.to_ne_bytes());
        file.write_all_at(&image, 0)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOSPC) => no_space(),
                _ => io_err("write", name, e),
            })?;
        crate::fault::pause_point("region.build.sized");
        // Reserve every page now: a full /dev/shm is an error here, not a SIGBUS on first
        // touch later.
        allocate_pages(file, name, 0, size).map_err(|e| match e {
            RegionError::NoSpaceToGrow { .. } => no_space(),
            e => e,
        })?;
        let meta = file.metadata().map_err(|e| io_err("fstat", name, e))?;
        // The whole maximum is mapped once (`max` fits in usize: checked by
        // `build_private`); nothing past the committed size is touched.
        let map = MmapOptions::new()
            .len(max as usize)
            .map_raw(file)
            .map_err(|e| io_err("mmap", name, e))?;
        crate::fault::pause_point("region.build.mapped");
        // A second descriptor of the same open file description: the registry's liveness
        // lock belongs to it, and it lives as long as the handle.
        let own = file.try_clone().map_err(|e| io_err("dup", name, e))?;
        // Not linked under its name yet: nothing to unlink until `publish`.
        let region =
            Region::from_mapping(map, own, name.clone(), info, (meta.dev(), meta.ino()), true);
        region.format_registry();
        region.register()?;
        Ok(region)
    }
}

/// Allocates the pages of bytes `from..to` of a region's file (`posix_fallocate`), growing
/// it to `to` if it is shorter: a full `/dev/shm` is an error now, never a SIGBUS on first
/// touch later. tmpfs refuses a request larger than the whole file system up front; a
/// signal may interrupt a long allocation, which is then retried. Allocating pages the
/// file already holds changes nothing.
pub(super) fn allocate_pages(
    file: &File,
    name: &RegionName,
    from: u64,
    to: u64,
) -> Result<(), RegionError> {
    let too_big = || RegionError::BadSize {
        size: to,
        why: "does not fit in off_t",
    };
    let start = libc::off_t::try_from(from).map_err(|_| too_big())?;
    let len = libc::off_t::try_from(to.saturating_sub(from)).map_err(|_| too_big())?;
    loop {
        match nix::fcntl::posix_fallocate(file.as_raw_fd(), start, len) {
            Ok(()) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(Errno::ENOSPC | Errno::EFBIG | Errno::ENOMEM) => {
                return Err(RegionError::NoSpaceToGrow {
                    name: name.to_string(),
                    from,
                    to,
                    free: shm_free_bytes().unwrap_or(0),
                })
            }
            Err(e) => return Err(io_err("posix_fallocate", name, e)),
        }
    }
}

/// The bytes `/dev/shm` has free for an unprivileged process now, if it can tell.
pub fn shm_free_bytes() -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(SHM_DIR).ok()?;
    Some(st.blocks_available().saturating_mul(st.fragment_size()))
}
