//! Comparing a shared value with a heap value, in place.
//!
//! The walk follows the heap value: each of its containers is matched against the shared
//! one at the same place (same kind, same length; a table's entries looked up by key), and
//! each heap value is visited at most once, so the work is bounded by the heap value's
//! size however much the shared graph shares. Nothing is copied but leaves (big integers,
//! complex numbers and typed arrays, each compared once its length matches). A work list
//! replaces recursion through sequences and table values; only a table key that itself
//! holds a table nests a call, within the [`MAX_NESTING`] levels a value may have.

use super::layout::{scalar_val, Cell, Kind, Obj};
use super::table::TableRef;
use super::to_val::obj_leaf;
use super::views::{array_data, byte_payload};
use super::walk::Children;
use super::{corrupt, layout, MAX_NESTING};
use crate::alloc::Pool;
use crate::val::{Tag, Val, ValError};

/// Whether the value a cell holds equals `v` (as `==` between heap values). `depth` counts
/// the containers around the cell.
///
/// # Errors
///
/// [`ValError::Corrupt`]; [`ValError::TooDeep`] when a container is met past
/// [`MAX_NESTING`] levels.
pub(crate) fn cell_eq_val(
    pool: &Pool,
    cell: &Cell,
    v: &Val,
    depth: usize,
) -> Result<bool, ValError> {
    let mut work: Vec<(Cell, &Val, usize)> = vec![(*cell, v, depth)];
    while let Some((c, x, d)) = work.pop() {
        if !step(pool, &c, x, d, &mut work)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Compares one pair: leaves outright, containers by their length and kind, pushing their
/// children's pairs on `work`. `false` when they differ.
fn step<'v>(
    pool: &Pool,
    c: &Cell,
    x: &'v Val,
    depth: usize,
    work: &mut Vec<(Cell, &'v Val, usize)>,
) -> Result<bool, ValError> {
    match *c {
        Cell::Empty => Ok(false),
        Cell::Locked(_) => Err(ValError::Locked),
        Cell::Scalar(tag, bits) => Ok(scalar_val(tag, bits) == *x),
        Cell::Short(s) => Ok(x.as_str().is_some_and(|x| x.as_bytes() == s.as_bytes())),
        Cell::Obj(tag, off) => {
            if class(tag) != class(x.tag()) {
                return Ok(false);
            }
            let obj = Obj::open_linked(pool.region(), tag, off)?;
            match obj.kind {
                Kind::Arr | Kind::Tup => seq_step(pool, obj, x, depth, work),
                Kind::Tab | Kind::OTab => table_step(pool, obj, x, depth, work),
                _ => leaf_eq(pool, obj, x),
            }
        }
    }
}

fn enter(depth: usize) -> Result<usize, ValError> {
    if depth >= MAX_NESTING {
        return Err(ValError::TooDeep { limit: MAX_NESTING });
    }
    Ok(depth.saturating_add(1))
}

fn seq_step<'v>(
    pool: &Pool,
    obj: Obj<'_>,
    x: &'v Val,
    depth: usize,
    work: &mut Vec<(Cell, &'v Val, usize)>,
) -> Result<bool, ValError> {
    let inner = enter(depth)?;
    let Some(items) = x.as_slice() else {
        return Ok(false);
    };
    let mut children = Children::open(pool, obj)?;
    if children.len != items.len() as u64 {
        return Ok(false);
    }
    let start = work.len();
    for item in items {
        let Some(c) = children.next_cell()? else {
            return Err(corrupt(obj.off.get(), "a sequence shorter than its length"));
        };
        work.push((c, item, inner));
    }
    // The work list is a stack: the first element is compared first.
    work[start..].reverse();
    Ok(true)
}

fn table_step<'v>(
    pool: &Pool,
    obj: Obj<'_>,
    x: &'v Val,
    depth: usize,
    work: &mut Vec<(Cell, &'v Val, usize)>,
) -> Result<bool, ValError> {
    let inner = enter(depth)?;
    let t = TableRef::open(pool, obj)?;
    if usize::try_from(t.c.len).ok() != Some(x.len()) {
        return Ok(false);
    }
    // Equal lengths and every heap key found: the keys match one to one (heap keys are
    // distinct, and two of them cannot equal one shared key), as for heap tables.
    for (k, v) in x.items() {
        match t.find(pool, k, k.stable_hash(), inner)? {
            Some(e) => work.push((t.value_of(e)?, v, inner)),
            None => return Ok(false),
        }
    }
    Ok(true)
}

/// A string, big integer, complex or typed array against a heap value of its class.
fn leaf_eq(pool: &Pool, obj: Obj<'_>, x: &Val) -> Result<bool, ValError> {
    match (obj.kind, x) {
        (Kind::Str, Val::Str(s)) => Ok(byte_payload(pool, &obj)? == s.as_bytes()),
        (Kind::Array, Val::Array(a)) => {
            let (et, bytes) = array_data(pool, &obj)?;
            // Only an array of the heap array's length is copied to compare elements.
            let size = layout::elem_size(et);
            if (bytes.len() as u64).checked_div(size) != Some(a.len() as u64) {
                return Ok(false);
            }
            Ok(obj_leaf(pool, obj)? == *x)
        }
        (Kind::Str | Kind::Array, _) => Ok(false),
        _ => Ok(obj_leaf(pool, obj)? == *x),
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
