//! The shared hash table behind both `Tab` and `OTab`: dense entries in insertion order
//! and an open-addressing index of `u32` slots.
//!
//! Every entry holds its key's [`Val::stable_hash`], so lookups and rehashes never
//! recompute a stored key's hash, and a key hashes alike in every process and in both
//! representations. A slot holds `entry + 1` (0: empty); probing is linear from
//! `hash & (slots - 1)`. A removed entry's cells are emptied but its slot keeps pointing
//! at it (a tombstone), so probe chains stay intact; growing compacts the entries and
//! rebuilds the index.
//!
//! Reads trust nothing: every slot is checked against the entry count, every probe loop
//! is bounded by the index size, and a stored hash that does not match only makes a
//! lookup miss.

use super::corrupt;
use super::layout::{
    index_cap, load_cell, slots, store_cell, table_data_bytes, words, Cell, Container, Obj,
    ENTRY_BYTES, ENTRY_WORDS, MAX_TABLE_CAP, W_CAP, W_DATA, W_LEN, W_USED,
};
use super::release::release_cell;
use super::to_val::cell_eq_val;
use crate::alloc::Pool;
use crate::region::Offset;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use crate::val::{Val, ValError};

/// A checked view of a table's words.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TableRef<'a> {
    pub(crate) obj: Obj<'a>,
    pub(crate) c: Container,
    /// `cap` entries of [`ENTRY_WORDS`] words.
    pub(crate) entries: &'a [AtomicU64],
    pub(crate) index: &'a [AtomicU32],
}

/// One entry, decoded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) hash: u64,
    pub(crate) key: Cell,
    pub(crate) value: Cell,
}

impl<'a> TableRef<'a> {
    pub(crate) fn open(pool: &'a Pool, obj: Obj<'a>) -> Result<TableRef<'a>, ValError> {
        let c = obj.container(pool)?;
        let region = obj.region;
        let entries = words(region, c.data, c.cap * ENTRY_WORDS as u64)?;
        let index_at = c
            .data
            .checked_add(c.cap * ENTRY_BYTES)
            .ok_or_else(|| corrupt(obj.off.get(), "index offset overflows"))?;
        let index = slots(region, index_at, index_cap(c.cap))?;
        Ok(TableRef {
            obj,
            c,
            entries,
            index,
        })
    }

    fn entry_words(&self, e: u64) -> &'a [AtomicU64] {
        let i = e as usize * ENTRY_WORDS;
        &self.entries[i..i + ENTRY_WORDS]
    }

    fn entry_at(&self, e: u64) -> u64 {
        self.c.data.get() + e * ENTRY_BYTES
    }

    /// Entry `e` (below `used`), decoded and checked: a live entry has a key and a value,
    /// a dead one neither.
    pub(crate) fn entry(&self, e: u64) -> Result<Entry, ValError> {
        if e >= self.c.used {
            return Err(corrupt(
                self.obj.off.get(),
                format!("entry {e} of {}", self.c.used),
            ));
        }
        let w = self.entry_words(e);
        let at = self.entry_at(e);
        let key = Cell::decode(load_cell(&w[1..3]), at + 8)?;
        let value = Cell::decode(load_cell(&w[3..5]), at + 24)?;
        if (key == Cell::Empty) != (value == Cell::Empty) {
            return Err(corrupt(at, "half an entry"));
        }
        Ok(Entry {
            hash: w[0].load(Relaxed),
            key,
            value,
        })
    }

    fn check_index(&self, e: u64) -> Result<&'a [AtomicU64], ValError> {
        if e >= self.c.used {
            return Err(corrupt(
                self.obj.off.get(),
                format!("entry {e} of {}", self.c.used),
            ));
        }
        Ok(self.entry_words(e))
    }

    /// Entry `e`'s stored hash.
    fn hash_of(&self, e: u64) -> Result<u64, ValError> {
        Ok(self.check_index(e)?[0].load(Relaxed))
    }

    /// Entry `e`'s key cell, decoded and checked ([`Cell::Empty`] for a dead entry).
    fn key_of(&self, e: u64) -> Result<Cell, ValError> {
        let w = self.check_index(e)?;
        Cell::decode(load_cell(&w[1..3]), self.entry_at(e) + 8)
    }

    /// The value of live entry `e`, decoded and checked.
    pub(crate) fn value_of(&self, e: u64) -> Result<Cell, ValError> {
        let w = self.check_index(e)?;
        let at = self.entry_at(e) + 24;
        match Cell::decode(load_cell(&w[3..5]), at)? {
            Cell::Empty => Err(corrupt(at, "an entry without a value")),
            c => Ok(c),
        }
    }

    /// The entry whose key equals `key` (with hash `hash`), if any.
    pub(crate) fn find(&self, pool: &Pool, key: &Val, hash: u64) -> Result<Option<u64>, ValError> {
        Ok(self.probe(pool, key, hash)?.0)
    }

    /// The entry holding `key`, or else the first empty slot of its probe chain.
    fn probe(
        &self,
        pool: &Pool,
        key: &Val,
        hash: u64,
    ) -> Result<(Option<u64>, Option<usize>), ValError> {
        let mask = self.index.len() - 1;
        let mut i = hash as usize & mask;
        for _ in 0..self.index.len() {
            let s = u64::from(self.index[i].load(Relaxed));
            if s == 0 {
                return Ok((None, Some(i)));
            }
            let e = s - 1;
            // The stored hash first: most probes end there, without decoding the cells.
            if self.hash_of(e)? == hash {
                let k = self.key_of(e)?;
                if k != Cell::Empty && cell_eq_val(pool, &k, key, 0)? {
                    return Ok((Some(e), None));
                }
            }
            i = (i + 1) & mask;
        }
        Err(corrupt(
            self.obj.off.get(),
            "the table's index has no empty slot",
        ))
    }
}

