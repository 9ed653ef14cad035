//! [`SidesError`]: why a side or the main pool could not start.

use crate::alloc::AllocError;
use crate::queue::PipeError;
use crate::region::RegionError;

/// Why [`ShmMain`](super::ShmMain), [`ServerSide`](super::ServerSide),
/// [`ClientSide`](super::ClientSide) or a [`Lookup`](super::Lookup) could not start, or an
/// operation on the pipe directory or the [`Names`](super::Names) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SidesError {
    /// A pipe name breaks the naming rules.
    #[error(
        "bad pipe name {name:?}: {why}; a pipe name is 1 to 64 bytes of A-Z, a-z, 0-9, '.', \
         '_' or '-', not starting with '.'"
    )]
    BadPipeName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// The name of a value breaks the naming rules.
    #[error(
        "bad value name {name:?}: {why}; a value name is 1 to 64 bytes of A-Z, a-z, 0-9, '.', \
         '_' or '-', not starting with '.'"
    )]
    BadValueName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// The region could not be created or attached.
    #[error(transparent)]
    Region(#[from] RegionError),
    /// The pool could not be formatted, attached, or could not allocate.
    #[error(transparent)]
    Alloc(#[from] AllocError),
    /// A pipe could not be created or opened.
    #[error(transparent)]
    Pipe(#[from] PipeError),
    /// A live pipe of this name exists (ask to reattach to use it).
    #[error("pipe {0:?} already exists in the region")]
    PipeExists(String),
    /// The directory holds the maximum number of pipes.
    #[error("the region's pipe directory is full ({0} pipes)")]
    DirectoryFull(usize),
    /// A value is published under this name already (`replace` replaces it).
    #[error("a value named {0:?} is already published in the region")]
    NameExists(String),
    /// The names directory holds the maximum number of named values.
    #[error("the region's names directory is full ({0} names)")]
    NamesFull(usize),
    /// The value to publish lives in another region than the names directory.
    #[error(
        "the value given for {0:?} lives in another region: a value is published only in \
         the region of its own pool"
    )]
    ForeignValue(String),
    /// The names directory's shared state does not check out.
    #[error("the names directory is corrupted: {0}")]
    NamesCorrupted(&'static str),
    /// The region holds no pipe directory: it was not made by `ShmMain`.
    #[error("region {0:?} has no pipe directory (not created by ShmMain)")]
    NoDirectory(String),
    /// A file that is not a region of ours holds the name `ShmMain` wants.
    #[error("cannot replace {name:?}: {why}")]
    NameTaken {
        /// The region name.
        name: String,
        /// Why it cannot be removed.
        why: String,
    },
    /// Nothing arrived before the side's timeout.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: std::time::Duration,
    },
    /// The break checker asked to stop waiting.
    #[error("waiting for {0} was broken off by the break checker")]
    Broken(String),
    /// The directory's shared state does not check out.
    #[error("the pipe directory is corrupted: {0}")]
    Corrupted(&'static str),
}
