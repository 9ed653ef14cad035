//! [`Region`]: a named shared mapping with a validated header; creating, attaching,
//! resolving offsets, and removing stale regions.

use std::fs::File;
use std::mem::{align_of, size_of};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::error::RegionError;
use super::header::{
    layout_fingerprint, RawHeader, HEADER_SIZE, LAYOUT_VERSION, MAGIC, RAW_HEADER_SIZE,
    ROOT_OFFSET, STATE_BUILDING, STATE_OFFSET, STATE_READY,
};
use super::name::RegionName;
use super::offset::{Offset, Shared};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::sync::{self, Platform};

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
    /// Its size in bytes.
    pub size: u64,
    /// Its layout version.
    pub version: u32,
    /// The pid of the process that created it.
    pub creator_pid: u32,
    /// That process's start-time key, to tell it from a later process with the same pid.
    pub creator_start: u64,
}

impl RegionInfo {
    /// Whether the creating process is still running.
    pub fn creator_alive(&self) -> bool {
        creator_alive(self.creator_pid, self.creator_start)
    }
}

/// Whether the process `pid` with start key `start` still runs; `true` when in doubt.
/// A key of 0 means the creator could not read its own key: then any process with that
/// pid counts as the creator.
fn creator_alive(pid: u32, start: u64) -> bool {
    if start == 0 {
        return !matches!(
            std::fs::metadata(format!("/proc/{pid}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        );
    }
    sync::process_alive(pid, start)
}

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

/// Options for [`Region::attach`].
pub struct AttachOptions {
    timeout: Duration,
    micro_sleep: Duration,
    break_checker: Option<Box<dyn Fn() -> bool + Send + Sync>>,
    allowed_mode: u32,
    layout: u64,
}

impl std::fmt::Debug for AttachOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachOptions")
            .field("timeout", &self.timeout)
            .field("micro_sleep", &self.micro_sleep)
            .field("break_checker", &self.break_checker.is_some())
            .field("allowed_mode", &format_args!("{:#o}", self.allowed_mode))
            .field("layout", &format_args!("{:#x}", self.layout))
            .finish()
    }
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            timeout: Duration::from_secs(5),
            micro_sleep: Duration::from_millis(100),
            break_checker: None,
            allowed_mode: 0o600,
            layout: 0,
        }
    }
}

impl AttachOptions {
    /// Defaults: wait up to 5 s for readiness, run the break checker every 100 ms, accept
    /// only owner-only permissions.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long to wait for the region to become ready.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often to wake while waiting, to run the break checker.
    pub fn micro_sleep(mut self, d: Duration) -> Self {
        self.micro_sleep = d.max(Duration::from_micros(100));
        self
    }

    /// A function asked every `micro_sleep` while waiting; `true` stops the wait with
    /// [`RegionError::Broken`].
    pub fn break_checker(mut self, f: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.break_checker = Some(Box::new(f));
        self
    }

    /// Permission bits the region file may have (default 0600). Pass e.g. 0o660 to accept
    /// regions shared with the group.
    pub fn allowed_mode(mut self, mode: u32) -> Self {
        self.allowed_mode = mode & 0o777;
        self
    }

    /// The layout fingerprint of the layers above, as given at creation.
    pub fn layout(mut self, fingerprint: u64) -> Self {
        self.layout = fingerprint;
        self
    }

    /// Attaches to the region `name`.
    ///
    /// # Errors
    ///
    /// See [`Region::attach`].
    pub fn attach(&self, name: &RegionName) -> Result<Region, RegionError> {
        Region::attach_with(name, self)
    }
}