/// Writes through a table the caller holds uniquely.
impl TableRef<'_> {
    /// Sets `len`, `used` and the entries; the index slot of the new entry is set by the
    /// caller.
    fn write_entry(&self, e: u64, hash: u64, key: &Cell, value: &Cell) {
        let w = self.entry_words(e);
        w[0].store(hash, Relaxed);
        store_cell(&w[1..3], key);
        store_cell(&w[3..5], value);
    }

    fn set_counts(&self, len: u64, used: u64) {
        self.obj.store(W_LEN, len);
        self.obj.store(W_USED, used);
    }

    /// Appends an entry whose key is known to be absent, if there is room (else
    /// [`ValError::OutOfMemory`]: the caller grows first). Keeps this view's counts in step
    /// with the header, so a caller filling a table opens it once. On success the table
    /// holds the references the cells carry; on error nothing changed.
    pub(crate) fn push(&mut self, hash: u64, key: &Cell, value: &Cell) -> Result<(), ValError> {
        let e = self.c.used;
        if e >= self.c.cap {
            return Err(ValError::OutOfMemory {
                requested: u64::MAX,
                largest_free: 0,
            });
        }
        let mask = self.index.len() - 1;
        let mut i = hash as usize & mask;
        let mut slot = None;
        for _ in 0..self.index.len() {
            if self.index[i].load(Relaxed) == 0 {
                slot = Some(i);
                break;
            }
            i = (i + 1) & mask;
        }
        let slot = slot.ok_or_else(|| corrupt(self.obj.off.get(), "the table's index is full"))?;
        self.write_entry(e, hash, key, value);
        self.index[slot].store(e as u32 + 1, Relaxed);
        self.c.len += 1;
        self.c.used += 1;
        self.set_counts(self.c.len, self.c.used);
        Ok(())
    }
}

/// Allocates a table's data for `cap` entries (empty index) and returns its offset.
pub(crate) fn alloc_data(pool: &Pool, cap: u64) -> Result<Offset, ValError> {
    let bytes = table_data_bytes(cap).ok_or(ValError::OutOfMemory {
        requested: u64::MAX,
        largest_free: 0,
    })?;
    let data = pool.alloc(bytes, 16)?;
    clear_index(pool, data, cap)?;
    Ok(data)
}

/// Zeroes the index of a table whose data for `cap` entries starts at `data`.
pub(crate) fn clear_index(pool: &Pool, data: Offset, cap: u64) -> Result<(), ValError> {
    let at = super::layout::add(data, cap * ENTRY_BYTES)?;
    for s in slots(pool.region(), at, index_cap(cap))? {
        s.store(0, Relaxed);
    }
    Ok(())
}

/// Appends an entry whose key is known to be absent (sharing a heap table, whose keys are
/// distinct), growing if full. On success the table holds the references the cells carry;
/// on error nothing changed and they are still the caller's.
pub(crate) fn push_new(
    pool: &Pool,
    obj: Obj<'_>,
    hash: u64,
    key: &Cell,
    value: &Cell,
) -> Result<(), ValError> {
    let mut t = TableRef::open(pool, obj)?;
    if t.c.used == t.c.cap {
        grow(pool, &t, 1)?;
        t = TableRef::open(pool, obj)?;
    }
    t.push(hash, key, value)
}

