//! Attaching to a region: [`AttachOptions`], the checks of the file and its header, and
//! the wait for the ready state.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::error::RegionError;
use super::header::{
    layout_fingerprint, RawHeader, COMMITTED_OFFSET, HEADER_SIZE, LAYOUT_VERSION, MAGIC,
    PID_NS_OFFSET, RAW_HEADER_SIZE, READ_SIZE, REGISTRY_OFFSET, STATE_BUILDING, STATE_READY,
};
use super::liveness::{mixes, own_pid_ns};
use super::mapping::{io_err, Region, RegionId, RegionInfo, MAX_REGION_SIZE};
use super::name::RegionName;
use super::registry::{registry_bytes, MAX_SLOTS};
use super::trust::{self, FileOwner};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{self, Platform};

/// Options for [`Region::attach`].
pub struct AttachOptions {
    timeout: Duration,
    micro_sleep: Duration,
    break_checker: Option<Box<dyn Fn() -> bool + Send + Sync>>,
    allowed_mode: u32,
    group: Option<u32>,
    layout: u64,
    register: bool,
}

impl std::fmt::Debug for AttachOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachOptions")
            .field("timeout", &self.timeout)
            .field("micro_sleep", &self.micro_sleep)
            .field("break_checker", &self.break_checker.is_some())
            .field("allowed_mode", &format_args!("{:#o}", self.allowed_mode))
            .field("group", &self.group)
            .field("layout", &format_args!("{:#x}", self.layout))
            .field("register", &self.register)
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
            group: None,
            layout: 0,
            register: true,
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

    /// Permission bits one of our own region files may have (default 0600). To share
    /// regions between users, trust their [`group`](Self::group) instead.
    pub fn allowed_mode(mut self, mode: u32) -> Self {
        self.allowed_mode = mode & 0o777;
        self
    }

    /// Trusts the members of group `gid` (default: nobody but ourselves). A region file of
    /// another uid is then accepted if its group is `gid`, this process is a member of
    /// `gid` (its effective or a supplementary group), and its mode grants the group read
    /// and write and others nothing (0660, as [`CreateOptions::group`] makes it); the
    /// header checks follow as for our own files. One of our own files may then grant
    /// `gid` read and write too. A file of another uid with any other group is still
    /// [`RegionError::WrongOwner`]: a user outside `gid` cannot give a file that group.
    ///
    /// [`CreateOptions::group`]: super::CreateOptions::group
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// The layout fingerprint of the layers above, as given at creation.
    pub fn layout(mut self, fingerprint: u64) -> Self {
        self.layout = fingerprint;
        self
    }

    /// Whether to take a slot of the region's process registry (default: yes). An observer
    /// that only reads statistics (`shmval inspect`, a monitor) passes `false`: it then
    /// holds nothing recovery would have to give back, and must not make values or open
    /// pipes through this handle, which would go unrecorded.
    pub fn register(mut self, register: bool) -> Self {
        self.register = register;
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

    /// [`Region::remove_stale`], accepting the files these options accept for attaching:
    /// another member's region of the trusted [`group`](Self::group) whose creator is dead
    /// is removed, if the system lets us. In the sticky `/dev/shm` only a file's owner (or
    /// root) may unlink it, so that is usually [`RegionError::UnlinkDenied`].
    ///
    /// # Errors
    ///
    /// As [`Region::remove_stale`], and [`RegionError::NotInGroup`],
    /// [`RegionError::InsecureMode`] (another member's file that grants others access) as
    /// for [`attach`](Self::attach).
    pub fn remove_stale(&self, name: &RegionName) -> Result<bool, RegionError> {
        Region::remove_stale_trusting(name, self.group)
    }
}

impl Region {
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