/// A named shared-memory region, mapped into this process.
///
/// The creator builds the region under a private temporary name, writes and publishes the
/// header, and only then links it under its real name, so nobody ever opens a half-built
/// region under that name. An attacher checks the file (`fstat`: regular, ours, mode,
/// size) and a copy of the header (magic, version, layout fingerprint, size) before it
/// trusts anything, then waits for the ready word.
///
/// Every link inside the region is an [`Offset`], and [`Region::resolve`] is the one place
/// an offset becomes a reference, after a bounds and alignment check. The mapping may sit
/// at a different address in every process.
///
/// The creating handle unlinks the name on drop unless created with
/// [`CreateOptions::persist`]; attachers never unlink. Processes still attached keep
/// their mapping after the name is gone.
pub struct Region {
    map: MmapRaw,
    name: RegionName,
    info: RegionInfo,
    /// (device, inode) of the file, to unlink only our own file.
    inode: (u64, u64),
    /// Whether this handle created the region.
    creator: bool,
    /// 1: unlink the name on drop (a creator, published, not persisted).
    unlink_on_drop: AtomicU32,
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

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_err(op: &'static str, name: &RegionName, e: impl Into<std::io::Error>) -> RegionError {
    RegionError::Io {
        op,
        name: name.to_string(),
        source: e.into(),
    }
}

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

    fn create_with(
        name: &RegionName,
        size: u64,
        opts: &CreateOptions,
    ) -> Result<Region, RegionError> {
        let region = Self::build_private(name, size, opts)?.publish()?;
        // Nobody else holds the region yet: `build_private` made the only handle and
        // `publish` returned it.
        Ok(Arc::try_unwrap(region).expect("the only handle to a region just created"))
    }

