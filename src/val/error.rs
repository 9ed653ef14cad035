//! The one error type of the values layer.

use super::Tag;

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
}
