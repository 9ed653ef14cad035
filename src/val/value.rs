//! The [`Val`] enum and its container helpers.

use std::collections::HashMap;
use std::ops::{Index, IndexMut};

use indexmap::IndexMap;
use num_bigint::{BigInt, BigUint};
use num_complex::{Complex32, Complex64};

use super::{Array, FixedState, Tag, ValError};

/// A hash table of values keyed by values, hashed with the fixed [`FixedState`].
pub type Tab = HashMap<Val, Val, FixedState>;
/// An insertion-ordered table of values keyed by values, hashed with [`FixedState`].
pub type OTab = IndexMap<Val, Val, FixedState>;
/// A list of values.
pub type Arr = Vec<Val>;
/// A tuple of values.
pub type Tup = Vec<Val>;

/// A dynamic value: every type of PicklingTools' `Val`, held in process memory.
///
/// Numbers of different types compare equal when their values are equal (`1 == 1.0 ==
/// 1u8`), and hash alike, so any value can key a [`Tab`]. [`Display`](std::fmt::Display)
/// prints the Python literal, [`str::parse`] reads it back; see the [module docs](super).
#[derive(Debug, Clone, Default)]
pub enum Val {
    /// Python's `None`; the default value.
    #[default]
    None,
    /// A boolean; equal to the integers 0 and 1, as in Python.
    Bool(bool),
    /// An `i8`.
    I8(i8),
    /// A `u8`.
    U8(u8),
    /// An `i16`.
    I16(i16),
    /// A `u16`.
    U16(u16),
    /// An `i32`.
    I32(i32),
    /// A `u32`.
    U32(u32),
    /// An `i64`: what integer literals parse to when they fit.
    I64(i64),
    /// A `u64`.
    U64(u64),
    /// An arbitrary-precision signed integer.
    BigInt(BigInt),
    /// An arbitrary-precision unsigned integer.
    BigUint(BigUint),
    /// An `f32`.
    F32(f32),
    /// An `f64`: what float literals parse to.
    F64(f64),
    /// A complex of two `f32`.
    C32(Complex32),
    /// A complex of two `f64`: what complex literals parse to.
    C64(Complex64),
    /// A string.
    Str(String),
    /// A hash table.
    Tab(Tab),
    /// An insertion-ordered table.
    OTab(OTab),
    /// A list.
    Arr(Arr),
    /// A tuple.
    Tup(Tup),
    /// A typed numeric array.
    Array(Array),
}

impl Val {
    /// The kind of value this is.
    pub fn tag(&self) -> Tag {
        match self {
            Val::None => Tag::None,
            Val::Bool(_) => Tag::Bool,
            Val::I8(_) => Tag::I8,
            Val::U8(_) => Tag::U8,
            Val::I16(_) => Tag::I16,
            Val::U16(_) => Tag::U16,
            Val::I32(_) => Tag::I32,
            Val::U32(_) => Tag::U32,
            Val::I64(_) => Tag::I64,
            Val::U64(_) => Tag::U64,
            Val::BigInt(_) => Tag::BigInt,
            Val::BigUint(_) => Tag::BigUint,
            Val::F32(_) => Tag::F32,
            Val::F64(_) => Tag::F64,
            Val::C32(_) => Tag::C32,
            Val::C64(_) => Tag::C64,
            Val::Str(_) => Tag::Str,
            Val::Tab(_) => Tag::Tab,
            Val::OTab(_) => Tag::OTab,
            Val::Arr(_) => Tag::Arr,
            Val::Tup(_) => Tag::Tup,
            Val::Array(_) => Tag::Array,
        }
    }

    /// An empty [`Tab`].
    pub fn tab() -> Val {
        Val::Tab(Tab::default())
    }

    /// An empty [`OTab`].
    pub fn otab() -> Val {
        Val::OTab(OTab::default())
    }

    /// An empty list.
    pub fn arr() -> Val {
        Val::Arr(Arr::new())
    }

    /// Whether this is `None`.
    pub fn is_none(&self) -> bool {
        matches!(self, Val::None)
    }

