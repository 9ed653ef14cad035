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

use super::build::Child;
use super::eq::cell_eq_val;
use super::layout::{
    at, index_cap, load_cell, mul, nth, slots, table_data_bytes, to_usize, words, Cell, Container,
    Obj, ENTRY_BYTES, ENTRY_WORDS, MAX_TABLE_CAP, W_CAP, W_DATA, W_LEN, W_USED,
};
use super::tracked;
use super::writes::{Direct, Writes};
use super::{corrupt, too_large};
use crate::alloc::Pool;
use crate::ledger::Entry as LedgerEntry;
use crate::region::Offset;
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use crate::val::{Val, ValError};

/// Byte offsets of the key and value cells in an entry.
const KEY_AT: u64 = 8;
const VALUE_AT: u64 = 24;

/// A checked view of a table's words.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TableRef<'a> {
    pub(crate) obj: Obj<'a>,
    pub(crate) c: Container,
    /// `cap` entries of [`ENTRY_WORDS`] words.
    pub(crate) entries: &'a [AtomicU64],
    /// A power of two, at least 4, of slots.
    pub(crate) index: &'a [AtomicU32],
}

/// One entry, decoded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) hash: u64,
    pub(crate) key: Cell,
    pub(crate) value: Cell,
}

/// The slot a probe for `hash` starts at, in an index of `mask + 1` slots. Only the low
/// bits of the hash are used, so truncating it to `usize` changes nothing.
fn home(hash: u64, mask: usize) -> usize {
    hash as usize & mask
}

/// The slot after `i` in an index of `mask + 1` slots, wrapping to 0 (`i <= mask`, so the
/// addition cannot wrap).
fn next(i: usize, mask: usize) -> usize {
    i.wrapping_add(1) & mask
}

/// The first empty slot of the probe chain of `hash`, if any within one round.
fn free_slot(index: &[AtomicU32], hash: u64) -> Option<usize> {
    let mask = index.len().checked_sub(1)?;
    let mut i = home(hash, mask);
    for _ in 0..index.len() {
        if index.get(i)?.load(Relaxed) == 0 {
            return Some(i);
        }
        i = next(i, mask);
    }
    None
}

/// The words of entry `e` of `entries`, if it has that many.
fn entry_in(entries: &[AtomicU64], e: u64) -> Option<&[AtomicU64]> {
    let i = usize::try_from(e).ok()?.checked_mul(ENTRY_WORDS)?;
    entries.get(i..i.checked_add(ENTRY_WORDS)?)
}

/// What an index slot holds for entry `e`: `e + 1`, which fits a `u32` for every entry
/// below [`MAX_TABLE_CAP`].
fn slot_of(e: u64) -> Option<u32> {
    u32::try_from(e.checked_add(1)?).ok()
}

