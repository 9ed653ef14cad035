//! Named shared-memory regions: naming, creation, attachment, the header, and offsets.
//!
//! - [`RegionName`]: validated names.
//! - [`Region`]: create (built privately, published atomically) or attach (every header
//!   field checked against the file), resolve offsets, unlink on drop.
//! - [`Offset`], [`Shared`]: positions inside a region and the types viewable there.
//! - [`RegionError`]: one variant per way it can fail.
//!
//! # Creating
//!
//! [`Region::create`] never opens or truncates a file that already carries the name. It
//! builds the region under a private name (`<name>.tmp-<pid>-<n>`, opened with
//! `O_CREAT | O_EXCL`, mode 0600 unless [`CreateOptions::mode`] says otherwise), sizes it
//! with `ftruncate`, reserves every page with `posix_fallocate` (so a full `/dev/shm` is a
//! [`RegionError::NoSpace`] now rather than a `SIGBUS` on first touch later), maps it,
//! writes the header, and publishes the ready state (a release store and a futex wake).
//! Only then is the file hard-linked under its real name; `link` fails if the name is
//! taken, which makes publication atomic and exclusive ([`RegionError::AlreadyExists`]).
//! The private name is unlinked whatever happens, so nobody ever opens a half-built region
//! under the real name, and a failed creation leaves nothing behind.
//!
//! # Attaching
//!
//! `/dev/shm` is writable by every user, so [`Region::attach`] trusts nothing it finds
//! there. Before mapping it checks with `fstat` that the file is a regular file owned by
//! our effective uid, that its mode grants group and other users nothing beyond
//! [`AttachOptions::allowed_mode`], and that it holds at least a header. After mapping it
//! copies the header once and checks the copy: magic, layout version, layout fingerprint,
//! and a declared size equal to the file's. Then it waits for the ready state, up to a
//! deadline, waking every `micro_sleep` to run the break checker. Each failed check is its
//! own [`RegionError`] variant.
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
//! be a region, and its creator to be dead) unlink the name only while it still stands
//! for the file they checked (same device and inode).

mod attach;
mod create;
mod error;
pub mod header;
mod mapping;
mod name;
mod offset;
mod stale;

pub use attach::AttachOptions;
pub use create::{CreateOptions, Unpublished};
pub use error::RegionError;
pub use mapping::{Region, RegionId, RegionInfo, MAX_REGION_SIZE};
pub(crate) use name::name_problem;
pub use name::{RegionName, MAX_NAME_LEN};
pub use offset::{Offset, Shared};

/// Where `shm_open` names live on Linux.
pub const SHM_DIR: &str = "/dev/shm";
