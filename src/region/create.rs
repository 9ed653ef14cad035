//! Creating a region: [`CreateOptions`], building it unseen, and [`Unpublished::publish`].

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;

use memmap2::MmapOptions;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::error::RegionError;
use super::header::{
    layout_fingerprint, RawHeader, HEADER_SIZE, LAYOUT_VERSION, MAGIC, STATE_READY,
};
use super::mapping::{io_err, Region, RegionId, RegionInfo, MAX_REGION_SIZE};
use super::name::RegionName;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{self, Platform};

/// Options for [`Region::create`].
#[derive(Clone, Debug)]
pub struct CreateOptions {
    mode: u32,
    persist: bool,
    layout: u64,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            mode: 0o600,
            persist: false,
            layout: 0,
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

    /// Creates the region `name` of `size` bytes.
    ///
    /// # Errors
    ///
    /// See [`Region::create`].
    pub fn create(&self, name: &RegionName, size: u64) -> Result<Region, RegionError> {
        Region::create_with(name, size, self)
    }

    /// Builds the region `name` of `size` bytes under a private name, for the caller to
    /// format before [`Unpublished::publish`] makes it visible.
    ///
    /// # Errors
    ///
    /// As [`Region::create`], except that a taken name is only found at publication.
    pub fn build(&self, name: &RegionName, size: u64) -> Result<Unpublished, RegionError> {
        Region::build_private(name, size, self)
    }
}

/// A region built under a private name, not yet visible under its real one: the creator
/// formats what the layers above need (a pool, a directory) through
/// [`region`](Self::region), then [`publish`](Self::publish)es it, so no attacher ever
/// sees it half-built. Dropping it unpublished removes it.
pub struct Unpublished {
    region: Arc<Region>,
    tmp: RegionName,
    persist: bool,
}

impl std::fmt::Debug for Unpublished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unpublished")
            .field("region", &self.region)
            .finish()
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
        match std::fs::hard_link(self.tmp.file_path(), name.file_path()) {
            Ok(()) => {
                region
                    .unlink_on_drop
                    .store(u32::from(!self.persist), Ordering::Relaxed);
                Ok(region)
            }
            Err(e) => Err(match e.kind() {
                std::io::ErrorKind::AlreadyExists => RegionError::AlreadyExists(name.to_string()),
                std::io::ErrorKind::PermissionDenied => {
                    RegionError::PermissionDenied(name.to_string())
                }
                _ => io_err("link", &name, e),
            }),
        }
        // `self` drops here and unlinks the private name.
    }
}

impl Drop for Unpublished {
    fn drop(&mut self) {
        let _ = nix::sys::mman::shm_unlink(self.tmp.shm_path().as_str());
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

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

impl Region {
    /// Creates the region `name` of `size` bytes with default [`CreateOptions`].
    ///
    /// # Errors
    ///
    /// [`RegionError::AlreadyExists`] if the name is taken (by a region or any other
    /// file), [`RegionError::BadSize`] below 192 bytes (a header and a cache line) or above
    /// [`MAX_REGION_SIZE`], [`RegionError::NoSpace`] if `/dev/shm` cannot hold it (found now, by
    /// `posix_fallocate`, rather than as a SIGBUS later), [`RegionError::PermissionDenied`],
    /// or [`RegionError::Io`].
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
        if size > MAX_REGION_SIZE {
            return Err(RegionError::BadSize {
                size,
                why: "larger than 1 TiB",
            });
        }
        if usize::try_from(size).is_err() {
            return Err(RegionError::BadSize {
                size,
                why: "larger than the address space",
            });
        }
        // Build under a private name; publish by linking it under the real one. The private
        // name is built from the pid and a counter; one left behind by a crashed process
        // that had our pid is skipped.
        let mut attempt = 0;
        let (tmp, fd) = loop {
            let tmp = name.private_name(&format!(
                "{}-{}",
                std::process::id(),
                TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match nix::sys::mman::shm_open(
                tmp.shm_path().as_str(),
                OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL,
                Mode::from_bits_truncate(opts.mode),
            ) {
                Ok(fd) => break (tmp, fd),
                Err(Errno::EEXIST) if attempt < 16 => attempt += 1,
                Err(Errno::EACCES) => return Err(RegionError::PermissionDenied(name.to_string())),
                Err(e) => return Err(io_err("shm_open", name, e)),
            }
        };
        match Self::build(name, fd, size, opts) {
            Ok(region) => Ok(Unpublished {
                region: Arc::new(region),
                tmp,
                persist: opts.persist,
            }),
            Err(e) => {
                let _ = nix::sys::mman::shm_unlink(tmp.shm_path().as_str());
                Err(e)
            }
        }
    }

    fn build(
        name: &RegionName,
        fd: OwnedFd,
        size: u64,
        opts: &CreateOptions,
    ) -> Result<Region, RegionError> {
        let len = libc::off_t::try_from(size).map_err(|_| RegionError::BadSize {
            size,
            why: "does not fit in off_t",
        })?;
        nix::unistd::ftruncate(&fd, len).map_err(|e| match e {
            Errno::ENOSPC | Errno::EFBIG => RegionError::NoSpace {
                name: name.to_string(),
                size,
            },
            e => io_err("ftruncate", name, e),
        })?;
        // shm_open applies the umask; set exactly the mode asked for.
        let file = File::from(fd);
        file.set_permissions(std::fs::Permissions::from_mode(opts.mode))
            .map_err(|e| io_err("fchmod", name, e))?;
        // Reserve every page now: a full /dev/shm is an error here, not a SIGBUS on first
        // touch later. tmpfs refuses a request larger than the whole filesystem up front;
        // a signal may interrupt a long allocation, which is then retried.
        loop {
            use std::os::fd::AsRawFd;
            match nix::fcntl::posix_fallocate(file.as_raw_fd(), 0, len) {
                Ok(()) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOSPC | Errno::EFBIG | Errno::ENOMEM) => {
                    return Err(RegionError::NoSpace {
                        name: name.to_string(),
                        size,
                    })
                }
                Err(e) => return Err(io_err("posix_fallocate", name, e)),
            }
        }
        let meta = file.metadata().map_err(|e| io_err("fstat", name, e))?;
        // `size` fits in usize: checked by `create_with`.
        let map = MmapOptions::new()
            .len(size as usize)
            .map_raw(&file)
            .map_err(|e| io_err("mmap", name, e))?;
        let pid = std::process::id();
        let info = RegionInfo {
            id: RegionId(random_id()),
            size,
            version: LAYOUT_VERSION,
            creator_pid: pid,
            creator_start: sync::process_start_key(pid).unwrap_or(0),
        };
        let raw = RawHeader {
            magic: MAGIC,
            version: LAYOUT_VERSION,
            header_size: HEADER_SIZE as u32,
            fingerprint: layout_fingerprint(opts.layout),
            size,
            id: info.id.0,
            creator_pid: pid,
            reserved0: 0,
            creator_start: info.creator_start,
        };
        let image = raw.to_bytes();
        // SAFETY: the mapping holds `size` >= HEADER_SIZE bytes (checked by `create_with`),
        // and no attacher has it yet (it exists only under the private name), so this
        // plain write races with nothing. `image` is a separate local buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(image.as_ptr(), map.as_mut_ptr(), image.len());
        }
        // Not linked under its name yet: nothing to unlink until `publish`.
        Ok(Region {
            map,
            name: name.clone(),
            info,
            inode: (meta.dev(), meta.ino()),
            creator: true,
            unlink_on_drop: AtomicU32::new(0),
        })
    }
}