impl<'a> TableRef<'a> {
    pub(crate) fn open(pool: &'a Pool, obj: Obj<'a>) -> Result<TableRef<'a>, ValError> {
        let c = obj.container(pool)?;
        let region = obj.region;
        let at = obj.off.get();
        let entries = words(region, c.data, mul(c.cap, ENTRY_WORDS as u64, at)?)?;
        let index_at = nth(c.data, c.cap, ENTRY_BYTES)?;
        let n = index_cap(c.cap).ok_or_else(|| corrupt(at, format!("capacity {}", c.cap)))?;
        let index = slots(region, index_at, n)?;
        Ok(TableRef {
            obj,
            c,
            entries,
            index,
        })
    }

    /// The words of entry `e`, which must be below `used`: the hash, the key cell (words 1
    /// and 2) and the value cell (words 3 and 4).
    pub(crate) fn entry_words(&self, e: u64) -> Result<&'a [AtomicU64], ValError> {
        if e >= self.c.used {
            return Err(corrupt(
                self.obj.off.get(),
                format!("entry {e} of {}", self.c.used),
            ));
        }
        self.slot_words(e)
    }

    /// The words of entry `e`, written or not, which must be below the capacity.
    fn slot_words(&self, e: u64) -> Result<&'a [AtomicU64], ValError> {
        entry_in(self.entries, e).ok_or_else(|| {
            corrupt(
                self.obj.off.get(),
                format!("entry {e} of capacity {}", self.c.cap),
            )
        })
    }

    /// The offset of entry `e`, for errors.
    fn entry_at(&self, e: u64) -> u64 {
        at(self.c.data.get(), e.saturating_mul(ENTRY_BYTES))
    }

    /// Entry `e` (below `used`), decoded and checked: a live entry has a key and a value,
    /// a dead one neither.
    pub(crate) fn entry(&self, e: u64) -> Result<Entry, ValError> {
        let w = self.entry_words(e)?;
        let at0 = self.entry_at(e);
        let key = Cell::decode(load_cell(&w[1..3]), at(at0, KEY_AT))?;
        let value = Cell::decode(load_cell(&w[3..5]), at(at0, VALUE_AT))?;
        if (key == Cell::Empty) != (value == Cell::Empty) {
            return Err(corrupt(at0, "half an entry"));
        }
        Ok(Entry {
            hash: w[0].load(Relaxed),
            key,
            value,
        })
    }

    /// Entry `e`'s stored hash.
    fn hash_of(&self, e: u64) -> Result<u64, ValError> {
        Ok(self.entry_words(e)?[0].load(Relaxed))
    }

    /// Entry `e`'s key cell, decoded and checked ([`Cell::Empty`] for a dead entry).
    fn key_of(&self, e: u64) -> Result<Cell, ValError> {
        let w = self.entry_words(e)?;
        Cell::decode(load_cell(&w[1..3]), at(self.entry_at(e), KEY_AT))
    }

    /// The value of live entry `e`, decoded and checked.
    pub(crate) fn value_of(&self, e: u64) -> Result<Cell, ValError> {
        let w = self.entry_words(e)?;
        let at = at(self.entry_at(e), VALUE_AT);
        match Cell::decode(load_cell(&w[3..5]), at)? {
            Cell::Empty => Err(corrupt(at, "an entry without a value")),
            c => Ok(c),
        }
    }

    /// The entry whose key equals `key` (with hash `hash`), if any. `depth` is the nesting
    /// of the table, for comparing nested keys.
    pub(crate) fn find(
        &self,
        pool: &Pool,
        key: &Val,
        hash: u64,
        depth: usize,
    ) -> Result<Option<u64>, ValError> {
        let mask = self.mask()?;
        let mut i = home(hash, mask);
        for _ in 0..self.index.len() {
            let s = self.index[i].load(Relaxed);
            let Some(e) = u64::from(s).checked_sub(1) else {
                return Ok(None);
            };
            // The stored hash first: most probes end there, without decoding the cells.
            if self.hash_of(e)? == hash {
                let k = self.key_of(e)?;
                if k != Cell::Empty && cell_eq_val(pool, &k, key, depth)? {
                    return Ok(Some(e));
                }
            }
            i = next(i, mask);
        }
        Err(corrupt(
            self.obj.off.get(),
            "the table's index has no empty slot",
        ))
    }

    /// Whether a lookup of entry `e`'s key (with hash `hash`) ends at `e`: its probe chain
    /// reaches `e` before an empty slot, and no entry before it holds an equal key, which
    /// `same` tells for a key cell. Keys are compared only where the stored hashes match,
    /// so checking every entry costs no more than hashing the keys.
    pub(crate) fn finds_at(
        &self,
        hash: u64,
        e: u64,
        mut same: impl FnMut(&Cell) -> Result<bool, ValError>,
    ) -> Result<bool, ValError> {
        let mask = self.mask()?;
        let mut i = home(hash, mask);
        for _ in 0..self.index.len() {
            let Some(other) = u64::from(self.index[i].load(Relaxed)).checked_sub(1) else {
                return Ok(false);
            };
            if other == e {
                return Ok(true);
            }
            if self.hash_of(other)? == hash {
                let k = self.key_of(other)?;
                if k != Cell::Empty && same(&k)? {
                    return Ok(false);
                }
            }
            i = next(i, mask);
        }
        Ok(false)
    }

    /// The index's slot mask (its length is a power of two, at least 4).
    fn mask(&self) -> Result<usize, ValError> {
        self.index
            .len()
            .checked_sub(1)
            .ok_or_else(|| corrupt(self.obj.off.get(), "a table without index"))
    }
}

