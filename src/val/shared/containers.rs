//! Views of containers: [`ShmSeq`] (`Arr` and `Tup`) and [`ShmTab`] (`Tab` and `OTab`),
//! read in place, and their iterators.

use super::corrupt;
use super::layout::{at, load_cell, Cell, Kind, Obj, CELL_BYTES};
use super::table::TableRef;
use super::views::{seq_cells, Key, ShmRef};
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::AtomicU64;
use crate::val::{Tag, ValError};

/// A shared `Arr` or `Tup`, read in place.
#[derive(Clone, Copy)]
pub struct ShmSeq<'a> {
    pool: &'a Pool,
    /// The sequence's object.
    off: Offset,
    tuple: bool,
    data: Offset,
    cells: &'a [AtomicU64],
}

impl<'a> ShmSeq<'a> {
    /// The view of a checked sequence object.
    pub(super) fn open(pool: &'a Pool, obj: Obj<'a>) -> Result<ShmSeq<'a>, ValError> {
        let (data, cells) = seq_cells(pool, &obj)?;
        Ok(ShmSeq {
            pool,
            off: obj.off,
            tuple: obj.kind == Kind::Tup,
            data,
            cells,
        })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.cells.len() / 2
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Whether this is a `Tup` (else an `Arr`).
    pub fn is_tuple(&self) -> bool {
        self.tuple
    }

    /// The sequence as a value.
    pub(super) fn value(&self) -> ShmRef<'a> {
        let tag = if self.tuple { Tag::Tup } else { Tag::Arr };
        ShmRef::new(self.pool, Cell::Obj(tag, self.off))
    }

    /// Element `i`, or `None` past the end.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`] if its cell is.
    pub fn get(&self, i: usize) -> Result<Option<ShmRef<'a>>, ValError> {
        // An index past the end, however large, is absent: its cell would start past the
        // cells (or past the address space).
        let Some(w) = i
            .checked_mul(2)
            .and_then(|w| self.cells.get(w..w.checked_add(2)?))
        else {
            return Ok(None);
        };
        let cell_at = at(self.data.get(), (i as u64).saturating_mul(CELL_BYTES));
        let cell = Cell::decode(load_cell(w), cell_at)?;
        if cell == Cell::Empty {
            return Err(corrupt(cell_at, "an empty element"));
        }
        Ok(Some(ShmRef::in_cell(self.pool, cell, w)))
    }

    /// The elements in order, each checked as it is read.
    pub fn iter(&self) -> SeqIter<'a> {
        SeqIter { seq: *self, i: 0 }
    }

    /// Whether an element equals `x` (by value, as [`Val`](crate::Val)'s `==`).
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`], [`ValError::TooDeep`].
    pub fn contains(&self, x: impl Key) -> Result<bool, ValError> {
        let x = x.key();
        for e in self.iter() {
            if e?.eq_val(&x)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Iterator over a [`ShmSeq`]'s elements.
#[derive(Clone, Debug)]
pub struct SeqIter<'a> {
    seq: ShmSeq<'a>,
    i: usize,
}

impl<'a> Iterator for SeqIter<'a> {
    type Item = Result<ShmRef<'a>, ValError>;
    fn next(&mut self) -> Option<Self::Item> {
        let r = self.seq.get(self.i).transpose()?;
        self.i = if r.is_ok() {
            self.i.saturating_add(1)
        } else {
            usize::MAX
        };
        Some(r)
    }
}

/// A shared `Tab` or `OTab`, read in place. Entries iterate in insertion order for both
/// (a `Tab`'s order is unspecified, as on the heap).
#[derive(Clone, Copy)]
pub struct ShmTab<'a> {
    pool: &'a Pool,
    t: TableRef<'a>,
}

impl<'a> ShmTab<'a> {
    pub(super) fn new(pool: &'a Pool, t: TableRef<'a>) -> ShmTab<'a> {
        ShmTab { pool, t }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        // At most the capacity, whose entries were checked to fit their block.
        usize::try_from(self.t.c.len).unwrap_or(usize::MAX)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.t.c.len == 0
    }

    /// Whether this is an `OTab` (else a `Tab`).
    pub fn is_ordered(&self) -> bool {
        self.t.obj.kind == Kind::OTab
    }

    /// The table as a value.
    pub(super) fn value(&self) -> ShmRef<'a> {
        let tag = if self.is_ordered() {
            Tag::OTab
        } else {
            Tag::Tab
        };
        ShmRef::new(self.pool, Cell::Obj(tag, self.t.obj.off))
    }

    /// The value under `key`, if any. The key is hashed with [`Val::stable_hash`](crate::Val::stable_hash) as the
    /// table's keys were, so `get(1)` finds the key `1.0`.
    ///
    /// # Errors
    ///
    /// [`ValError::Corrupt`] if an entry or slot met on the way is.
    pub fn get(&self, key: impl Key) -> Result<Option<ShmRef<'a>>, ValError> {
        let key = key.key();
        match self.t.find(self.pool, &key, key.stable_hash(), 0)? {
            Some(e) => {
                let cell = self.t.value_of(e)?;
                let w = &self.t.entry_words(e)?[3..5];
                Ok(Some(ShmRef::in_cell(self.pool, cell, w)))
            }
            None => Ok(None),
        }
    }

    /// Whether `key` has an entry.
    ///
    /// # Errors
    ///
    /// As for [`get`](Self::get).
    pub fn contains(&self, key: impl Key) -> Result<bool, ValError> {
        Ok(self.get(key)?.is_some())
    }

    /// The `(key, value)` entries in insertion order, each checked as it is read.
    pub fn iter(&self) -> TabIter<'a> {
        TabIter { tab: *self, e: 0 }
    }
}

/// Iterator over a [`ShmTab`]'s entries.
#[derive(Clone, Debug)]
pub struct TabIter<'a> {
    tab: ShmTab<'a>,
    e: u64,
}

impl<'a> Iterator for TabIter<'a> {
    type Item = Result<(ShmRef<'a>, ShmRef<'a>), ValError>;
    fn next(&mut self) -> Option<Self::Item> {
        let t = &self.tab.t;
        while self.e < t.c.used {
            let e = self.e;
            self.e = e.saturating_add(1);
            match t.entry(e).and_then(|en| Ok((en, t.entry_words(e)?))) {
                Ok((en, _)) if en.key == Cell::Empty => continue,
                Ok((en, w)) => {
                    let p = self.tab.pool;
                    let key = ShmRef::in_cell(p, en.key, &w[1..3]);
                    return Some(Ok((key, ShmRef::in_cell(p, en.value, &w[3..5]))));
                }
                Err(err) => {
                    self.e = u64::MAX;
                    return Some(Err(err));
                }
            }
        }
        None
    }
}
