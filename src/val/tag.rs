//! Stable one-byte codes naming each kind of value and of array element.
//!
//! The codes are the original's tag characters wherever those were unambiguous, so a dump
//! of a shared value reads like the original's. They are part of the shared-memory layout
//! (a shared value stores its [`Tag`] as a `u8`, and an array its [`ElemType`] too): never
//! renumber a variant, only add new ones.

use std::fmt;

/// The kind of a [`Val`](super::Val), as a stable byte code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Tag {
    /// `None`: the original's `'Z'`.
    None = b'Z',
    /// `bool`.
    Bool = b'b',
    /// `i8` (the original's `int_1`).
    I8 = b's',
    /// `u8` (`int_u1`).
    U8 = b'S',
    /// `i16` (`int_2`).
    I16 = b'i',
    /// `u16` (`int_u2`).
    U16 = b'I',
    /// `i32` (`int_4`).
    I32 = b'l',
    /// `u32` (`int_u4`).
    U32 = b'L',
    /// `i64` (`int_8`).
    I64 = b'x',
    /// `u64` (`int_u8`).
    U64 = b'X',
    /// Arbitrary-precision signed integer (`int_n`).
    BigInt = b'q',
    /// Arbitrary-precision unsigned integer (`int_un`).
    BigUint = b'Q',
    /// `f32` (`real_4`).
    F32 = b'f',
    /// `f64` (`real_8`).
    F64 = b'd',
    /// Complex of two `f32` (`complex_8`).
    C32 = b'F',
    /// Complex of two `f64` (`complex_16`).
    C64 = b'D',
    /// UTF-8 string.
    Str = b'a',
    /// Hash table keyed by values.
    Tab = b't',
    /// Insertion-ordered table.
    OTab = b'o',
    /// Tuple.
    Tup = b'u',
    /// List of values (the original's `'n'` with subtype `'Z'`).
    Arr = b'n',
    /// Typed numeric array; its [`ElemType`] is the subtype. The original used `'n'` plus
    /// the subtype for both lists and arrays; here the two have distinct codes.
    Array = b'N',
}

impl Tag {
    /// Every tag, in declaration order.
    pub const ALL: [Tag; 22] = [
        Tag::None,
        Tag::Bool,
        Tag::I8,
        Tag::U8,
        Tag::I16,
        Tag::U16,
        Tag::I32,
        Tag::U32,
        Tag::I64,
        Tag::U64,
        Tag::BigInt,
        Tag::BigUint,
        Tag::F32,
        Tag::F64,
        Tag::C32,
        Tag::C64,
        Tag::Str,
        Tag::Tab,
        Tag::OTab,
        Tag::Tup,
        Tag::Arr,
        Tag::Array,
    ];

    /// The tag with byte code `code`, if there is one.
    pub fn from_u8(code: u8) -> Option<Tag> {
        Tag::ALL.into_iter().find(|t| *t as u8 == code)
    }

    /// The variant's name, as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Tag::None => "None",
            Tag::Bool => "Bool",
            Tag::I8 => "I8",
            Tag::U8 => "U8",
            Tag::I16 => "I16",
            Tag::U16 => "U16",
            Tag::I32 => "I32",
            Tag::U32 => "U32",
            Tag::I64 => "I64",
            Tag::U64 => "U64",
            Tag::BigInt => "BigInt",
            Tag::BigUint => "BigUint",
            Tag::F32 => "F32",
            Tag::F64 => "F64",
            Tag::C32 => "C32",
            Tag::C64 => "C64",
            Tag::Str => "Str",
            Tag::Tab => "Tab",
            Tag::OTab => "OTab",
            Tag::Tup => "Tup",
            Tag::Arr => "Arr",
            Tag::Array => "Array",
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The element type of a typed [`Array`](super::Array), as a stable byte code.
///
/// The code is the scalar tag of the element (`'d'` for `f64`), which is unambiguous;
/// the text form uses [`ElemType::typecode`] instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ElemType {
    /// `i8`.
    I8 = b's',
    /// `u8`.
    U8 = b'S',
    /// `i16`.
    I16 = b'i',
    /// `u16`.
    U16 = b'I',
    /// `i32`.
    I32 = b'l',
    /// `u32`.
    U32 = b'L',
    /// `i64`.
    I64 = b'x',
    /// `u64`.
    U64 = b'X',
    /// `f32`.
    F32 = b'f',
    /// `f64`.
    F64 = b'd',
    /// Complex of two `f32`.
    C32 = b'F',
    /// Complex of two `f64`.
    C64 = b'D',
    /// `bool`.
    Bool = b'b',
}

impl ElemType {
    /// Every element type, in declaration order.
    pub const ALL: [ElemType; 13] = [
        ElemType::I8,
        ElemType::U8,
        ElemType::I16,
        ElemType::U16,
        ElemType::I32,
        ElemType::U32,
        ElemType::I64,
        ElemType::U64,
        ElemType::F32,
        ElemType::F64,
        ElemType::C32,
        ElemType::C64,
        ElemType::Bool,
    ];

    /// The element type with byte code `code`, if there is one.
    pub fn from_u8(code: u8) -> Option<ElemType> {
        ElemType::ALL.into_iter().find(|t| *t as u8 == code)
    }

    /// The typecode printed in `array([...], 'code')`.
    ///
    /// These are the original's Numeric codes, except two it shared with another type:
    /// `u64` prints `'L'` (the original printed `'l'`, as for `i64`) and `bool` prints `'?'`
    /// (the original printed `'b'`, as for `u8`).
    pub fn typecode(self) -> char {
        match self {
            ElemType::I8 => '1',
            ElemType::U8 => 'b',
            ElemType::I16 => 's',
            ElemType::U16 => 'w',
            ElemType::I32 => 'i',
            ElemType::U32 => 'u',
            ElemType::I64 => 'l',
            ElemType::U64 => 'L',
            ElemType::F32 => 'f',
            ElemType::F64 => 'd',
            ElemType::C32 => 'F',
            ElemType::C64 => 'D',
            ElemType::Bool => '?',
        }
    }

    /// The element type a text typecode names: the inverse of [`ElemType::typecode`].
    ///
    /// The original's shared codes read as the first type that used them: `'l'` as `i64`,
    /// `'b'` as `u8`.
    pub fn from_typecode(code: char) -> Option<ElemType> {
        ElemType::ALL.into_iter().find(|t| t.typecode() == code)
    }

    /// The scalar tag of one element.
    pub fn tag(self) -> Tag {
        match self {
            ElemType::I8 => Tag::I8,
            ElemType::U8 => Tag::U8,
            ElemType::I16 => Tag::I16,
            ElemType::U16 => Tag::U16,
            ElemType::I32 => Tag::I32,
            ElemType::U32 => Tag::U32,
            ElemType::I64 => Tag::I64,
            ElemType::U64 => Tag::U64,
            ElemType::F32 => Tag::F32,
            ElemType::F64 => Tag::F64,
            ElemType::C32 => Tag::C32,
            ElemType::C64 => Tag::C64,
            ElemType::Bool => Tag::Bool,
        }
    }
}