/// Writes through a table the caller holds uniquely or under its lock.
impl TableRef<'_> {
    /// Writes entry `e`'s words; the counts and the index slot are the caller's.
    fn write_entry(
        &self,
        w: &impl Writes,
        e: u64,
        hash: u64,
        key: &Cell,
        value: &Cell,
    ) -> Result<(), ValError> {
        let words = self.slot_words(e)?;
        w.store(&words[0], hash)?;
        w.store_cell(&words[1..3], key)?;
        w.store_cell(&words[3..5], value)
    }

    fn set_counts(&self, w: &impl Writes, len: u64, used: u64) -> Result<(), ValError> {
        w.store(&self.obj.words[W_LEN], len)?;
        w.store(&self.obj.words[W_USED], used)
    }

    /// Appends an entry whose key is known to be absent, if there is room (else
    /// [`ValError::OutOfMemory`]: the caller grows first). Keeps this view's counts in step
    /// with the header, so a caller filling a table opens it once. On success the table
    /// holds the references the cells carry; on error nothing changed.
    pub(crate) fn push(&mut self, hash: u64, key: &Cell, value: &Cell) -> Result<(), ValError> {
        self.push_with(&Direct, hash, key, value)
    }

    /// [`push`](Self::push) through `w`.
    fn push_with(
        &mut self,
        w: &impl Writes,
        hash: u64,
        key: &Cell,
        value: &Cell,
    ) -> Result<(), ValError> {
        let e = self.c.used;
        if e >= self.c.cap {
            return Err(too_large());
        }
        let off = self.obj.off.get();
        let slot =
            free_slot(self.index, hash).ok_or_else(|| corrupt(off, "the table's index is full"))?;
        let mark = slot_of(e).ok_or_else(|| corrupt(off, format!("entry {e}")))?;
        let (Some(len), Some(used)) = (self.c.len.checked_add(1), e.checked_add(1)) else {
            return Err(corrupt(off, "entry counts overflow"));
        };
        // Entry `e` is past `used`: nobody reads it until the counts say so.
        self.write_entry(&Direct, e, hash, key, value)?;
        w.store32(&self.index[slot], mark)?;
        self.c.used = used;
        self.c.len = len;
        self.set_counts(w, len, used)
    }
}

/// Allocates a table's data for `cap` entries (empty index), recorded in `rec` (see
/// `tracked::begin_block`) if given, and returns its offset.
fn alloc_data(pool: &Pool, rec: Option<&LedgerEntry<'_>>, cap: u64) -> Result<Offset, ValError> {
    let bytes = table_data_bytes(cap).ok_or_else(too_large)?;
    let data = tracked::alloc_block(pool, rec, bytes, 16, false)?;
    if let Err(e) = clear_index(pool, data, cap) {
        // SAFETY: the block was allocated just above and never linked: nothing refers to it.
        let _ = unsafe { tracked::free_block(pool, rec, data) };
        return Err(e);
    }
    Ok(data)
}

/// Zeroes the index of a table whose data for `cap` entries starts at `data`.
pub(crate) fn clear_index(pool: &Pool, data: Offset, cap: u64) -> Result<(), ValError> {
    let at = nth(data, cap, ENTRY_BYTES)?;
    let n = index_cap(cap).ok_or_else(|| corrupt(data.get(), format!("capacity {cap}")))?;
    for s in slots(pool.region(), at, n)? {
        s.store(0, Relaxed);
    }
    Ok(())
}