    pub(super) fn attach_with(
        name: &RegionName,
        opts: &AttachOptions,
    ) -> Result<Region, RegionError> {
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
        trust::check(
            name.as_str(),
            FileOwner::of(&meta),
            nix::unistd::geteuid().as_raw(),
            opts.group,
            opts.allowed_mode,
            trust::is_member,
        )?;
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
        let copy = copy_header(&map);
        let (plain, rest) = copy.split_at(RAW_HEADER_SIZE);
        let raw = RawHeader::from_bytes(plain.try_into().expect("the plain header's bytes"));
        let c = COMMITTED_OFFSET as usize - RAW_HEADER_SIZE;
        let committed = u64::from_ne_bytes(rest[c..c + 8].try_into().expect("8 bytes"));
        check_header(name, &raw, committed, file_size, opts.layout)?;
        // The whole maximum is mapped once, so that a growth moves nothing; the file's
        // first `file_size` bytes are what this process may touch until it sees more.
        drop(map);
        // `raw.size` <= MAX_REGION_SIZE (checked), which fits in usize.
        let map = MmapOptions::new()
            .len(raw.size as usize)
            .map_raw(&file)
            .map_err(|e| io_err("mmap", name, e))?;
        let ns = PID_NS_OFFSET as usize - RAW_HEADER_SIZE;
        let creator_pid_ns = u64::from_ne_bytes(rest[ns..ns + 8].try_into().expect("8 bytes"));
        let reg = REGISTRY_OFFSET as usize - RAW_HEADER_SIZE;
        let registry_slots = u32::from_ne_bytes(rest[reg..reg + 4].try_into().expect("4 bytes"));
        if registry_slots > MAX_SLOTS
            || HEADER_SIZE + registry_bytes(registry_slots) + 64 > raw.size
        {
            return Err(RegionError::Corrupted {
                name: name.to_string(),
                what: format!(
                    "a registry of {registry_slots} slots does not fit {} bytes",
                    raw.size
                ),
            });
        }
        let region = Region::from_mapping(
            map,
            file,
            name.clone(),
            RegionInfo {
                id: RegionId(raw.id),
                size: raw.size,
                committed: committed.min(file_size),
                version: raw.version,
                creator_pid: raw.creator_pid,
                creator_start: raw.creator_start,
                creator_pid_ns,
                mixed_namespaces: false,
                registry_slots,
            },
            (meta.dev(), meta.ino()),
            false,
        );
        region.wait_ready(opts)?;
        region.check_registry()?;
        // A process of another pid namespace than the creator's cannot judge liveness from
        // the same /proc as the others: before it can take any lock, it marks the region
        // so that nobody sharing it judges an owner dead. SeqCst pairs with the fence of
        // the liveness check (`sync::os::vetoed`).
        if mixes(creator_pid_ns, own_pid_ns()) {
            region.mixed_word().store(1, Ordering::SeqCst);
        }
        if opts.register {
            region.register()?;
        }
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
}

/// Copies the header out of `map` once, through the creator's pid namespace, with relaxed
/// atomic loads: a process writing the header meanwhile makes the copy wrong, never the
/// read unsound.
fn copy_header(map: &MmapRaw) -> [u8; READ_SIZE] {
    let mut out = [0u8; READ_SIZE];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        // SAFETY: the caller mapped at least HEADER_SIZE >= READ_SIZE bytes (checked
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
    committed: u64,
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
    if raw.size > MAX_REGION_SIZE {
        return Err(RegionError::Corrupted {
            name: name.to_string(),
            what: format!("a maximum of {} bytes is larger than any region", raw.size),
        });
    }
    if committed < HEADER_SIZE || committed > raw.size {
        return Err(RegionError::Corrupted {
            name: name.to_string(),
            what: format!(
                "header declares {committed} bytes committed of a maximum of {}",
                raw.size
            ),
        });
    }
    if committed > file_size {
        return Err(RegionError::Truncated {
            name: name.to_string(),
            found: file_size,
            expected: committed,
        });
    }
    if file_size > raw.size {
        return Err(RegionError::Corrupted {
            name: name.to_string(),
            what: format!(
                "header declares a maximum of {} bytes, the file holds {file_size}",
                raw.size
            ),
        });
    }
    Ok(())
}