/// Inserts or replaces `key`'s value. `make_key` gives the key's cell (called only when the
/// key is new). Returns whether a value was replaced (its reference is dropped).
///
/// On success the table holds the reference `value` carries; on error nothing changed and
/// it is still the caller's.
pub(crate) fn insert(
    pool: &Pool,
    obj: Obj<'_>,
    key: &Val,
    value: &Cell,
    make_key: impl FnOnce() -> Result<super::build::Child, ValError>,
) -> Result<bool, ValError> {
    let hash = key.stable_hash();
    let t = TableRef::open(pool, obj)?;
    if let (Some(e), _) = t.probe(pool, key, hash)? {
        let w = t.entry_words(e);
        let old = Cell::decode(load_cell(&w[3..5]), t.entry_at(e) + 24)?;
        store_cell(&w[3..5], value);
        // The new value is in: from here the call succeeds. A corrupt old value can only
        // leak, which `validate` would have reported.
        let _ = release_cell(pool, &old);
        return Ok(true);
    }
    if t.c.used == t.c.cap {
        grow(pool, &t, 1)?;
    }
    let key = make_key()?;
    push_new(pool, obj, hash, &key.cell(), value)?;
    key.commit();
    Ok(false)
}

/// Removes `key`'s entry; returns whether there was one. Its cells' references are
/// dropped; the entry stays as a tombstone until the table grows.
pub(crate) fn remove(pool: &Pool, obj: Obj<'_>, key: &Val) -> Result<bool, ValError> {
    let t = TableRef::open(pool, obj)?;
    let Some(e) = t.find(pool, key, key.stable_hash())? else {
        return Ok(false);
    };
    let old = t.entry(e)?;
    t.write_entry(e, 0, &Cell::Empty, &Cell::Empty);
    t.set_counts(t.c.len - 1, t.c.used);
    let r1 = release_cell(pool, &old.key);
    let r2 = release_cell(pool, &old.value);
    r1.and(r2)?;
    Ok(true)
}

/// Makes room for `extra` more entries: a new data block holding the live entries in
/// order (tombstones dropped) with a rebuilt index. The old data block is freed if it was
/// not the object's own.
pub(crate) fn grow(pool: &Pool, t: &TableRef<'_>, extra: u64) -> Result<(), ValError> {
    let need = t.c.len + extra;
    let mut cap = t.c.cap.max(4);
    // Enough tombstones to make room: compact in place of growing.
    if need > cap / 4 * 3 {
        while cap < need {
            cap = cap.checked_mul(2).filter(|c| *c <= MAX_TABLE_CAP).ok_or(
                ValError::OutOfMemory {
                    requested: u64::MAX,
                    largest_free: 0,
                },
            )?;
        }
        if cap == t.c.cap {
            cap = cap.saturating_mul(2).min(MAX_TABLE_CAP);
        }
    }
    let data = alloc_data(pool, cap)?;
    let fresh = (|| {
        let region = t.obj.region;
        let entries = words(region, data, cap * ENTRY_WORDS as u64)?;
        let index = slots(
            region,
            super::layout::add(data, cap * ENTRY_BYTES)?,
            index_cap(cap),
        )?;
        let mask = index.len() - 1;
        let mut n = 0u64;
        for e in 0..t.c.used {
            let entry = t.entry(e)?;
            if entry.key == Cell::Empty {
                continue;
            }
            let src = t.entry_words(e);
            let dst = &entries[n as usize * ENTRY_WORDS..(n as usize + 1) * ENTRY_WORDS];
            for (d, s) in dst.iter().zip(src) {
                d.store(s.load(Relaxed), Relaxed);
            }
            let mut i = entry.hash as usize & mask;
            while index[i].load(Relaxed) != 0 {
                i = (i + 1) & mask;
            }
            index[i].store(n as u32 + 1, Relaxed);
            n += 1;
        }
        Ok::<u64, ValError>(n)
    })();
    let n = match fresh {
        Ok(n) => n,
        Err(e) => {
            // SAFETY: the new block was allocated above and never linked: nothing refers
            // to it.
            let _ = unsafe { pool.free(data) };
            return Err(e);
        }
    };
    let obj = t.obj;
    obj.store(W_DATA, data.get());
    obj.store(W_CAP, cap);
    obj.store(W_LEN, n);
    obj.store(W_USED, n);
    if !t.c.inline {
        // SAFETY: the old data block belonged to this table alone, which the caller holds
        // uniquely (no view of it lives), and the table now links to the new one.
        unsafe { pool.free(t.c.data) }?;
    }
    Ok(())
}
