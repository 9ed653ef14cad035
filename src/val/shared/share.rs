//! Copying a heap value into the pool ([`PoolExt::share`](super::PoolExt::share), and the
//! heap values put into containers).
//!
//! Containers are copied with an explicit stack, so any depth up to [`MAX_NESTING`] takes
//! constant native stack; a deeper value is [`ValError::TooDeep`]. Each container is made
//! with its final size and filled in order; a child is linked into its container only once
//! complete, so on any error dropping the handles on the stack frees everything built.

use std::slice;

use super::build::{new_bytes, new_container, new_pair, Child};
use super::handle::ShmVal;
use super::layout::{store_cell, words, Cell, Kind, Obj, W_LEN};
use super::ops::write_array;
use super::table::TableRef;
use super::{corrupt, too_large, MAX_NESTING};
use crate::alloc::Pool;
use crate::sync::atomic::AtomicU64;
use crate::val::array::with_vec;
use crate::val::{Array, Items, Val, ValError};

/// Copies `v` into the pool as a child: inline if it fits a cell, else a new object.
pub(crate) fn share_child(pool: &Pool, v: &Val) -> Result<Child, ValError> {
    if is_container(v) {
        share_tree(pool, v).map(Child::Obj)
    } else {
        leaf_child(pool, v)
    }
}

fn is_container(v: &Val) -> bool {
    matches!(v, Val::Arr(_) | Val::Tup(_) | Val::Tab(_) | Val::OTab(_))
}

/// A container being filled, and what of its heap value is left to copy into it.
struct Level<'v, 'p> {
    /// The container's one reference until it is linked into its parent.
    h: ShmVal,
    fill: Fill<'v, 'p>,
}

// One per level of nesting, kept in place while its container fills: its size costs
// nothing, and boxing the key would allocate per entry.
#[allow(clippy::large_enum_variant)]
enum Fill<'v, 'p> {
    Seq {
        items: slice::Iter<'v, Val>,
        cells: &'p [AtomicU64],
        obj: Obj<'p>,
        len: u64,
    },
    Table {
        items: std::iter::Peekable<Items<'v>>,
        t: TableRef<'p>,
        /// The value of the entry whose key was given last, and that key's hash.
        value: Option<(&'v Val, u64)>,
        /// The key copied, waiting for its value.
        key: Option<(u64, Child)>,
    },
}

impl<'v, 'p> Level<'v, 'p> {
    /// An empty container for `v` (a container), with its final size.
    fn new(pool: &'p Pool, v: &'v Val) -> Result<Level<'v, 'p>, ValError> {
        let kind = match v {
            Val::Arr(_) => Kind::Arr,
            Val::Tup(_) => Kind::Tup,
            Val::Tab(_) => Kind::Tab,
            _ => Kind::OTab,
        };
        let h = new_container(pool, kind, None, v.len() as u64)?;
        let obj = Obj::open(pool.region(), h.offset(), Some(kind))?;
        let fill = match v {
            Val::Arr(a) | Val::Tup(a) => {
                let n = (a.len() as u64).checked_mul(2).ok_or_else(too_large)?;
                Fill::Seq {
                    items: a.iter(),
                    cells: words(pool.region(), obj.inline_data()?, n)?,
                    obj,
                    len: 0,
                }
            }
            _ => Fill::Table {
                items: v.items().peekable(),
                t: TableRef::open(pool, obj)?,
                value: None,
                key: None,
            },
        };
        Ok(Level { h, fill })
    }

    /// The next heap value to copy: an element, or a key and then its value.
    fn next_item(&mut self) -> Option<&'v Val> {
        match &mut self.fill {
            Fill::Seq { items, .. } => items.next(),
            Fill::Table { items, value, .. } => {
                if let Some((v, _)) = value.take() {
                    return Some(v);
                }
                let (k, v) = items.next()?;
                *value = Some((v, k.stable_hash()));
                Some(k)
            }
        }
    }

    /// For a table between two entries, copies its next entries as long as neither key
    /// nor value holds others (the common case) without going through the walk item by
    /// item.
    fn put_leaf_entries(&mut self, pool: &Pool) -> Result<(), ValError> {
        let Fill::Table {
            items,
            t,
            value: None,
            key: None,
        } = &mut self.fill
        else {
            return Ok(());
        };
        while let Some((k, v)) = items.next_if(|(k, v)| !is_container(k) && !is_container(v)) {
            let hash = k.stable_hash();
            let kc = leaf_child(pool, k)?;
            link_entry(t, hash, kc, leaf_child(pool, v)?)?;
        }
        Ok(())
    }