    /// Whether this is a number: a bool, an integer, a float or a complex.
    pub fn is_number(&self) -> bool {
        matches!(
            self,
            Val::Bool(_)
                | Val::I8(_)
                | Val::U8(_)
                | Val::I16(_)
                | Val::U16(_)
                | Val::I32(_)
                | Val::U32(_)
                | Val::I64(_)
                | Val::U64(_)
                | Val::BigInt(_)
                | Val::BigUint(_)
                | Val::F32(_)
                | Val::F64(_)
                | Val::C32(_)
                | Val::C64(_)
        )
    }

    /// The string, if this is a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The table, if this is a `Tab`.
    pub fn as_tab(&self) -> Option<&Tab> {
        match self {
            Val::Tab(t) => Some(t),
            _ => None,
        }
    }

    /// The table, mutably, if this is a `Tab`.
    pub fn as_tab_mut(&mut self) -> Option<&mut Tab> {
        match self {
            Val::Tab(t) => Some(t),
            _ => None,
        }
    }

    /// The ordered table, if this is an `OTab`.
    pub fn as_otab(&self) -> Option<&OTab> {
        match self {
            Val::OTab(t) => Some(t),
            _ => None,
        }
    }

    /// The ordered table, mutably, if this is an `OTab`.
    pub fn as_otab_mut(&mut self) -> Option<&mut OTab> {
        match self {
            Val::OTab(t) => Some(t),
            _ => None,
        }
    }

    /// The elements, if this is an `Arr` or a `Tup`.
    pub fn as_slice(&self) -> Option<&[Val]> {
        match self {
            Val::Arr(a) | Val::Tup(a) => Some(a),
            _ => None,
        }
    }

    /// The list, mutably, if this is an `Arr`.
    pub fn as_arr_mut(&mut self) -> Option<&mut Arr> {
        match self {
            Val::Arr(a) => Some(a),
            _ => None,
        }
    }

    /// The typed array, if this is an `Array`.
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Val::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The typed array, mutably, if this is an `Array`.
    pub fn as_array_mut(&mut self) -> Option<&mut Array> {
        match self {
            Val::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The number of entries of a table, elements of a list, tuple or array, or characters
    /// of a string (as Python's `len`); 0 for every other value.
    pub fn len(&self) -> usize {
        match self {
            Val::Str(s) => s.chars().count(),
            Val::Tab(t) => t.len(),
            Val::OTab(t) => t.len(),
            Val::Arr(a) | Val::Tup(a) => a.len(),
            Val::Array(a) => a.len(),
            _ => 0,
        }
    }

    /// Whether [`Val::len`] is 0.
    pub fn is_empty(&self) -> bool {
        match self {
            Val::Str(s) => s.is_empty(),
            _ => self.len() == 0,
        }
    }

    /// The entry under `key` of a table, or the element at position `key` of a list or
    /// tuple; `None` when absent or when this value is not a container of values.
    ///
    /// Keys compare as values: `get(1)` finds the key `1.0`. A typed array's elements are not
    /// values held in place: read them with [`Array::get`].
    pub fn get<K: ValIndex>(&self, key: K) -> Option<&Val> {
        key.index_into(self)
    }

    /// Like [`Val::get`], mutably.
    pub fn get_mut<K: ValIndex>(&mut self, key: K) -> Option<&mut Val> {
        key.index_into_mut(self)
    }

    /// Whether a table has the key `x`, a list, tuple or array has an element equal to `x`,
    /// or a string contains the string `x` (as Python's `in`).
    pub fn contains(&self, x: impl Into<Val>) -> bool {
        let x = x.into();
        match self {
            Val::Tab(t) => t.contains_key(&x),
            Val::OTab(t) => t.contains_key(&x),
            Val::Arr(a) | Val::Tup(a) => a.contains(&x),
            Val::Array(a) => a.iter().any(|e| e == x),
            Val::Str(s) => x.as_str().is_some_and(|sub| s.contains(sub)),
            _ => false,
        }
    }

    /// Inserts `value` under `key` in a `Tab` or `OTab` and returns the value it replaced.
    ///
    /// An `OTab` keeps a replaced key at its first position, as Python's `OrderedDict`.
    pub fn insert(
        &mut self,
        key: impl Into<Val>,
        value: impl Into<Val>,
    ) -> Result<Option<Val>, ValError> {
        match self {
            Val::Tab(t) => Ok(t.insert(key.into(), value.into())),
            Val::OTab(t) => Ok(t.insert(key.into(), value.into())),
            other => Err(ValError::WrongType {
                expected: "Tab or OTab",
                found: other.tag(),
            }),
        }
    }

    /// Removes the entry under `key` of a `Tab` or `OTab` and returns its value.
    ///
    /// An `OTab` keeps the order of the other entries.
    pub fn remove(&mut self, key: impl Into<Val>) -> Option<Val> {
        let key = key.into();
        match self {
            Val::Tab(t) => t.remove(&key),
            Val::OTab(t) => t.shift_remove(&key),
            _ => None,
        }
    }

    /// Appends `x` to an `Arr`, or to an `Array` when `x` is a scalar of its element type.
    pub fn push(&mut self, x: impl Into<Val>) -> Result<(), ValError> {
        match self {
            Val::Arr(a) => {
                a.push(x.into());
                Ok(())
            }
            Val::Array(a) => a.push(&x.into()),
            other => Err(ValError::WrongType {
                expected: "Arr or Array",
                found: other.tag(),
            }),
        }
    }

    /// The elements of a list or tuple, or the keys of a table (in its order), as Python's
    /// `for x in v`; nothing for any other value.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: match self {
                Val::Arr(a) | Val::Tup(a) => IterInner::Seq(a.iter()),
                Val::Tab(t) => IterInner::Tab(t.keys()),
                Val::OTab(t) => IterInner::OTab(t.keys()),
                _ => IterInner::Empty,
            },
        }
    }

    /// The `(key, value)` entries of a `Tab` (in hash order) or an `OTab` (in insertion
    /// order); nothing for any other value.
    pub fn items(&self) -> Items<'_> {
        Items {
            inner: match self {
                Val::Tab(t) => ItemsInner::Tab(t.iter()),
                Val::OTab(t) => ItemsInner::OTab(t.iter()),
                _ => ItemsInner::Empty,
            },
        }
    }

    /// The entries of a table sorted by key (with [`Val::total_cmp`]), the order the text
    /// forms use; empty for any other value.
    pub fn sorted_items(&self) -> Vec<(&Val, &Val)> {
        let mut items: Vec<_> = self.items().collect();
        items.sort_by(|a, b| a.0.total_cmp(b.0));
        items
    }
}

