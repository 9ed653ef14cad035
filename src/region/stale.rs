//! Stale regions: telling whether a creator still runs, and removing what a dead one left.

use std::os::unix::fs::MetadataExt;

use super::error::RegionError;
use super::header::{RawHeader, HEADER_SIZE, MAGIC, RAW_HEADER_SIZE};
use super::mapping::{io_err, Region};
use super::name::RegionName;
use crate::sync;

/// Whether the process `pid` with start key `start` still runs; `true` when in doubt.
/// A key of 0 means the creator could not read its own key: then any process with that
/// pid counts as the creator.
pub(super) fn creator_alive(pid: u32, start: u64) -> bool {
    if start == 0 {
        return !matches!(
            std::fs::metadata(format!("/proc/{pid}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        );
    }
    sync::process_alive(pid, start)
}

impl Region {
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
