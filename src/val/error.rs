//! The one error type of the values layer.

use super::Tag;

/// The error of a lower layer kept inside a [`ValError`] (which is `Clone` and `Eq`):
/// shared, and compared by its message.
#[derive(Clone)]
pub struct Source(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl Source {
    /// Keeps `e`.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Source {
        Source(std::sync::Arc::new(e))
    }

    /// The error kept.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Source {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Source) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Source {}

/// What can go wrong converting, reading or changing a [`Val`](super::Val).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValError {
    /// The value holds another type than the operation needs.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the operation accepts, e.g. `"an integer"` or `"Tab or OTab"`.
        expected: &'static str,
        /// The tag of the value it was given.
        found: Tag,
    },
    /// A number of the right kind does not fit the target type.
    #[error("{value} does not fit in {target}")]
    OutOfRange {
        /// The value, printed as a Python literal.
        value: String,
        /// The Rust type it was converted to.
        target: &'static str,
    },
    /// A table has no entry under the key a lookup required
    /// ([`field`](super::shared::ShmRef::field)).
    #[error("missing key {key}")]
    MissingKey {
        /// The key, printed as a Python literal (`'scale'`, `7`).
        key: String,
    },
    /// A sequence has no element at the index a lookup required
    /// ([`at`](super::shared::ShmRef::at), or [`field`](super::shared::ShmRef::field) with an
    /// integer key).
    #[error("index {index} is out of range for a sequence of {len} elements")]
    IndexOutOfRange {
        /// The index, printed as a Python literal (it may be negative or past `usize`).
        index: String,
        /// The sequence's length.
        len: usize,
    },
    /// An element of a sequence or array could not be converted (a typed copy such as
    /// [`to_vec`](super::shared::ShmRef::to_vec)): which one, and why.
    #[error("element {index}: {error}")]
    Element {
        /// The element's position.
        index: usize,
        /// What converting it answered.
        error: Box<ValError>,
    },
    /// Text is not a value this layer can read.
    ///
    /// `line` and `column` count from 1; `column` counts characters, not bytes.
    #[error("line {line}, column {column}: expected {expected}, found {found}")]
    Parse {
        /// The line of the offending character.
        line: usize,
        /// The column of the offending character, in characters.
        column: usize,
        /// What the parser could have accepted there.
        expected: String,
        /// What it found instead, e.g. `'x'` or `end of input`.
        found: String,
    },
    /// The pool has no free block for a shared value (or a part of one). Whatever the
    /// operation had built is freed again.
    #[error(
        "out of pool memory: {requested} bytes requested, the largest free block holds \
         {largest_free}"
    )]
    OutOfMemory {
        /// The block size asked for.
        requested: u64,
        /// The largest block the pool could hand out at the time.
        largest_free: u64,
    },
    /// The pool allocator failed otherwise (a corrupt or poisoned pool, a lock that timed
    /// out); its error is the source.
    #[error("pool: {source}")]
    Pool {
        /// The allocator's error.
        #[source]
        source: Source,
    },
    /// A shared value from one region was to be linked into a value of another. Only
    /// values of the same region can hold each other; copy across with `to_val` and
    /// `share`.
    #[error("value of region {found:032x} cannot be linked into region {expected:032x}")]
    ForeignRegion {
        /// The id of the region the container lives in.
        expected: u128,
        /// The id of the region the value lives in.
        found: u128,
    },
    /// The shared value has other references (handles or containers holding it), so it
    /// is read-only.
    #[error("the shared value has other references: it is read-only")]
    NotUnique,
    /// A locked value is read and written only under its lock
    /// ([`ShmLocked::lock`](crate::ShmLocked::lock)), or copied out by
    /// [`snapshot`](crate::ShmLocked::snapshot); and it is never put inside another value.
    #[error("a locked value: read it under its lock, or take a snapshot; it cannot be put inside another value")]
    Locked,
    /// The calling thread already holds this locked value's lock: taking it again would
    /// wait for itself.
    #[error("this thread already holds the locked value's lock")]
    Relock,
    /// A locked value's lock stayed held by a live thread until the deadline.
    #[error("timed out after {waited:?} waiting for a locked value's lock, held by a live thread")]
    LockTimeout {
        /// How long the call waited.
        waited: std::time::Duration,
    },
    /// A shared value failed a check: a bad offset, tag, length, refcount or string. The
    /// memory was written by a process that did not follow the format (or was changed
    /// since); nothing was read past the check.
    #[error("corrupt shared value at offset {offset:#x}: {what}")]
    Corrupt {
        /// The region offset of the object or cell found wrong.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// A value nests deeper than an operation that copies, shares or compares it follows.
    #[error("the value nests deeper than {limit} levels")]
    TooDeep {
        /// The depth limit.
        limit: usize,
    },
    /// Copying a shared value out (or printing it, which copies) would build more than
    /// the limit allows on the heap. A container may hold one child many times, so a few
    /// objects in a pool can stand for a value too large to copy; it is refused before
    /// anything is built. Views read it in place.
    #[error(
        "the shared value expands to {values} values, about {bytes} bytes on the heap, past \
         the limit of {limit} bytes: read it in place through views"
    )]
    TooLarge {
        /// How many values (containers, elements, keys and values) the copy would hold
        /// (saturating at `u64::MAX`).
        values: u64,
        /// About how many heap bytes the copy would take (saturating).
        bytes: u64,
        /// The limit, in bytes.
        limit: u64,
    },
}
