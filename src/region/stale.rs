//! Stale regions: telling whether a creator still runs, and removing what a dead one left:
//! regions under their names, and files under private build names of builders killed
//! while building (only where the system cannot build in unnamed files).

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::error::RegionError;
use super::header::{
    RawHeader, COMMITTED_OFFSET, HEADER_SIZE, MAGIC, MIXED_OFFSET, PID_NS_OFFSET, RAW_HEADER_SIZE,
    READ_SIZE, REGISTRY_OFFSET,
};
use super::liveness::{creator_alive, pid_alive};
use super::mapping::{Region, RegionId, RegionInfo};
use super::name::RegionName;
use super::registry;
use super::trust::{self, FileOwner};
use super::SHM_DIR;

/// Opens `path` to read, without following a symbolic link squatting it (`O_NOFOLLOW`) or
/// blocking on a FIFO (`O_NONBLOCK`); `None` if nothing is there.
fn open_unfollowed(path: &Path, name: &str) -> Result<Option<(File, Metadata)>, RegionError> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(RegionError::PermissionDenied(name.to_string()))
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(RegionError::BadMagic(name.to_string()))
        }
        Err(e) => return Err(plain_io("open", name, e)),
    };
    let meta = file.metadata().map_err(|e| plain_io("fstat", name, e))?;
    Ok(Some((file, meta)))
}

fn plain_io(op: &'static str, name: &str, source: std::io::Error) -> RegionError {
    RegionError::Io {
        op,
        name: name.to_string(),
        source,
    }
}

/// A region header as read from the file, without mapping it.
struct FileHeader {
    raw: RawHeader,
    pid_ns: u64,
    mixed: bool,
    registry_slots: u32,
    committed: u64,
}

impl FileHeader {
    fn creator_alive(&self) -> bool {
        creator_alive(
            self.raw.creator_pid,
            self.raw.creator_start,
            self.pid_ns,
            self.mixed,
        )
    }
}

/// The header at the start of `file`, if it is a regular file holding one with the
/// region magic.
fn read_header(mut file: &File, meta: &Metadata) -> Option<FileHeader> {
    let mut buf = [0u8; READ_SIZE];
    if !meta.file_type().is_file() || meta.len() < HEADER_SIZE {
        return None;
    }
    file.read_exact(&mut buf).ok()?;
    let raw = RawHeader::from_bytes(buf[..RAW_HEADER_SIZE].try_into().ok()?);
    let word = |at: u64| buf.get(at as usize..at as usize + 8)?.try_into().ok();
    let mixed_at = MIXED_OFFSET as usize;
    (raw.magic == MAGIC).then_some(FileHeader {
        raw,
        pid_ns: u64::from_ne_bytes(word(PID_NS_OFFSET)?),
        mixed: buf[mixed_at..mixed_at + 4] != [0; 4],
        registry_slots: u32::from_ne_bytes(
            buf[REGISTRY_OFFSET as usize..REGISTRY_OFFSET as usize + 4]
                .try_into()
                .ok()?,
        ),
        committed: u64::from_ne_bytes(word(COMMITTED_OFFSET)?),
    })
}

/// Unlinks `path` if it still stands for the file `meta` describes. (A replacement made
/// between this check and the unlink would still go: POSIX has no unlink-if-inode. Only a
/// process of a user the caller trusts can make one, since it would also have had to pass
/// the caller's owner check to matter.)
pub(super) fn unlink_checked(
    path: &Path,
    meta: &Metadata,
    name: &str,
) -> Result<bool, RegionError> {
    match std::fs::symlink_metadata(path) {
        Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {
            match std::fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
                    Err(RegionError::UnlinkDenied {
                        name: name.to_string(),
                        owner: meta.uid(),
                        source: e,
                    })
                }
                Err(e) => Err(plain_io("unlink", name, e)),
            }
        }
        _ => Ok(false),
    }
}

/// A file left in `/dev/shm` under a private build name (`<region>.tmp-<pid>-<n>`) by a
/// creator that was killed while building, where the system cannot build regions in
/// unnamed files; or such a build still in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnfinishedBuild {
    /// The file's name in `/dev/shm`.
    pub file_name: String,
    /// The region it was to become.
    pub region: RegionName,
    /// The pid of the process that built it (from the file's name).
    pub builder_pid: u32,
    /// Whether that process may still run (then the build is in progress, not stale).
    pub builder_alive: bool,
    /// The file's size in bytes.
    pub bytes: u64,
    /// The file's owner.
    pub owner_uid: u32,
}

/// Splits a private build name `<region>.tmp-<pid>-<n>` into the region and the pid.
fn parse_private_name(file_name: &str) -> Option<(RegionName, u32)> {
    let at = file_name.rfind(".tmp-")?;
    let (pid, n) = file_name[at + 5..].split_once('-')?;
    let number = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !number(pid) || !number(n) {
        return None;
    }
    Some((RegionName::new(&file_name[..at]).ok()?, pid.parse().ok()?))
}

/// Whether the builder of the file `file` (open, described by `meta`) under a private name
/// with `pid` may still run; `None` if the file is not a build: a build holds a region
/// header whose creator is `pid`, or is still empty (zeros, or nothing, before the header
/// is written).
fn build_alive(file: &File, meta: &Metadata, pid: u32) -> Option<bool> {
    if !meta.file_type().is_file() {
        return None;
    }
    if let Some(header) = read_header(file, meta) {
        return (header.raw.creator_pid == pid).then(|| header.creator_alive());
    }
    let mut head = [0u8; 8];
    let n = (meta.len() as usize).min(head.len());
    use std::os::unix::fs::FileExt;
    file.read_exact_at(&mut head[..n], 0).ok()?;
    head[..n].iter().all(|&b| b == 0).then(|| pid_alive(pid))
}