    /// Links the copy of the item [`next_item`](Self::next_item) gave last.
    fn put(&mut self, mut child: Child) -> Result<(), ValError> {
        match &mut self.fill {
            Fill::Seq {
                cells, obj, len, ..
            } => {
                let at = usize::try_from(*len)
                    .ok()
                    .and_then(|i| i.checked_mul(2))
                    .and_then(|i| cells.get(i..i.checked_add(2)?))
                    .ok_or_else(|| corrupt(obj.off.get(), "more elements than its size"))?;
                child.moving_into(obj.off);
                store_cell(at, &child.cell());
                *len = len.saturating_add(1);
                obj.store(W_LEN, *len);
                child.commit();
            }
            Fill::Table { t, value, key, .. } => match key.take() {
                None => {
                    // The key: its value comes next, `value` holds the key's hash.
                    let hash = value.map_or(0, |(_, h)| h);
                    *key = Some((hash, child));
                }
                Some((hash, k)) => link_entry(t, hash, k, child)?,
            },
        }
        Ok(())
    }
}

/// Links a copied key and value into table `t` as its next entry, under the key's hash.
fn link_entry(t: &mut TableRef<'_>, hash: u64, mut k: Child, mut v: Child) -> Result<(), ValError> {
    k.moving_into(t.obj.off);
    v.moving_into(t.obj.off);
    t.push(hash, &k.cell(), &v.cell())?;
    k.commit();
    v.commit();
    Ok(())
}

/// Copies a container and everything in it, depth first with an explicit stack.
fn share_tree(pool: &Pool, root: &Val) -> Result<ShmVal, ValError> {
    let mut stack = vec![Level::new(pool, root)?];
    loop {
        let next = match stack.last_mut() {
            Some(top) => {
                top.put_leaf_entries(pool)?;
                top.next_item()
            }
            None => return Err(corrupt(0, "a copy without a value")),
        };
        let child = match next {
            None => {
                let Some(done) = stack.pop() else { continue };
                Child::Obj(done.h)
            }
            Some(x) if is_container(x) => {
                if stack.len() >= MAX_NESTING {
                    return Err(ValError::TooDeep { limit: MAX_NESTING });
                }
                stack.push(Level::new(pool, x)?);
                continue;
            }
            Some(x) => leaf_child(pool, x)?,
        };
        match stack.last_mut() {
            Some(top) => top.put(child)?,
            None => {
                return match child {
                    Child::Obj(h) => Ok(h),
                    Child::Inline(_) => Err(corrupt(0, "a container copied inline")),
                }
            }
        }
    }
}

/// Copies a value that holds no others: inline if it fits a cell, else a new object.
fn leaf_child(pool: &Pool, v: &Val) -> Result<Child, ValError> {
    match Cell::inline(v) {
        Some(c) => Ok(Child::Inline(c)),
        None => share_leaf(pool, v).map(Child::Obj),
    }
}

/// Copies a value that neither fits a cell nor holds others into a new object.
fn share_leaf(pool: &Pool, v: &Val) -> Result<ShmVal, ValError> {
    match v {
        Val::Str(s) => new_bytes(pool, Kind::Str, s.as_bytes()),
        Val::BigInt(b) => new_bytes(pool, Kind::BigInt, &b.to_signed_bytes_le()),
        Val::BigUint(b) => new_bytes(pool, Kind::BigUint, &b.to_bytes_le()),
        Val::C64(c) => new_pair(pool, Kind::C64, [c.re.to_bits(), c.im.to_bits()]),
        Val::Array(a) => {
            let h = new_container(pool, Kind::Array, Some(a.elem_type()), a.len() as u64)?;
            let obj = Obj::open(pool.region(), h.offset(), Some(Kind::Array))?;
            with_vec!(a, data => write_array(pool, obj, data.len() as u64, false, |dst| {
                dst.copy_from_slice(data)
            })?);
            Ok(h)
        }
        // Every other value fits a cell or is a container.
        _ => Err(ValError::WrongType {
            expected: "a value held in an object",
            found: v.tag(),
        }),
    }
}
