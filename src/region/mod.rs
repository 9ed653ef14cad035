//! Named shared-memory regions: naming, creation, attachment, the header, and offsets.
//!
//! - [`RegionName`]: validated names.
//! - [`Region`]: create (built unseen, published atomically) or attach (every header
//!   field checked against the file), resolve offsets, unlink on drop.
//! - [`Offset`], [`Shared`]: positions inside a region and the types viewable there.
//! - [`RegionError`]: one variant per way it can fail.
//! - [`unfinished_builds`], [`remove_unfinished_build`]: what builders killed while building
//!   under a private name left behind.
//!
//! # Creating
//!
//! [`Region::create`] never opens or truncates a file that already carries the name. It
//! builds the region in a file that has no name yet: `/dev/shm` opened with `O_TMPFILE`
//! (mode 0600 unless [`CreateOptions::mode`] says otherwise, set exactly with `fchmod`),
//! sized with `ftruncate`, the header written (in the building state), every page
//! reserved with `posix_fallocate` (so a full `/dev/shm` is a [`RegionError::NoSpace`]
//! now rather than a `SIGBUS` on first touch later), and mapped. Publication sets the
//! ready state (a release store and a futex wake), then gives the file its name with
//! `linkat` of `/proc/self/fd/<fd>`; `linkat` fails if the name is taken, which makes
//! publication atomic and exclusive ([`RegionError::AlreadyExists`]). Nobody ever opens a
//! half-built region, and a creator that fails or is killed leaves nothing behind: an
//! unnamed file goes with its last descriptor.
//!
//! Where `O_TMPFILE` is not supported or `/proc` is missing, the region is built the same
//! way under the private name `<name>.tmp-<pid>-<n>` (`O_CREAT | O_EXCL`), hard-linked
//! under the real name at publication and unlinked then or on failure. A creator killed
//! meanwhile leaves that file: [`unfinished_builds`] lists such files and
//! [`remove_unfinished_build`] removes one whose builder is dead (the file ours, holding
//! a header naming that builder or still empty). A private name held by another user is
//! [`RegionError::BuildNameTaken`], naming the file and its owner.
//!
//! # Growing
//!
//! A region made with [`CreateOptions::max_size`] starts at its size and may grow up to
//! the maximum. Every process maps the whole maximum once (address space, not memory),
//! so a growth moves nothing and needs no remapping: offsets, references and handles stay
//! valid. [`Region::grow`] allocates the new pages with `posix_fallocate` (a full
//! `/dev/shm` is [`RegionError::NoSpaceToGrow`], with what it has free, never a `SIGBUS`
//! later; past the maximum, [`RegionError::MaxReached`]), then publishes the committed
//! size in the header. Offsets resolve only below the committed size this process has
//! checked: one past it makes the process look at the header again and, if it says more,
//! at the file's size (`fstat`), so a header word written wrongly by another process never
//! lets a process touch pages past the file's end. A grower killed at any step leaves the
//! file at least as large as the committed size says, and the next growth allocates
//! again what it may have missed.
//!
//! # Attaching
//!
//! `/dev/shm` is writable by every user, so [`Region::attach`] trusts nothing it finds
//! there. Before mapping it checks with `fstat` that the file is a regular file owned by
//! our effective uid, that its mode grants group and other users nothing beyond
//! [`AttachOptions::allowed_mode`], and that it holds at least a header. After mapping it
//! copies the header once and checks the copy: magic, layout version, layout fingerprint,
//! and a committed size the file holds, within the declared maximum (which the file never
//! passes). Then it waits for the ready state, up to a
//! deadline, waking every `micro_sleep` to run the break checker. Each failed check is its
//! own [`RegionError`] variant.
//!
//! # Sharing with a group
//!
//! Services running as different users share regions through a group: the creator gives
//! the file that group ([`CreateOptions::group`], `fchown` before publication; it must be
//! a member) and mode 0660, and the others attach with [`AttachOptions::group`]. A file
//! of another uid is accepted only if its group is the trusted one, the caller is a member
//! of it, and its mode grants the group read and write and others nothing. A user outside
//! the group cannot give a file that group, so squatting stays refused
//! ([`RegionError::WrongOwner`]). `/dev/shm` is sticky: only a file's owner (or root) may
//! unlink it, so a member removing another's stale region
//! ([`AttachOptions::remove_stale`]) or a creator whose uid changed
//! ([`Region::try_unlink`]) is told so ([`RegionError::UnlinkDenied`]).
//!
//! # Offsets
//!
//! Offsets read from the region are untrusted: [`Region::resolve`],
//! [`Region::resolve_slice`], [`Region::bytes`] and [`Region::bytes_mut`] share one bounds
//! and alignment check, and a bad offset is a [`RegionError::BadOffset`], never undefined
//! behaviour.
//!
//! # Removing
//!
//! The creating handle unlinks the name on drop unless persisted; attachers never do.
//! Both the drop and [`Region::remove_stale`] (which also requires the file to be ours, to
//! be a region, and its creator to be provably dead) unlink the name only while it still
//! stands for the file they checked (same device and inode).
//!
//! # Pid namespaces
//!
//! Creators and lock owners are judged alive through `/proc`, which shows the processes of
//! one pid namespace only. Processes of several namespaces can share `/dev/shm`
//! (containers sharing an IPC namespace); each would see the others as dead, take their
//! locks and remove their regions. So the header records the creator's pid namespace (the
//! inode of `/proc/self/ns/pid`, 0 if unreadable), and an attacher whose namespace differs
//! (or is unreadable while the creator's is known, or the reverse) sets the region's
//! sticky mixed word, with a SeqCst store, before [`Region::attach`] returns. Every
//! [`Region`] handle registers that word as a liveness veto (`crate::sync`): while any
//! region mapped in a process is mixed, that process judges no lock owner dead. A lock
//! whose owner really died is then never taken over; waiters time out instead. The
//! creator is never judged dead across a namespace mismatch, on a mixed region, when
//! `/proc` does not work, or when death is otherwise unproven
//! ([`RegionInfo::creator_alive`]): [`Region::remove_stale`] then answers `Ok(false)`.
//! [`RegionInfo`] shows the creator's namespace and whether the region is mixed.

mod attach;
mod create;
mod current;
mod error;
mod grow;
pub mod header;
mod liveness;
mod mapping;
mod name;
mod offset;
mod registry;
mod stale;
mod trust;

pub use attach::AttachOptions;
pub use create::{shm_free_bytes, CreateOptions, Unpublished};
pub use error::RegionError;
pub(crate) use mapping::{ExtLayer, RegionExt};
pub use mapping::{Region, RegionId, RegionInfo, MAX_REGION_SIZE};
pub(crate) use name::name_problem;
pub use name::{RegionName, MAX_NAME_LEN};
pub use offset::{Offset, Shared};
pub use registry::{DeadSlot, SlotInfo, SlotState, DEFAULT_SLOTS, MAX_SLOTS};
pub use stale::{remove_unfinished_build, unfinished_builds, UnfinishedBuild};

/// Where `shm_open` names live on Linux.
pub const SHM_DIR: &str = "/dev/shm";