/// Inserts or replaces `key`'s value. `make_key` gives the key's cell (called only when the
/// key is new). Returns whether a value was replaced (its reference is dropped).
///
/// On success the table holds the reference `value` carries; on error it is given back.
pub(crate) fn insert(
    pool: &Pool,
    w: &impl Writes,
    obj: Obj<'_>,
    key: &Val,
    value: Child,
    make_key: impl FnOnce() -> Result<Child, ValError>,
) -> Result<bool, ValError> {
    let hash = key.stable_hash();
    let t = TableRef::open(pool, obj)?;
    if let Some(e) = t.find(pool, key, hash, 0)? {
        let words = t.entry_words(e)?;
        let old = Cell::decode(load_cell(&words[3..5]), at(t.entry_at(e), VALUE_AT))?;
        w.place(value, |cell| w.store_cell(&words[3..5], cell))?;
        // The new value is in: from here the call succeeds. A corrupt old value can only
        // leak, which `validate` would have reported.
        let _ = w.drop_cell(pool, old);
        return Ok(true);
    }
    let mut t = t;
    if t.c.used == t.c.cap {
        grow(pool, w, &t, 1)?;
        t = TableRef::open(pool, obj)?;
    }
    let key = make_key()?;
    // The key goes in with the value: both are placed by the push's stores.
    w.place(key, |kc| w.place(value, |vc| t.push_with(w, hash, kc, vc)))?;
    Ok(false)
}

/// Removes `key`'s entry; returns whether there was one. Its cells' references are
/// dropped; the entry stays as a tombstone until the table grows. A live entry in a table
/// whose count says it has none is [`ValError::Corrupt`], and nothing is changed.
pub(crate) fn remove(
    pool: &Pool,
    w: &impl Writes,
    obj: Obj<'_>,
    key: &Val,
) -> Result<bool, ValError> {
    let t = TableRef::open(pool, obj)?;
    let Some(e) = t.find(pool, key, key.stable_hash(), 0)? else {
        return Ok(false);
    };
    let old = t.entry(e)?;
    let len = t.c.len.checked_sub(1).ok_or_else(|| {
        corrupt(
            obj.off.get(),
            "a live entry in a table that counts no entries",
        )
    })?;
    t.write_entry(w, e, 0, &Cell::Empty, &Cell::Empty)?;
    t.set_counts(w, len, t.c.used)?;
    let r1 = w.drop_cell(pool, old.key);
    let r2 = w.drop_cell(pool, old.value);
    r1.and(r2)?;
    Ok(true)
}

/// The capacity to grow a table of `len` live entries in `cap` slots to, to make room for
/// `extra` more: the same capacity (compacting) when tombstones make enough room, else
/// doubled until the entries fit. [`ValError::OutOfMemory`] past [`MAX_TABLE_CAP`].
fn grown_cap(len: u64, old: u64, extra: u64) -> Result<u64, ValError> {
    let oom = too_large;
    let need = len.checked_add(extra).ok_or_else(oom)?;
    let mut cap = old.max(4);
    // Too few tombstones to make room: grow.
    if need > (cap / 4).saturating_mul(3) {
        while cap < need {
            cap = cap
                .checked_mul(2)
                .filter(|c| *c <= MAX_TABLE_CAP)
                .ok_or_else(oom)?;
        }
        if cap == old {
            cap = cap.saturating_mul(2).min(MAX_TABLE_CAP);
        }
    }
    Ok(cap)
}

