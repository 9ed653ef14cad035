//! [`RegionError`]: everything creating, attaching or reading a region can fail with.

use std::io;

/// Why a region could not be created, attached, or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegionError {
    /// The name breaks the naming rules.
    #[error(
        "bad region name {name:?}: {why}; a name is 1 to 200 bytes of A-Z, a-z, 0-9, '.', \
         '_' or '-', not starting with '.'"
    )]
    BadName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// The requested size is too small or too large for a region.
    #[error("bad region size {size}: {why}")]
    BadSize {
        /// The size asked for.
        size: u64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A region of this name exists already.
    #[error("region {0:?} already exists")]
    AlreadyExists(String),
    /// The private name a region is built under, where the system cannot build it in an
    /// unnamed file, is held by a file this build did not make: another user's (a
    /// squatter), or too many of our own left by earlier processes with our pid.
    #[error(
        "cannot build region {name:?}: its private build name {private:?} in /dev/shm is \
         held by a file of uid {owner}"
    )]
    BuildNameTaken {
        /// The region's name.
        name: String,
        /// The private name that is taken.
        private: String,
        /// The uid owning the file there.
        owner: u32,
    },
    /// No region of this name exists.
    #[error("region {0:?} not found")]
    NotFound(String),
    /// The operating system refused access.
    #[error("permission denied for region {0:?}")]
    PermissionDenied(String),
    /// The file belongs to another user (and not to a trusted group): it is not ours to
    /// use or remove.
    #[error(
        "region {name:?} is owned by uid {found}, not by us (uid {expected}), nor shared with \
         a group we trust"
    )]
    WrongOwner {
        /// The region's name.
        name: String,
        /// The file's owner.
        found: u32,
        /// Our effective uid.
        expected: u32,
    },
    /// The region is shared with a group this process is not a member of; or, creating,
    /// the process may not give a file that group.
    #[error("region {name:?} is shared with group {gid}, which this process is not a member of")]
    NotInGroup {
        /// The region's name.
        name: String,
        /// The group.
        gid: u32,
    },
    /// The file grants group or other users access that the attach options do not allow.
    #[error(
        "region {name:?} has mode {mode:#o}, which lets other users in (allowed: {allowed:#o})"
    )]
    InsecureMode {
        /// The region's name.
        name: String,
        /// The file's permission bits.
        mode: u32,
        /// The bits the attach options allow.
        allowed: u32,
    },
    /// The system refused to unlink the file: `/dev/shm` is sticky, so only a file's owner
    /// (or root) may remove it, even when others may use it.
    #[error(
        "cannot unlink {name:?}, a file of uid {owner}: {source} (in the sticky /dev/shm \
         only a file's owner, or root, may unlink it)"
    )]
    UnlinkDenied {
        /// The file's name in `/dev/shm`.
        name: String,
        /// The file's owner.
        owner: u32,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `/dev/shm` has no room for a region of this size.
    #[error("no space in /dev/shm for region {name:?} of {size} bytes")]
    NoSpace {
        /// The region's name.
        name: String,
        /// The size asked for.
        size: u64,
    },
    /// Growing the region would pass the maximum it was made with.
    #[error("region {name:?} cannot grow to {wanted} bytes: its maximum is {max}")]
    MaxReached {
        /// The region's name.
        name: String,
        /// Its maximum size.
        max: u64,
        /// The size a growth asked for.
        wanted: u64,
    },
    /// `/dev/shm` has no room for the pages a growth needs.
    #[error(
        "no space in /dev/shm to grow region {name:?} from {from} to {to} bytes \
         ({free} bytes free there)"
    )]
    NoSpaceToGrow {
        /// The region's name.
        name: String,
        /// Its committed size.
        from: u64,
        /// The size asked for.
        to: u64,
        /// What `/dev/shm` had free when the growth failed.
        free: u64,
    },
    /// The file does not start with the region magic: not a shmval region.
    #[error("region {0:?} is not a shmval region (bad magic)")]
    BadMagic(String),
    /// The region was made by a build with another layout version.
    #[error("region {name:?} has layout version {found}, this build reads version {expected}")]
    VersionMismatch {
        /// The region's name.
        name: String,
        /// The version in the header.
        found: u32,
        /// The version this build writes.
        expected: u32,
    },
    /// The region was made by a build whose shared structures differ in size or alignment.
    #[error(
        "region {name:?} has layout fingerprint {found:#018x}, this build has {expected:#018x}"
    )]
    LayoutMismatch {
        /// The region's name.
        name: String,
        /// The fingerprint in the header.
        found: u64,
        /// The fingerprint of this build.
        expected: u64,
    },
    /// The file is shorter than its header says (or than a header).
    #[error("region {name:?} is truncated: the file holds {found} bytes, {expected} expected")]
    Truncated {
        /// The region's name.
        name: String,
        /// The file's size.
        found: u64,
        /// The size the header declares (or the header's own size).
        expected: u64,
    },
    /// The creator did not publish the region before the deadline.
    #[error("region {0:?} was not ready in time")]
    NotReady(String),
    /// The break checker asked to stop waiting.
    #[error("waiting for region {0:?} was broken off by the break checker")]
    Broken(String),
    /// The region's contents contradict themselves.
    #[error("region {name:?} is corrupted: {what}")]
    Corrupted {
        /// The region's name.
        name: String,
        /// What was found wrong.
        what: String,
    },
    /// Every slot of the region's process registry belongs to a live process.
    #[error(
        "region {name:?} has {slots} registry slots, all taken by live processes: \
         make it with more (CreateOptions::registry, ShmMain::processes)"
    )]
    RegistryFull {
        /// The region's name.
        name: String,
        /// Its slots.
        slots: u32,
    },
    /// An offset read from the region points outside it or is misaligned for its type.
    #[error(
        "bad offset {offset:#x} for {len} bytes aligned to {align} in a region of {size} bytes"
    )]
    BadOffset {
        /// The offset.
        offset: u64,
        /// Bytes it should cover.
        len: u64,
        /// Alignment it needs.
        align: u64,
        /// The region's size.
        size: u64,
    },
    /// Another operating-system error.
    #[error("{op} on region {name:?}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The region's name.
        name: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}
