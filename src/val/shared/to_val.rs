//! Copying a shared value out to the heap, and comparing one with a heap value.
//!
//! Both recurse through containers with an explicit depth bound ([`MAX_NESTING`]), so a
//! corrupt graph that links back to itself ends in [`ValError::TooDeep`], never in a stack
//! overflow.

use num_bigint::{BigInt, BigUint};
use num_complex::Complex64;

use super::layout::{at, load_cell, scalar_val, Cell, Kind, Obj, CELL_BYTES, W_CAP, W_LEN};
use super::plain::{cast, with_elem};
use super::table::TableRef;
use super::views::{array_data, byte_payload, seq_cells};
use super::{corrupt, MAX_NESTING};
use crate::alloc::Pool;
use crate::val::{Elem, OTab, Tab, Tag, Val, ValError};

/// The heap copy of the value a cell holds.
pub(crate) fn cell_to_val(pool: &Pool, cell: &Cell, depth: usize) -> Result<Val, ValError> {
    match *cell {
        Cell::Empty => Err(corrupt(0, "an empty cell where a value belongs")),
        Cell::Scalar(tag, bits) => Ok(scalar_val(tag, bits)),
        Cell::Short(s) => std::str::from_utf8(s.as_bytes())
            .map(|x| Val::Str(x.to_owned()))
            .map_err(|_| corrupt(0, "an inline string is not UTF-8")),
        Cell::Obj(tag, off) => obj_to_val(pool, Obj::open_linked(pool.region(), tag, off)?, depth),
    }
}

/// The heap copy of the value an object holds.
///
/// Only containers recurse; everything else is copied by [`leaf_to_val`], kept out of
/// line so that each level of nesting costs a small stack frame.
pub(crate) fn obj_to_val(pool: &Pool, obj: Obj<'_>, depth: usize) -> Result<Val, ValError> {
    if depth > MAX_NESTING {
        return Err(ValError::TooDeep { limit: MAX_NESTING });
    }
    match obj.kind {
        Kind::Arr | Kind::Tup => seq_to_val(pool, obj, depth),
        Kind::Tab | Kind::OTab => table_to_val(pool, obj, depth),
        _ => leaf_to_val(pool, obj),
    }
}

fn seq_to_val(pool: &Pool, obj: Obj<'_>, depth: usize) -> Result<Val, ValError> {
    let (data, cells) = seq_cells(pool, &obj)?;
    let mut v = Vec::with_capacity(cells.len() / 2);
    for (i, w) in (0u64..).zip(cells.chunks_exact(2)) {
        let cell = Cell::decode(load_cell(w), at(data.get(), i.saturating_mul(CELL_BYTES)))?;
        v.push(cell_to_val(pool, &cell, depth.saturating_add(1))?);
    }
    Ok(if obj.kind == Kind::Arr {
        Val::Arr(v)
    } else {
        Val::Tup(v)
    })
}

fn table_to_val(pool: &Pool, obj: Obj<'_>, depth: usize) -> Result<Val, ValError> {
    let t = TableRef::open(pool, obj)?;
    let n = usize::try_from(t.c.len).unwrap_or(0);
    let mut out = if obj.kind == Kind::Tab {
        Val::Tab(Tab::with_capacity_and_hasher(n, Default::default()))
    } else {
        Val::OTab(OTab::with_capacity_and_hasher(n, Default::default()))
    };
    for e in 0..t.c.used {
        let entry = t.entry(e)?;
        if entry.key == Cell::Empty {
            continue;
        }
        let k = cell_to_val(pool, &entry.key, depth.saturating_add(1))?;
        let v = cell_to_val(pool, &entry.value, depth.saturating_add(1))?;
        out.insert(k, v)?;
    }
    Ok(out)
}

#[inline(never)]
fn leaf_to_val(pool: &Pool, obj: Obj<'_>) -> Result<Val, ValError> {
    let at = obj.off.get();
    Ok(match obj.kind {
        Kind::Boxed => match super::layout::boxed_cell(&obj)? {
            Cell::Scalar(tag, bits) => scalar_val(tag, bits),
            Cell::Short(s) => Val::Str(
                std::str::from_utf8(s.as_bytes())
                    .map_err(|_| corrupt(at, "an inline string is not UTF-8"))?
                    .to_owned(),
            ),
            _ => return Err(corrupt(at, "a box holds no scalar")),
        },
        Kind::Str => Val::Str(
            std::str::from_utf8(byte_payload(pool, &obj)?)
                .map_err(|_| corrupt(at, "a string is not UTF-8"))?
                .to_owned(),
        ),
        Kind::BigInt => Val::BigInt(BigInt::from_signed_bytes_le(byte_payload(pool, &obj)?)),
        Kind::BigUint => Val::BigUint(BigUint::from_bytes_le(byte_payload(pool, &obj)?)),
        Kind::C64 => Val::C64(Complex64::new(
            f64::from_bits(obj.load(W_LEN)),
            f64::from_bits(obj.load(W_CAP)),
        )),
        Kind::Array => {
            let (et, bytes) = array_data(pool, &obj)?;
            Val::Array(with_elem!(et, T => T::into_array(cast::<T>(bytes, at)?.to_vec())))
        }
        Kind::Arr | Kind::Tup | Kind::Tab | Kind::OTab => {
            return Err(corrupt(at, "a container where a leaf was expected"))
        }
    })
}

/// Whether the value a cell holds equals `v` (as `==` between heap values).
pub(crate) fn cell_eq_val(
    pool: &Pool,
    cell: &Cell,
    v: &Val,
    depth: usize,
) -> Result<bool, ValError> {
    match *cell {
        Cell::Empty => Ok(false),
        Cell::Scalar(tag, bits) => Ok(scalar_val(tag, bits) == *v),
        Cell::Short(s) => Ok(v.as_str().is_some_and(|x| x.as_bytes() == s.as_bytes())),
        Cell::Obj(Tag::Str, off) => {
            let Val::Str(x) = v else { return Ok(false) };
            let obj = Obj::open(pool.region(), off, Some(Kind::Str))?;
            Ok(byte_payload(pool, &obj)? == x.as_bytes())
        }
        Cell::Obj(..) => {
            // Containers and big numbers: compare by value on the heap. Kinds that can never
            // be equal are told apart first, without a copy.
            let tag = cell.tag().unwrap_or(Tag::None);
            let (a, b) = (class(tag), class(v.tag()));
            if a != b {
                return Ok(false);
            }
            Ok(cell_to_val(pool, cell, depth)? == *v)
        }
    }
}

/// Values of different classes are never equal.
fn class(tag: Tag) -> u8 {
    match tag {
        Tag::None => 0,
        Tag::Str => 2,
        Tag::Tab | Tag::OTab => 3,
        Tag::Arr => 4,
        Tag::Tup => 5,
        Tag::Array => 6,
        _ => 1,
    }
}
