//! Dynamic values in process memory, and their Python-literal text.
//!
//! [`Val`] holds every type of PicklingTools' `Val`: `None`, `Bool`, signed and unsigned
//! integers of 8 to 64 bits, arbitrary-precision `BigInt` and `BigUint`, `F32`, `F64`,
//! complex of both, `Str`, [`Tab`] (hash table keyed by values), [`OTab`] (insertion
//! ordered), `Arr` (list), `Tup` and typed numeric [`Array`]s. Containers hold their
//! contents by value: cloning a `Val` deep-copies it, which is also how a value is later
//! copied into a shared pool (each node's [`Tag`] and [`ElemType`] are stable byte codes
//! for that layout).
//!
//! Equality and hashing follow the original: numbers compare by value across types, a
//! `Tab` equals an `OTab` with the same entries; see [Equality and order](#equality-and-order).
//! Hashing uses a fixed SipHash-1-3 ([`FixedState`]) so every process agrees.
//!
//! ```
//! use shmval::{tup, val, Val};
//! let v: Val = "{'b': [1, 2.5, 'x'], 'a': (1,)}".parse()?;
//! assert_eq!(v["b"][1], 2.5);
//! assert_eq!(v, val!({"a": tup![1], "b": [1, 2.5, "x"]}));
//! assert_eq!(v.to_string(), "{'a': (1,), 'b': [1, 2.5, 'x']}");
//! assert_eq!(v.pretty().to_string(), "{\n    'a':(\n        1,\n    ),\n    'b':[\n        1,\n        2.5,\n        'x'\n    ]\n}");
//! # Ok::<(), shmval::ValError>(())
//! ```
//!
//! # Text
//!
//! `Display` prints the Python 3 literal (`{'a': 1, 'b': [1, 2.5, 'x']}`); whatever it
//! prints for `None`, bools, integers, `F64`, `C64`, strings, tables, lists and tuples,
//! Python's `ast.literal_eval` reads back to an equal value (`inf` and `nan` aside).
//! [`Val::pretty`] lays a value out as the original's `prettyPrint`. [`Val::parse`] (and
//! `str::parse`) reads both, Python's own `repr` output, and the original's forms.
//!
//! Departures from the original's text format:
//!
//! - A one-element tuple prints `(1,)` as Python does (the original printed `(1)`), and
//!   `(x)` parses as `x`.
//! - `-0.0` prints `-0.0` (the original printed `0.0`).
//! - Big integers print without the original's `L` suffix in `Display` (Python 3 has none);
//!   the pretty form keeps it, matching the original's `prettyPrint`, unless
//!   [`Pretty::big_suffix`] turns it off. The parser accepts it.
//! - Complex numbers print as Python does: `1.5j` when the real part is `+0.0` and the parts
//!   without `.0` (`(1+2j)`); the original always printed `(re+imj)`. The parser reads
//!   complex literals, which the original's could not.
//! - An `F32` (and each part of a `C32`) prints its exact value as a Python float (`0.1f32`
//!   is `0.10000000149011612`), so the text reads back to an equal `F64`; the original printed
//!   the shortest digits, which read back to a different number. Inside an `array(...,
//!   'f')` elements print their shortest digits, since the typecode says to read them as
//!   `f32`.
//! - A `Tab` prints its entries sorted by key ([`Val::total_cmp`]) rather than in hash
//!   order, so the text is deterministic.
//! - Array typecodes are the original's Numeric codes, except `u64` arrays print `'L'` and
//!   bool arrays `'?'` (the original printed `'l'` and `'b'`, the codes of `i64` and `u8`,
//!   so they could not be read back as what they were). Bool elements print `True`/`False`.
//! - An `OTab` prints `OrderedDict([(k, v), ...])` and an empty one `OrderedDict()`; the
//!   parser also takes Python 3.12's `OrderedDict({...})` and the original's `o{...}`.
//! - Strings follow Python 3: non-ASCII characters print as themselves, unprintable ones as
//!   `\xNN`, `\uNNNN` or `\UNNNNNNNN`. Python's notion of printable depends on its Unicode
//!   tables; this layer escapes controls, separators, common format characters, private-use
//!   characters and noncharacters, and prints unassigned code points as they are.
//! - `inf`, `-inf` and `nan` print as Python prints them; `ast.literal_eval` cannot read
//!   those, the parser here can.
//!
//! # Equality and order
//!
//! See the [`cmp`] module: numbers by exact value (`1 == 1.0 == True == BigInt 1`), NaN equal
//! to itself, tables by entries in any order, lists never equal to tuples. Complex numbers
//! are not ordered ([`PartialOrd`] answers `None`); [`Val::total_cmp`] orders everything.

mod array;
pub mod cmp;
mod convert;
mod error;
mod hash;
mod macros;
mod num;
mod parse;
mod pretty;
mod repr;
mod tag;
mod value;

pub use array::{Array, Elem};
pub use convert::array_vec;
pub use error::{Source, ValError};
pub use hash::{FixedState, TableHasher, ValHasher, K0, K1};
pub use parse::MAX_DEPTH;
pub use pretty::Pretty;
pub use tag::{ElemType, Tag};
pub use value::{Arr, Items, Iter, OTab, Tab, Tup, Val, ValIndex};

pub use num_bigint::{BigInt, BigUint};
pub use num_complex::{Complex32, Complex64};

#[cfg(not(shmval_loom))]
pub mod shared;
