//! Named shared-memory regions: naming, creation, attachment, the header, and offsets.
//!
//! - [`RegionName`]: validated names.
//! - [`Region`]: create (built privately, published atomically) or attach (every header
//!   field checked against the file), resolve offsets, unlink on drop.
//! - [`Offset`], [`Shared`]: positions inside a region and the types viewable there.
//! - [`RegionError`]: one variant per way it can fail.

mod error;
pub mod header;
mod mapping;
mod name;
mod offset;

pub use error::RegionError;
pub use mapping::{AttachOptions, CreateOptions, Region, RegionId, RegionInfo, MAX_REGION_SIZE};
pub use name::{RegionName, MAX_NAME_LEN};
pub use offset::{Offset, Shared};

/// Where `shm_open` names live on Linux.
pub const SHM_DIR: &str = "/dev/shm";