    fn build_private(
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

    /// Attaches to the region `name` with default [`AttachOptions`].
    ///
    /// # Errors
    ///
    /// Each check has its own variant: [`RegionError::NotFound`],
    /// [`RegionError::PermissionDenied`], [`RegionError::WrongOwner`],
    /// [`RegionError::InsecureMode`], [`RegionError::BadMagic`],
    /// [`RegionError::VersionMismatch`], [`RegionError::LayoutMismatch`],
    /// [`RegionError::Truncated`], [`RegionError::NotReady`], [`RegionError::Broken`],
    /// [`RegionError::Corrupted`].
    pub fn attach(name: &RegionName) -> Result<Region, RegionError> {
        Self::attach_with(name, &AttachOptions::default())
    }

    fn attach_with(name: &RegionName, opts: &AttachOptions) -> Result<Region, RegionError> {
        let fd = nix::sys::mman::shm_open(name.shm_path().as_str(), OFlag::O_RDWR, Mode::empty())
            .map_err(|e| match e {
            Errno::ENOENT => RegionError::NotFound(name.to_string()),
            Errno::EACCES | Errno::EPERM => RegionError::PermissionDenied(name.to_string()),
            // A directory, or (shm_open adds O_NOFOLLOW) a symbolic link, squats the name.
            // glibc reports a directory as EINVAL; the name itself is valid.
            Errno::EISDIR | Errno::EINVAL | Errno::ELOOP => RegionError::Corrupted {
                name: name.to_string(),
                what: "not a regular file".into(),
            },
            e => io_err("shm_open", name, e),
        })?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| io_err("fstat", name, e))?;
        if !meta.file_type().is_file() {
            return Err(RegionError::Corrupted {
                name: name.to_string(),
                what: "not a regular file".into(),
            });
        }
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(RegionError::WrongOwner {
                name: name.to_string(),
                found: meta.uid(),
                expected: me,
            });
        }
        let mode = meta.mode() & 0o777;
        if mode & !opts.allowed_mode & 0o077 != 0 {
            return Err(RegionError::InsecureMode {
                name: name.to_string(),
                mode,
                allowed: opts.allowed_mode,
            });
        }
        let file_size = meta.len();
        if file_size < HEADER_SIZE {
            return Err(RegionError::Truncated {
                name: name.to_string(),
                found: file_size,
                expected: HEADER_SIZE,
            });
        }
        if file_size > MAX_REGION_SIZE {
            return Err(RegionError::Corrupted {
                name: name.to_string(),
                what: format!("file of {file_size} bytes is larger than any region"),
            });
        }
        // `file_size` <= MAX_REGION_SIZE, which fits in usize on every 64-bit target.
        let map = MmapOptions::new()
            .len(file_size as usize)
            .map_raw(&file)
            .map_err(|e| io_err("mmap", name, e))?;
        // A region is linked under its name only once its header is written and its state
        // word set (the creator's writes, its link, our open and our mmap are ordered by
        // those system calls), so the copy taken here is the complete header. The state
        // word is still checked: a file may have been put in place by other means.
        let raw = RawHeader::from_bytes(&copy_header(&map));
        check_header(name, &raw, file_size, opts.layout)?;
        let region = Region {
            map,
            name: name.clone(),
            info: RegionInfo {
                id: RegionId(raw.id),
                size: raw.size,
                version: raw.version,
                creator_pid: raw.creator_pid,
                creator_start: raw.creator_start,
            },
            inode: (meta.dev(), meta.ino()),
            creator: false,
            unlink_on_drop: AtomicU32::new(0),
        };
        region.wait_ready(opts)?;
        Ok(region)
    }

    fn wait_ready(&self, opts: &AttachOptions) -> Result<(), RegionError> {
        // A timeout too long to represent waits without a deadline.
        let deadline = Instant::now().checked_add(opts.timeout);
        let state = self.state_word();
        loop {
            // SYNC POINT: acquires the header published by the creator's release store.
            match state.load(Ordering::Acquire) {
                STATE_READY => return Ok(()),
                STATE_BUILDING => {}
                other => {
                    return Err(RegionError::Corrupted {
                        name: self.name.to_string(),
                        what: format!("state word holds {other}"),
                    })
                }
            }
            if opts.break_checker.as_ref().is_some_and(|f| f()) {
                return Err(RegionError::Broken(self.name.to_string()));
            }
            let slice = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(RegionError::NotReady(self.name.to_string()));
                    }
                    opts.micro_sleep.min(deadline - now)
                }
                None => opts.micro_sleep,
            };
            sync::Os::wait(state, STATE_BUILDING, Some(slice));
        }
    }

    /// The region's name.
    pub fn name(&self) -> &RegionName {
        &self.name
    }

    /// What the header says: id, size, version, creator.
    pub fn info(&self) -> RegionInfo {
        self.info
    }

    /// The region's random id.
    pub fn id(&self) -> RegionId {
        self.info.id
    }

    /// Size of the mapping in bytes.
    pub fn len(&self) -> u64 {
        self.info.size
    }

    /// Always `false`: a region holds at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether this handle created the region (it then unlinks the name on drop, unless
    /// created with [`CreateOptions::persist`]).
    pub fn is_creator(&self) -> bool {
        self.creator
    }

    /// Whether the name still stands for this region's file (it may have been unlinked,
    /// or replaced by a newer region of the same name).
    pub fn is_current(&self) -> bool {
        std::fs::symlink_metadata(self.name.file_path())
            .is_ok_and(|m| (m.dev(), m.ino()) == self.inode)
    }

    /// Unlinks the name now if it still stands for this region's file (a creator's drop
    /// does this unless persisted). Processes that mapped the region keep it. Returns
    /// whether the name was removed.
    pub fn unlink(&self) -> bool {
        self.unlink_on_drop.store(0, Ordering::Relaxed);
        self.is_current() && std::fs::remove_file(self.name.file_path()).is_ok()
    }

    /// First offset past the header: where the layers above start (64-aligned).
    pub fn data_start(&self) -> Offset {
        Offset::new(HEADER_SIZE)
    }

    /// The header's root word: the offset of the root object of the layers above
    /// (0 until one is set).
    pub fn root(&self) -> &AtomicU64 {
        // The root word lies inside the header, which every region holds.
        self.resolve::<AtomicU64>(Offset::new(ROOT_OFFSET))
            .expect("the header is always mapped")
    }

    fn state_word(&self) -> &AtomicU32 {
        // The state word lies inside the header, which every region holds.
        self.resolve::<AtomicU32>(Offset::new(STATE_OFFSET))
            .expect("the header is always mapped")
    }

    fn check_range(&self, off: Offset, len: u64, align: u64) -> Result<usize, RegionError> {
        let bad = || RegionError::BadOffset {
            offset: off.get(),
            len,
            align,
            size: self.info.size,
        };
        let end = off.get().checked_add(len).ok_or_else(bad)?;
        if end > self.map.len() as u64 || off.get() % align != 0 {
            return Err(bad());
        }
        Ok(off.get() as usize)
    }

    /// A reference to the `T` at `off`, after checking that it lies inside the region and
    /// is aligned for `T`. This is the one place offsets become references.
    ///
    /// # Errors
    ///
    /// [`RegionError::BadOffset`] if `off` is out of bounds or misaligned.
    pub fn resolve<T: Shared>(&self, off: Offset) -> Result<&T, RegionError> {
        let at = self.check_range(off, size_of::<T>() as u64, align_of::<T>() as u64)?;
        // SAFETY: `at..at+size_of::<T>()` lies inside the mapping and is aligned for T
        // (checked above; the mapping is page-aligned). T: Shared is valid for any bits and
        // is only mutated through atomics, so a shared reference is sound even while other
        // processes access the same bytes. The mapping lives as long as `self`.
        Ok(unsafe { &*self.map.as_ptr().add(at).cast::<T>() })
    }

    /// A slice of `count` `T`s at `off`, checked like [`resolve`](Self::resolve).
    ///
    /// # Errors
    ///
    /// [`RegionError::BadOffset`] if the range is out of bounds, misaligned, or its size
    /// overflows.
    pub fn resolve_slice<T: Shared>(&self, off: Offset, count: u64) -> Result<&[T], RegionError> {
        let len = count
            .checked_mul(size_of::<T>() as u64)
            .ok_or(RegionError::BadOffset {
                offset: off.get(),
                len: u64::MAX,
                align: align_of::<T>() as u64,
                size: self.info.size,
            })?;
        let at = self.check_range(off, len, align_of::<T>() as u64)?;
        // SAFETY: as in `resolve`, for `count` consecutive elements: the whole range was
        // checked to lie inside the mapping, and alignment holds for every element.
        Ok(unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(at).cast::<T>(), count as usize)
        })
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

    /// Removes a region left behind by a dead creator: only if the file is ours, is a
    /// shmval region, and its creator is no longer running. Returns whether it removed it.
    ///
    /// # Errors
    ///
    /// [`RegionError::WrongOwner`] for another user's file, [`RegionError::BadMagic`] for
    /// a file that is not a region, [`RegionError::Io`]. A live creator is not an error:
    /// the result is `Ok(false)`.
    pub fn remove_stale(name: &RegionName) -> Result<bool, RegionError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = name.file_path();
        // O_NOFOLLOW: a symbolic link squatting the name is not followed. O_NONBLOCK: a
        // FIFO squatting it does not block the open.
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(RegionError::PermissionDenied(name.to_string()))
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(RegionError::BadMagic(name.to_string()))
            }
            Err(e) => return Err(io_err("open", name, e)),
        };
        let meta = file.metadata().map_err(|e| io_err("fstat", name, e))?;
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(RegionError::WrongOwner {
                name: name.to_string(),
                found: meta.uid(),
                expected: me,
            });
        }
        let mut buf = [0u8; RAW_HEADER_SIZE];
        use std::io::Read;
        if !meta.file_type().is_file()
            || meta.len() < HEADER_SIZE
            || (&file).read_exact(&mut buf).is_err()
        {
            return Err(RegionError::BadMagic(name.to_string()));
        }
        let raw = RawHeader::from_bytes(&buf);
        if raw.magic != MAGIC {
            return Err(RegionError::BadMagic(name.to_string()));
        }
        if creator_alive(raw.creator_pid, raw.creator_start) {
            return Ok(false);
        }
        // Unlink only the file we checked: the name may have been replaced meanwhile. (A
        // replacement made between this check and the unlink would still go: POSIX has no
        // unlink-if-inode. Only a process of our own uid can make one, since it would also
        // have to pass the owner check to matter.)
        match std::fs::symlink_metadata(&path) {
            Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {
                std::fs::remove_file(&path).map_err(|e| io_err("unlink", name, e))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// Copies the plain part of the header out of `map` once, with relaxed atomic loads: a
/// process writing the header meanwhile makes the copy wrong, never the read unsound.
fn copy_header(map: &MmapRaw) -> [u8; RAW_HEADER_SIZE] {
    let mut out = [0u8; RAW_HEADER_SIZE];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        // SAFETY: the caller mapped at least HEADER_SIZE >= RAW_HEADER_SIZE bytes (checked
        // against fstat before mapping); the mapping is page-aligned, so each 8-byte word
        // is in bounds and aligned for AtomicU64. AtomicU64 is valid for any bits, and
        // the reference lives only for this load.
        let word = unsafe { &*map.as_ptr().add(i * 8).cast::<AtomicU64>() };
        chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
    }
    out
}

fn check_header(
    name: &RegionName,
    raw: &RawHeader,
    file_size: u64,
    layout: u64,
) -> Result<(), RegionError> {
    if raw.magic != MAGIC {
        return Err(RegionError::BadMagic(name.to_string()));
    }
    if raw.version != LAYOUT_VERSION {
        return Err(RegionError::VersionMismatch {
            name: name.to_string(),
            found: raw.version,
            expected: LAYOUT_VERSION,
        });
    }
    let expected = layout_fingerprint(layout);
    if raw.fingerprint != expected {
        return Err(RegionError::LayoutMismatch {
            name: name.to_string(),
            found: raw.fingerprint,
            expected,
        });
    }
    // The fingerprint covers HEADER_SIZE, so a matching one with another header size is a
    // contradiction, not another layout.
    if u64::from(raw.header_size) != HEADER_SIZE {
        return Err(RegionError::Corrupted {
            name: name.to_string(),
            what: format!(
                "header size {} in a layout whose header has {HEADER_SIZE} bytes",
                raw.header_size
            ),
        });
    }
    if raw.size > file_size {
        return Err(RegionError::Truncated {
            name: name.to_string(),
            found: file_size,
            expected: raw.size,
        });
    }
    if raw.size != file_size {
        return Err(RegionError::Corrupted {
            name: name.to_string(),
            what: format!(
                "header declares {} bytes, the file holds {file_size}",
                raw.size
            ),
        });
    }
    Ok(())
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.unlink_on_drop.load(Ordering::Relaxed) != 0 {
            // Unlink only if the name still stands for our file (a file that replaced ours
            // under the same name is left alone, up to the window between the check and
            // the unlink, which POSIX cannot close).
            if self.is_current() {
                let _ = std::fs::remove_file(self.name.file_path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(tag: &str) -> RegionName {
        static N: AtomicU64 = AtomicU64::new(0);
        RegionName::new(format!(
            "shmval-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
        .unwrap()
    }

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
    fn an_unbounded_timeout_is_accepted() {
        let name = unique("forever");
        let _a = Region::create(&name, 4096).unwrap();
        AttachOptions::new()
            .timeout(Duration::MAX)
            .attach(&name)
            .unwrap();
    }

    #[test]
    fn create_attach_share_and_unlink() {
        let name = unique("smoke");
        let a = Region::create(&name, 1 << 16).unwrap();
        let b = Region::attach(&name).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(b.info().creator_pid, std::process::id());
        assert!(b.info().creator_alive());
        let w: &AtomicU64 = a.resolve(Offset::new(4096)).unwrap();
        w.store(77, Ordering::SeqCst);
        assert_eq!(
            b.resolve::<AtomicU64>(Offset::new(4096))
                .unwrap()
                .load(Ordering::SeqCst),
            77
        );
        assert!(matches!(
            Region::create(&name, 1 << 16),
            Err(RegionError::AlreadyExists(_))
        ));
        assert!(a.resolve::<AtomicU64>(Offset::new(4097)).is_err());
        assert!(a.resolve::<AtomicU64>(Offset::new((1 << 16) - 4)).is_err());
        assert!(a
            .resolve_slice::<AtomicU64>(Offset::new(8), u64::MAX / 4)
            .is_err());
        drop(b);
        drop(a);
        assert!(matches!(
            Region::attach(&name),
            Err(RegionError::NotFound(_))
        ));
    }
}
