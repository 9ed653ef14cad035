//! Whose region files a process trusts: its own, and, when told to, those of the members
//! of one group.
//!
//! `/dev/shm` is writable by every user, so a file found there may be anyone's. A process
//! uses a file of its own effective uid. With a trusted group ([`AttachOptions::group`]),
//! it also uses a file of another uid whose group is that group, if the process is a
//! member of it and the file grants the group read and write and others nothing. Another
//! user cannot squat a name with such a file: giving a file a group requires membership
//! (`chgrp`), so a file of another uid with any other group is refused
//! ([`RegionError::WrongOwner`]).
//!
//! [`AttachOptions::group`]: super::AttachOptions::group

use super::error::RegionError;

/// What the check needs to know about a file: its owner, group and permission bits.
#[derive(Clone, Copy, Debug)]
pub(super) struct FileOwner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl FileOwner {
    pub(super) fn of(meta: &std::fs::Metadata) -> FileOwner {
        use std::os::unix::fs::MetadataExt;
        FileOwner {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o777,
        }
    }
}

/// Whether this process is a member of group `gid`: its effective group or one of its
/// supplementary groups.
pub(super) fn is_member(gid: u32) -> bool {
    nix::unistd::getegid().as_raw() == gid
        || nix::unistd::getgroups().is_ok_and(|g| g.iter().any(|g| g.as_raw() == gid))
}

/// Checks that the file `name` (described by `file`) may be used by a process of
/// effective uid `me` that trusts group `group` (if any) and accepts the permission bits
/// `allowed_mode` on its own files; `member` says whether the process is in a group.
pub(super) fn check(
    name: &str,
    file: FileOwner,
    me: u32,
    group: Option<u32>,
    allowed_mode: u32,
    member: impl Fn(u32) -> bool,
) -> Result<(), RegionError> {
    let trusted = group.filter(|&g| g == file.gid);
    let allowed = if file.uid == me {
        // Our own file: the bits asked for, and the trusted group's read and write.
        allowed_mode | if trusted.is_some() { 0o060 } else { 0 }
    } else {
        let Some(gid) = trusted else {
            return Err(RegionError::WrongOwner {
                name: name.to_string(),
                found: file.uid,
                expected: me,
            });
        };
        if !member(gid) {
            return Err(RegionError::NotInGroup {
                name: name.to_string(),
                gid,
            });
        }
        if file.mode & 0o060 != 0o060 {
            // Not shared with the group after all (root could still open it).
            return Err(RegionError::PermissionDenied(name.to_string()));
        }
        // Another member's file: the group's bits, never any for others.
        (allowed_mode & 0o070) | 0o060
    };
    if file.mode & !allowed & 0o077 != 0 {
        return Err(RegionError::InsecureMode {
            name: name.to_string(),
            mode: file.mode,
            allowed,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: u32 = 1000;
    const OTHER: u32 = 1001;
    const G: u32 = 500;

    fn file(uid: u32, gid: u32, mode: u32) -> FileOwner {
        FileOwner { uid, gid, mode }
    }

    fn check_as(file: FileOwner, group: Option<u32>, allowed: u32, in_g: bool) -> String {
        match check("r", file, ME, group, allowed, |g| in_g && g == G) {
            Ok(()) => "ok".into(),
            Err(RegionError::WrongOwner { .. }) => "owner".into(),
            Err(RegionError::NotInGroup { .. }) => "group".into(),
            Err(RegionError::InsecureMode { .. }) => "mode".into(),
            Err(RegionError::PermissionDenied(_)) => "denied".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn our_own_files_as_before() {
        assert_eq!(check_as(file(ME, G, 0o600), None, 0o600, false), "ok");
        assert_eq!(check_as(file(ME, G, 0o660), None, 0o600, false), "mode");
        assert_eq!(check_as(file(ME, G, 0o660), None, 0o660, false), "ok");
        assert_eq!(check_as(file(ME, G, 0o644), None, 0o640, false), "mode");
    }

    #[test]
    fn our_own_file_shared_with_the_trusted_group() {
        assert_eq!(check_as(file(ME, G, 0o660), Some(G), 0o600, true), "ok");
        // With another group, the group bits let others in.
        assert_eq!(
            check_as(file(ME, G + 1, 0o660), Some(G), 0o600, true),
            "mode"
        );
        assert_eq!(check_as(file(ME, G, 0o666), Some(G), 0o600, true), "mode");
    }

    #[test]
    fn another_members_file() {
        assert_eq!(check_as(file(OTHER, G, 0o660), Some(G), 0o600, true), "ok");
        assert_eq!(
            check_as(file(OTHER, G, 0o640), Some(G), 0o600, true),
            "denied"
        );
        // Nothing for others, whatever the options allow.
        assert_eq!(
            check_as(file(OTHER, G, 0o666), Some(G), 0o666, true),
            "mode"
        );
        assert_eq!(
            check_as(file(OTHER, G, 0o664), Some(G), 0o600, true),
            "mode"
        );
        // Not a member: refused.
        assert_eq!(
            check_as(file(OTHER, G, 0o660), Some(G), 0o600, false),
            "group"
        );
    }

    #[test]
    fn a_squatter_is_refused() {
        // Another uid with another group, or with no group trusted at all.
        assert_eq!(
            check_as(file(OTHER, G + 1, 0o660), Some(G), 0o600, true),
            "owner"
        );
        assert_eq!(check_as(file(OTHER, G, 0o660), None, 0o660, true), "owner");
    }
}