/// Iterator returned by [`Val::iter`].
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    inner: IterInner<'a>,
}

#[derive(Debug, Clone)]
enum IterInner<'a> {
    Seq(std::slice::Iter<'a, Val>),
    Tab(std::collections::hash_map::Keys<'a, Val, Val>),
    OTab(indexmap::map::Keys<'a, Val, Val>),
    Empty,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Val;
    fn next(&mut self) -> Option<&'a Val> {
        match &mut self.inner {
            IterInner::Seq(i) => i.next(),
            IterInner::Tab(i) => i.next(),
            IterInner::OTab(i) => i.next(),
            IterInner::Empty => None,
        }
    }
}

/// Iterator returned by [`Val::items`].
#[derive(Debug, Clone)]
pub struct Items<'a> {
    inner: ItemsInner<'a>,
}

#[derive(Debug, Clone)]
enum ItemsInner<'a> {
    Tab(std::collections::hash_map::Iter<'a, Val, Val>),
    OTab(indexmap::map::Iter<'a, Val, Val>),
    Empty,
}

impl<'a> Iterator for Items<'a> {
    type Item = (&'a Val, &'a Val);
    fn next(&mut self) -> Option<(&'a Val, &'a Val)> {
        match &mut self.inner {
            ItemsInner::Tab(i) => i.next(),
            ItemsInner::OTab(i) => i.next(),
            ItemsInner::Empty => None,
        }
    }
}

impl<'a> IntoIterator for &'a Val {
    type Item = &'a Val;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for usize {}
    impl Sealed for str {}
    impl Sealed for String {}
    impl Sealed for super::Val {}
    impl<T: ?Sized + Sealed> Sealed for &T {}
}

/// What can index a [`Val`]: a position (`usize`) or a key (`&str`, `String`, `&Val`).
///
/// A position indexes a list or tuple; on a table it is looked up as the integer key.
pub trait ValIndex: sealed::Sealed {
    /// The value at this index of `v`, if any.
    fn index_into<'v>(&self, v: &'v Val) -> Option<&'v Val>;
    /// The value at this index of `v`, mutably, if any.
    fn index_into_mut<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val>;
    /// The value at this index of `v`, inserting `None` under a missing table key.
    fn index_or_insert<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val>;
}

