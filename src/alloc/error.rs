//! [`AllocError`]: everything creating, attaching or using a pool can fail with.

use crate::region::RegionError;

/// Why a pool operation failed.
///
/// Only [`Corrupted`](AllocError::Corrupted) says anything about the pool itself; every other
/// variant is about the request and leaves the pool exactly as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    /// No free block can hold the request now.
    #[error(
        "out of pool memory: {requested} bytes requested, the largest free block holds \
         {largest_free}"
    )]
    OutOfMemory {
        /// The size asked for.
        requested: u64,
        /// The largest size (at alignment 16 or less) an allocation could get now.
        largest_free: u64,
    },
    /// No free block can hold the request, and the region could not grow to make one
    /// (its maximum reached, or `/dev/shm` full: the cause says which, with the figures).
    #[error(
        "out of pool memory: {requested} bytes requested, the largest free block holds \
         {largest_free}, and the pool cannot grow: {cause}"
    )]
    CannotGrow {
        /// The size asked for.
        requested: u64,
        /// The largest size an allocation could get now.
        largest_free: u64,
        /// Why the region did not grow.
        #[source]
        cause: RegionError,
    },
    /// The alignment is not a power of two of at most [`MAX_ALIGN`](super::MAX_ALIGN).
    #[error("bad alignment {align}: a power of two from 1 to 64 is required")]
    BadAlign {
        /// The alignment asked for.
        align: u64,
    },
    /// The request is larger than the whole pool could ever hold.
    #[error("request of {size} bytes is larger than the pool")]
    TooLarge {
        /// The size asked for.
        size: u64,
    },
    /// The offset names a block that is already free.
    #[error("double free of offset {offset:#x}")]
    DoubleFree {
        /// The offset passed to `free`.
        offset: u64,
    },
    /// The offset was never handed out by this pool (or its block's header was overwritten).
    #[error("offset {offset:#x} was not handed out by this pool")]
    InvalidOffset {
        /// The offset passed in.
        offset: u64,
    },
    /// The region holds no pool: the pool magic is missing (0 means never formatted).
    #[error("the region holds no pool (pool magic {found:#018x})")]
    BadMagic {
        /// The word found where the magic belongs.
        found: u64,
    },
    /// The pool was formatted by a build whose pool structures differ.
    #[error("pool layout fingerprint {found:#018x}, this build has {expected:#018x}")]
    LayoutMismatch {
        /// The fingerprint in the pool header.
        found: u64,
        /// The fingerprint of this build.
        expected: u64,
    },
    /// [`Pool::create`](super::Pool::create) found a pool already formatted in the region.
    #[error("the region already holds a pool")]
    AlreadyFormatted,
    /// The region has no room for the pool header and one block.
    #[error("region of {size} bytes is too small for a pool (at least {needed} needed)")]
    RegionTooSmall {
        /// The region's size.
        size: u64,
        /// The smallest size that holds a pool.
        needed: u64,
    },
    /// The pool's structures contradict themselves. The pool is poisoned: this and every
    /// later operation on it fails with this error.
    #[error("pool corrupted: {what}")]
    Corrupted {
        /// What was found wrong.
        what: String,
    },
    /// The pool lock stayed held by a live thread (a stopped or slow process) until the
    /// caller's deadline; nothing changed.
    #[error("timed out waiting for the pool lock, held by a live thread")]
    TimedOut,
    /// The region refused an access.
    #[error(transparent)]
    Region(#[from] RegionError),
}

impl AllocError {
    pub(crate) fn corrupted(what: impl Into<String>) -> AllocError {
        AllocError::Corrupted { what: what.into() }
    }
}