/// The files under private build names in `/dev/shm` that hold a build (see
/// [`UnfinishedBuild`]), by name. Files this process may not read are left out.
///
/// # Errors
///
/// [`RegionError::Io`] if `/dev/shm` cannot be read.
pub fn unfinished_builds() -> Result<Vec<UnfinishedBuild>, RegionError> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| plain_io("read_dir", SHM_DIR, e))?;
    let mut out = vec![];
    for e in dir.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some((region, pid)) = parse_private_name(&file_name) else {
            continue;
        };
        let Ok(Some((file, meta))) = open_unfollowed(&e.path(), &file_name) else {
            continue;
        };
        let Some(alive) = build_alive(&file, &meta, pid) else {
            continue;
        };
        out.push(UnfinishedBuild {
            file_name,
            region,
            builder_pid: pid,
            builder_alive: alive,
            bytes: meta.len(),
            owner_uid: meta.uid(),
        });
    }
    out.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(out)
}

/// Removes the file `file_name` (a private build name in `/dev/shm`) left by a builder
/// that died: only if it is ours, holds a build (see [`UnfinishedBuild`]), and its
/// builder no longer runs. Returns whether it removed it.
///
/// # Errors
///
/// [`RegionError::BadName`] if `file_name` is not a private build name,
/// [`RegionError::WrongOwner`] for another user's file, [`RegionError::BadMagic`] for a
/// file that is not a build, [`RegionError::UnlinkDenied`], [`RegionError::Io`]. A live
/// builder is not an error: the result is `Ok(false)`.
pub fn remove_unfinished_build(file_name: &str) -> Result<bool, RegionError> {
    let Some((_, pid)) = parse_private_name(file_name) else {
        return Err(RegionError::BadName {
            name: file_name.to_string(),
            why: "it is not a private build name (<region>.tmp-<pid>-<n>)",
        });
    };
    let path = Path::new(SHM_DIR).join(file_name);
    let Some((file, meta)) = open_unfollowed(&path, file_name)? else {
        return Ok(false);
    };
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(RegionError::WrongOwner {
            name: file_name.to_string(),
            found: meta.uid(),
            expected: me,
        });
    }
    match build_alive(&file, &meta, pid) {
        None => Err(RegionError::BadMagic(file_name.to_string())),
        Some(true) => Ok(false),
        Some(false) => unlink_checked(&path, &meta, file_name),
    }
}

impl Region {
    /// What the header of region `name` says, read from the file without mapping it,
    /// attaching to it or checking its owner: for tools that list regions.
    ///
    /// # Errors
    ///
    /// [`RegionError::NotFound`], [`RegionError::PermissionDenied`],
    /// [`RegionError::BadMagic`] for a file that is not a region, [`RegionError::Io`].
    pub fn peek(name: &RegionName) -> Result<RegionInfo, RegionError> {
        let Some((file, meta)) = open_unfollowed(&name.file_path(), name.as_str())? else {
            return Err(RegionError::NotFound(name.to_string()));
        };
        let h = read_header(&file, &meta).ok_or_else(|| RegionError::BadMagic(name.to_string()))?;
        Ok(RegionInfo {
            id: RegionId(h.raw.id),
            size: h.raw.size,
            version: h.raw.version,
            creator_pid: h.raw.creator_pid,
            creator_start: h.raw.creator_start,
            creator_pid_ns: h.pid_ns,
            mixed_namespaces: h.mixed,
            registry_slots: h.registry_slots,
            committed: h.committed.min(meta.len()),
        })
    }

    /// Removes a region left behind by a dead creator: only if the file is ours, is a
    /// shmval region, its creator is provably no longer running (see
    /// [`RegionInfo::creator_alive`]: never across pid namespaces, nor on a region whose
    /// processes live in several), and no process of its registry is alive (its slot's
    /// lock held, which the kernel sees whatever the pid namespace). Returns whether it
    /// removed it.
    ///
    /// # Errors
    ///
    /// [`RegionError::WrongOwner`] for another user's file, [`RegionError::BadMagic`] for
    /// a file that is not a region, [`RegionError::UnlinkDenied`], [`RegionError::Io`]. A
    /// live creator is not an error: the result is `Ok(false)`.
    pub fn remove_stale(name: &RegionName) -> Result<bool, RegionError> {
        Self::remove_stale_trusting(name, None)
    }

    /// [`remove_stale`](Self::remove_stale), trusting the files of group `group` as
    /// attaching does (see `trust`). Our own file may have any mode: it is ours to remove.
    pub(super) fn remove_stale_trusting(
        name: &RegionName,
        group: Option<u32>,
    ) -> Result<bool, RegionError> {
        let path = name.file_path();
        let Some((file, meta)) = open_unfollowed(&path, name.as_str())? else {
            return Ok(false);
        };
        if !meta.file_type().is_file() {
            return Err(RegionError::BadMagic(name.to_string()));
        }
        trust::check(
            name.as_str(),
            FileOwner::of(&meta),
            nix::unistd::geteuid().as_raw(),
            group,
            0o777,
            trust::is_member,
        )?;
        let header =
            read_header(&file, &meta).ok_or_else(|| RegionError::BadMagic(name.to_string()))?;
        if header.creator_alive() || registry::file_has_live_process(&file, header.registry_slots) {
            return Ok(false);
        }
        // Unlink only the file we checked: the name may have been replaced meanwhile.
        unlink_checked(&path, &meta, name.as_str())
    }
}
