//! Walking a container's children one cell at a time: what the iterative walks (measuring,
//! copying out) keep per level instead of a stack frame.

use super::corrupt;
use super::layout::{at, load_cell, Cell, Kind, Obj, CELL_BYTES};
use super::table::TableRef;
use super::views::seq_cells;
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::AtomicU64;
use crate::val::{Tag, ValError};

/// The child cells of one checked container, in order: a sequence's elements, or a
/// table's live entries as key, value, key, value, ...
#[derive(Debug)]
pub(crate) struct Children<'a> {
    pub(crate) kind: Kind,
    /// The number of elements or live entries.
    pub(crate) len: u64,
    src: Src<'a>,
}

#[derive(Debug)]
enum Src<'a> {
    Seq {
        data: Offset,
        cells: &'a [AtomicU64],
        next: u64,
    },
    Table {
        t: TableRef<'a>,
        /// The next entry to look at.
        entry: u64,
        /// The value cell of the entry whose key was given last.
        value: Option<Cell>,
        /// The stored hash of the entry whose key was given last.
        hash: u64,
    },
}

impl<'a> Children<'a> {
    /// The children of the container at `obj` (a sequence or a table).
    pub(crate) fn open(pool: &'a Pool, obj: Obj<'a>) -> Result<Children<'a>, ValError> {
        if obj.kind.is_seq() {
            let (data, cells) = seq_cells(pool, &obj)?;
            Ok(Children {
                kind: obj.kind,
                len: (cells.len() / 2) as u64,
                src: Src::Seq {
                    data,
                    cells,
                    next: 0,
                },
            })
        } else if obj.kind.is_table() {
            let t = TableRef::open(pool, obj)?;
            Ok(Children {
                kind: obj.kind,
                len: t.c.len,
                src: Src::Table {
                    t,
                    entry: 0,
                    value: None,
                    hash: 0,
                },
            })
        } else {
            Err(corrupt(obj.off.get(), "not a container"))
        }
    }

    /// The next child cell, checked: never [`Cell::Empty`].
    pub(crate) fn next_cell(&mut self) -> Result<Option<Cell>, ValError> {
        match &mut self.src {
            Src::Seq { data, cells, next } => {
                let Some(w) = usize::try_from(*next)
                    .ok()
                    .and_then(|i| i.checked_mul(2))
                    .and_then(|i| cells.get(i..i.checked_add(2)?))
                else {
                    return Ok(None);
                };
                let cell_at = at(data.get(), next.saturating_mul(CELL_BYTES));
                *next = next.saturating_add(1);
                match Cell::decode(load_cell(w), cell_at)? {
                    Cell::Empty => Err(corrupt(cell_at, "an empty element")),
                    c => Ok(Some(c)),
                }
            }
            Src::Table {
                t,
                entry,
                value,
                hash,
            } => {
                if let Some(v) = value.take() {
                    return Ok(Some(v));
                }
                while *entry < t.c.used {
                    let e = t.entry(*entry)?;
                    *entry = entry.saturating_add(1);
                    if e.key != Cell::Empty {
                        *value = Some(e.value);
                        *hash = e.hash;
                        return Ok(Some(e.key));
                    }
                }
                Ok(None)
            }
        }
    }

    /// For a table, its next live entry if neither its key nor its value links to a
    /// container (taken: the walk goes on after it), with its stored hash; `None` at the
    /// end, at an entry with a container (left for [`next_cell`](Self::next_cell)), in a
    /// sequence, and between a key and its value.
    pub(crate) fn next_leaf_entry(&mut self) -> Result<Option<(Cell, Cell, u64)>, ValError> {
        let Src::Table {
            t, entry, value, ..
        } = &mut self.src
        else {
            return Ok(None);
        };
        if value.is_some() {
            return Ok(None);
        }
        while *entry < t.c.used {
            let e = t.entry(*entry)?;
            if e.key == Cell::Empty {
                *entry = entry.saturating_add(1);
                continue;
            }
            if container_link(&e.key).is_some() || container_link(&e.value).is_some() {
                return Ok(None);
            }
            *entry = entry.saturating_add(1);
            return Ok(Some((e.key, e.value, e.hash)));
        }
        Ok(None)
    }

    /// For a table, the stored hash (the key's [`Val::stable_hash`](crate::Val::stable_hash)
    /// as the table's writer computed it) of the entry whose key was given last.
    pub(crate) fn key_hash(&self) -> Option<u64> {
        match self.src {
            Src::Table { hash, .. } => Some(hash),
            Src::Seq { .. } => None,
        }
    }
}

/// Whether a cell links to a container (whose children a walk visits).
pub(crate) fn container_link(cell: &Cell) -> Option<(Tag, Offset)> {
    match *cell {
        Cell::Obj(tag @ (Tag::Arr | Tag::Tup | Tag::Tab | Tag::OTab), off) => Some((tag, off)),
        _ => None,
    }
}