/// Makes room for `extra` more entries: a new data block holding the live entries in
/// order (tombstones dropped) with a rebuilt index. The old data block is freed if it was
/// not the object's own. A table whose live entries do not match its count is
/// [`ValError::Corrupt`], and is left as it was.
pub(crate) fn grow(
    pool: &Pool,
    w: &impl Writes,
    t: &TableRef<'_>,
    extra: u64,
) -> Result<(), ValError> {
    let cap = grown_cap(t.c.len, t.c.cap, extra)?;
    // Both blocks are recorded while the table moves from one to the other: a death at
    // any step gives back whichever the table does not link to.
    let rec = w.new_block(pool, t.obj.off)?;
    let data = match alloc_data(pool, rec.as_ref(), cap) {
        Ok(d) => d,
        Err(e) => {
            w.done_block(pool, rec, Offset::NULL);
            return Err(e);
        }
    };
    let fresh = (|| {
        let region = t.obj.region;
        let at = t.obj.off.get();
        let entries = words(region, data, mul(cap, ENTRY_WORDS as u64, at)?)?;
        let n_slots = index_cap(cap).ok_or_else(|| corrupt(at, format!("capacity {cap}")))?;
        let index = slots(region, nth(data, cap, ENTRY_BYTES)?, n_slots)?;
        let mut n = 0u64;
        for e in 0..t.c.used {
            let entry = t.entry(e)?;
            if entry.key == Cell::Empty {
                continue;
            }
            let full = || {
                corrupt(
                    at,
                    format!("more live entries than the {} counted", t.c.len),
                )
            };
            if n >= t.c.len || n >= cap {
                return Err(full());
            }
            let src = t.entry_words(e)?;
            let i = to_usize(n, at)?.saturating_mul(ENTRY_WORDS);
            let dst = entries
                .get(i..i.saturating_add(ENTRY_WORDS))
                .ok_or_else(full)?;
            for (d, s) in dst.iter().zip(src) {
                d.store(s.load(Relaxed), Relaxed);
            }
            let slot = free_slot(index, entry.hash).ok_or_else(full)?;
            index[slot].store(slot_of(n).ok_or_else(full)?, Relaxed);
            n = n.saturating_add(1);
        }
        if n != t.c.len {
            return Err(corrupt(
                at,
                format!("{n} live entries, the table counts {}", t.c.len),
            ));
        }
        Ok::<u64, ValError>(n)
    })();
    let n = match fresh {
        Ok(n) => n,
        Err(e) => {
            // SAFETY: the new block was allocated above and never linked: nothing refers
            // to it.
            let _ = unsafe { tracked::free_block(pool, rec.as_ref(), data) };
            w.done_block(pool, rec, Offset::NULL);
            return Err(e);
        }
    };
    let obj = t.obj;
    let old = if t.c.inline {
        None
    } else {
        Some(w.old_block(pool, obj.off, t.c.data)?)
    };
    // The count of entries to read first (`n` is the live count, at most the old one):
    // a death before the data switch leaves the old block read only as far as `n`
    // (some children left counted, never one read from memory the table does not own).
    let switched = (|| {
        w.store(&obj.words[W_LEN], n)?;
        w.store(&obj.words[W_USED], n)?;
        w.store(&obj.words[W_DATA], data.get())?;
        w.store(&obj.words[W_CAP], cap)
    })();
    w.done_block(pool, rec, data);
    switched?;
    crate::fault::pause_point("val.grow.linked");
    if let Some(old) = old {
        // SAFETY: the old data block belonged to this table alone, which the caller holds
        // uniquely or under its lock, and the table now links to the new one.
        unsafe { w.drop_block(pool, old, t.c.data) }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_compacts_or_doubles_within_bounds() {
        // Enough tombstones: compact at the same capacity.
        assert_eq!(grown_cap(2, 16, 1), Ok(16));
        // Full: double.
        assert_eq!(grown_cap(16, 16, 1), Ok(32));
        assert_eq!(grown_cap(0, 0, 1), Ok(4));
        // Counts from corrupt memory or a huge request: an error, not a wrap.
        assert!(grown_cap(u64::MAX, 16, 1).is_err());
        assert!(grown_cap(MAX_TABLE_CAP, MAX_TABLE_CAP, 1).is_err());
    }
}