fn key_get<'v>(v: &'v Val, key: &Val) -> Option<&'v Val> {
    match v {
        Val::Tab(t) => t.get(key),
        Val::OTab(t) => t.get(key),
        _ => None,
    }
}

fn key_get_mut<'v>(v: &'v mut Val, key: &Val) -> Option<&'v mut Val> {
    match v {
        Val::Tab(t) => t.get_mut(key),
        Val::OTab(t) => t.get_mut(key),
        _ => None,
    }
}

fn key_entry<'v>(v: &'v mut Val, key: &Val) -> Option<&'v mut Val> {
    match v {
        Val::Tab(t) => Some(t.entry(key.clone()).or_default()),
        Val::OTab(t) => Some(t.entry(key.clone()).or_default()),
        _ => None,
    }
}

impl ValIndex for usize {
    fn index_into<'v>(&self, v: &'v Val) -> Option<&'v Val> {
        match v {
            Val::Arr(a) | Val::Tup(a) => a.get(*self),
            _ => key_get(v, &Val::from(*self)),
        }
    }
    fn index_into_mut<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val> {
        match v {
            Val::Arr(a) | Val::Tup(a) => a.get_mut(*self),
            _ => key_get_mut(v, &Val::from(*self)),
        }
    }
    fn index_or_insert<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val> {
        match v {
            Val::Arr(a) | Val::Tup(a) => a.get_mut(*self),
            _ => key_entry(v, &Val::from(*self)),
        }
    }
}

impl ValIndex for Val {
    fn index_into<'v>(&self, v: &'v Val) -> Option<&'v Val> {
        key_get(v, self)
    }
    fn index_into_mut<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val> {
        key_get_mut(v, self)
    }
    fn index_or_insert<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val> {
        key_entry(v, self)
    }
}

impl ValIndex for str {
    fn index_into<'v>(&self, v: &'v Val) -> Option<&'v Val> {
        key_get(v, &Val::from(self))
    }
    fn index_into_mut<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val> {
        key_get_mut(v, &Val::from(self))
    }
    fn index_or_insert<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val> {
        key_entry(v, &Val::from(self))
    }
}

impl ValIndex for String {
    fn index_into<'v>(&self, v: &'v Val) -> Option<&'v Val> {
        self.as_str().index_into(v)
    }
    fn index_into_mut<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val> {
        self.as_str().index_into_mut(v)
    }
    fn index_or_insert<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val> {
        self.as_str().index_or_insert(v)
    }
}

impl<T: ?Sized + ValIndex> ValIndex for &T {
    fn index_into<'v>(&self, v: &'v Val) -> Option<&'v Val> {
        (**self).index_into(v)
    }
    fn index_into_mut<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val> {
        (**self).index_into_mut(v)
    }
    fn index_or_insert<'v>(&self, v: &'v mut Val) -> Option<&'v mut Val> {
        (**self).index_or_insert(v)
    }
}

impl<I: ValIndex> Index<I> for Val {
    type Output = Val;

    /// The entry under a key or the element at a position.
    ///
    /// # Panics
    ///
    /// When the key is missing, the position is out of bounds, or this value is not a
    /// table, list or tuple, as std's indexing does.
    fn index(&self, index: I) -> &Val {
        match index.index_into(self) {
            Some(v) => v,
            None => panic!("no entry at this index of a {} value", self.tag()),
        }
    }
}

impl<I: ValIndex> IndexMut<I> for Val {
    /// The entry under a key, inserted as `None` when missing (as the original's
    /// `operator[]`), or the element at a position.
    ///
    /// # Panics
    ///
    /// When the position is out of bounds, or this value is not a table, list or tuple.
    fn index_mut(&mut self, index: I) -> &mut Val {
        let tag = self.tag();
        match index.index_or_insert(self) {
            Some(v) => v,
            None => panic!("no entry at this index of a {tag} value"),
        }
    }
}
