//! How big a shared value is once copied out, found without copying it.
//!
//! A container may hold one child many times (a list `[h, h]`, built on itself 30 times, is
//! 31 objects in the pool and a billion values on the heap), so copying out, printing or
//! comparing by copy could take time and memory exponential in the size of the pool's
//! graph. [`Measure`] adds up the size of the copy in one walk of the graph, each container
//! measured once (later links reuse its size), so it costs time in proportion to the
//! objects, and lets the callers refuse a value past their limit before building anything.

use std::collections::HashMap;

use super::layout::{Cell, Kind, Obj};
use super::views::{array_data, byte_payload};
use super::walk::{container_link, Children};
use super::{corrupt, MAX_NESTING};
use crate::alloc::Pool;
use crate::region::Offset;
use crate::val::{Val, ValError};

/// The heap bytes one [`Val`] takes in its container (or on its own), before the bytes it
/// points to.
pub(crate) const VAL_BYTES: u64 = std::mem::size_of::<Val>() as u64;

/// The size of a value copied to the heap: how many [`Val`]s (every container, element,
/// key and value counts one), and about how many bytes (each `Val`, plus string, big
/// integer and typed array payloads). Both saturate at `u64::MAX`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Size {
    pub(crate) values: u64,
    pub(crate) bytes: u64,
}

impl Size {
    /// One value with `payload` bytes of its own.
    fn one(payload: u64) -> Size {
        Size {
            values: 1,
            bytes: VAL_BYTES.saturating_add(payload),
        }
    }

    pub(crate) fn plus(self, other: Size) -> Size {
        Size {
            values: self.values.saturating_add(other.values),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }

    /// [`ValError::TooLarge`] if the bytes pass `limit`.
    pub(crate) fn within(self, limit: u64) -> Result<Size, ValError> {
        if self.bytes > limit {
            return Err(ValError::TooLarge {
                values: self.values,
                bytes: self.bytes,
                limit,
            });
        }
        Ok(self)
    }
}

/// Measures shared values; containers met once are remembered, so measuring many values
/// of one graph with one `Measure` costs time in proportion to the graph's objects.
#[derive(Debug)]
pub(crate) struct Measure<'p> {
    pool: &'p Pool,
    sizes: HashMap<Offset, Size>,
}

/// A container being measured: its children still to add, and what was added so far.
struct Level<'a> {
    off: Offset,
    children: Children<'a>,
    size: Size,
}

impl<'p> Measure<'p> {
    pub(crate) fn new(pool: &'p Pool) -> Measure<'p> {
        Measure {
            pool,
            sizes: HashMap::new(),
        }
    }

    /// The size of the value `cell` holds once copied out. A walk with an explicit stack:
    /// any depth up to [`MAX_NESTING`] in constant native stack.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`]; [`ValError::TooDeep`] past [`MAX_NESTING`] nested containers
    /// (which a graph linking back to itself always is).
    pub(crate) fn cell(&mut self, cell: &Cell) -> Result<Size, ValError> {
        let Some(root) = container_link(cell) else {
            return leaf_size(self.pool, cell);
        };
        let pool = self.pool;
        let mut stack: Vec<Level<'p>> = Vec::new();
        let mut next = Some(root);
        loop {
            if let Some((tag, off)) = next.take() {
                if let Some(&s) = self.sizes.get(&off) {
                    match stack.last_mut() {
                        Some(top) => top.size = top.size.plus(s),
                        None => return Ok(s),
                    }
                } else {
                    if stack.len() >= MAX_NESTING {
                        return Err(ValError::TooDeep { limit: MAX_NESTING });
                    }
                    let obj = Obj::open_linked(pool.region(), tag, off)?;
                    stack.push(Level {
                        off,
                        children: Children::open(pool, obj)?,
                        size: Size::one(0),
                    });
                }
            }
            let Some(top) = stack.last_mut() else {
                return Err(corrupt(0, "a measure without a value"));
            };
            match top.children.next_cell()? {
                Some(c) => match container_link(&c) {
                    Some(link) => next = Some(link),
                    None => top.size = top.size.plus(leaf_size(pool, &c)?),
                },
                None => {
                    let Some(done) = stack.pop() else { continue };
                    self.sizes.insert(done.off, done.size);
                    match stack.last_mut() {
                        Some(top) => top.size = top.size.plus(done.size),
                        None => return Ok(done.size),
                    }
                }
            }
        }
    }
}

/// The size of a value that is not a container: its header says it all.
#[inline]
pub(crate) fn leaf_size(pool: &Pool, cell: &Cell) -> Result<Size, ValError> {
    match *cell {
        Cell::Scalar(..) => Ok(Size::one(0)),
        Cell::Short(s) => Ok(Size::one(s.as_bytes().len() as u64)),
        _ => object_leaf_size(pool, cell),
    }
}

/// [`leaf_size`] of a cell that is not a scalar or an inline string.
fn object_leaf_size(pool: &Pool, cell: &Cell) -> Result<Size, ValError> {
    Ok(match *cell {
        Cell::Empty => return Err(corrupt(0, "an empty cell where a value belongs")),
        Cell::Locked(_) => return Err(ValError::Locked),
        Cell::Scalar(..) => Size::one(0),
        Cell::Short(s) => Size::one(s.as_bytes().len() as u64),
        Cell::Obj(tag, off) => {
            let obj = Obj::open_linked(pool.region(), tag, off)?;
            match obj.kind {
                Kind::Str | Kind::BigInt | Kind::BigUint => {
                    Size::one(byte_payload(pool, &obj)?.len() as u64)
                }
                Kind::Array => Size::one(array_data(pool, &obj)?.1.len() as u64),
                Kind::C64 => Size::one(0),
                _ => return Err(corrupt(off.get(), "a container where a leaf was expected")),
            }
        }
    })
}
