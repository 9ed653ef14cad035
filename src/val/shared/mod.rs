//! Values in a shared pool: [`ShmVal`] handles with process-shared refcounts, typed views
//! that read in place, and the format they share.
//!
//! - [`PoolExt`]: `pool.share(&val)` (a deep copy into the pool), and empty containers to
//!   fill in place (`pool.tab()`, `pool.otab()`, `pool.arr()`, `pool.array::<f64>(n)`, ...).
//!   `Pool` belongs to the allocator, a lower layer, so the constructors are an extension
//!   trait of this layer, re-exported at the crate root.
//! - [`ShmVal`]: an owned handle. Clone and drop count references; the last drop, in any
//!   process, frees the graph. [`ShmVal::field`] and the getters ([`ShmVal::as_f64`], ...)
//!   read it, [`ShmVal::insert`] and its siblings write it while it is unique;
//!   [`ShmVal::to_val`] copies out; [`ShmVal::into_raw`] and [`ShmVal::from_raw`] pass a
//!   handle between processes as an offset.
//! - Views, borrowed from a handle: [`ShmRef`] (any value), [`ShmTab`] (`Tab` and `OTab`),
//!   [`ShmSeq`] (`Arr` and `Tup`), [`ShmStr`], [`ShmArray`] (and `&[T]` slices of it).
//! - [`ShmValMut`]: writes through a unique handle; [`IntoShm`]: what may be put in.
//!
//! ```
//! # use std::sync::Arc;
//! # use shmval::{alloc::Pool, region::{Region, RegionName}, val, PoolExt, Val};
//! # let name = RegionName::new(format!("shmval-doc-shared-{}", std::process::id())).unwrap();
//! # let pool = Pool::create(Arc::new(Region::create(&name, 1 << 20)?))?;
//! let mut shared = pool.share(&val!({"a": 1.0, "xs": [1, 2, 3], "name": "shmval"}))?;
//! assert_eq!(shared.field("name")?.as_str()?, "shmval");
//! assert_eq!(shared.field("a")?.as_f64()?, 1.0);
//! assert_eq!(shared.field("xs")?.to_vec::<u8>()?, [1, 2, 3]);
//! assert!(shared.get("b")?.is_none());
//! shared.insert("b", "written in place")?; // the only handle: writable
//!
//! let tab = shared.as_tab()?; // typed views read in place
//! assert!(tab.get("a")?.unwrap() == Val::from(1)); // 1 == 1.0, as on the heap
//! assert_eq!(tab.get("xs")?.unwrap().as_seq()?.len(), 3);
//!
//! let samples = pool.array_from(&[0.5f64, 1.5, 2.5])?;
//! assert_eq!(samples.as_slice::<f64>()?, &[0.5, 1.5, 2.5]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The format
//!
//! Everything is 8-byte words inside pool blocks (16-aligned), linked by region offsets,
//! never pointers, and read and written through atomics, except the byte payloads of
//! strings and big integers and the elements of typed arrays (see [soundness](#soundness)).
//! Numbers are little-endian (the platform's: regions are not shared across machines).
//!
//! **Cells** hold one value in 16 bytes: word 0's low byte is the value's [`Tag`] code.
//!
//! | value | word 0 | word 1 |
//! |---|---|---|
//! | `None`, `Bool`, `I8`..`U64`, `F32`, `F64` | tag | the value's bits, zero-extended (`Bool` 0 or 1) |
//! | `C32` | tag | real part's bits (low half), imaginary part's (high half) |
//! | `Str` of at most 14 bytes | tag, `0x80 \| len`, bytes 0..6 | bytes 6..14 (unused bytes 0) |
//! | `Str`, `BigInt`, `BigUint`, `C64`, `Tab`, `OTab`, `Arr`, `Tup`, `Array` | tag | offset of the object |
//! | (dead table entry) | 0 | 0 |
//!
//! Every bit the table fixes is checked when a cell is read: unknown tags, bits past a
//! tag, payloads wider than their type, links that are 0 or misaligned are
//! [`ValError::Corrupt`].
//!
//! **Objects** start with a header; word 0 is `b"SVO\x01"` (magic and format version) in
//! its low four bytes, the object's kind (the tag code of what it holds, or 1 for a box) in
//! byte 4 and an array's [`ElemType`](crate::ElemType) code in byte 5; word 1 is the
//! refcount.
//!
//! | kind | words 2.. | then |
//! |---|---|---|
//! | box (a scalar a handle points at) | one cell (2 words) | |
//! | `Str`, `BigInt`, `BigUint` | byte length | the bytes (UTF-8; `BigInt` two's complement, `BigUint` unsigned, both little-endian) |
//! | `C64` | real part's bits, imaginary part's bits | |
//! | `Arr`, `Tup` | length, capacity, data offset, 0 | `capacity` cells at the data offset |
//! | `Array` | length, capacity, data offset, 0 | `capacity` elements of the element type |
//! | `Tab`, `OTab` | live entries, capacity, data offset, entries written | entries, then the index |
//!
//! A container's data follows its header in the same block when it was made with its
//! final size (`share`, and builders until they first grow); growing moves it to a block
//! of its own (the data offset says where; the old data block is freed unless it was the
//! header's).
//!
//! **Tables** (`Tab` and `OTab` share one implementation; only the kind differs): the data
//! is `capacity` entries of 5 words (the key's [`Val::stable_hash`](crate::Val::stable_hash), the key cell, the
//! value cell) in insertion order, then an index of `u32` slots, a power of two above 1.5 ×
//! capacity, each holding `entry + 1` or 0 for empty, probed linearly from
//! `hash & (slots - 1)`. Removing an entry empties its cells (a tombstone, which probes
//! skip) and keeps its slot; growing compacts the entries and rebuilds the index. Lookups
//! hash a heap key with the same fixed SipHash as the heap `Tab`, so a key is found in every
//! process and `get(1)` finds the key `1.0`. Iteration is in insertion order for both kinds.
//!
//! # Refcounts
//!
//! Every object has a process-shared refcount, counting handles (in any process) and
//! cells linking to it. Cloning a handle increments it (relaxed); dropping decrements it
//! (release) and the decrement that reaches zero is followed by an acquire fence, as in
//! `Arc`. That last drop frees the object and drops the references its cells hold, with a
//! work list instead of recursion, so any nesting depth is freed in constant stack, and
//! each object exactly once (it is freed only by the decrement from 1 to 0; a count already
//! at 0 is never decremented but reported as corrupt). A freed object's magic is cleared
//! before its block is returned.
//!
//! # Mutability and cycles
//!
//! A value is written only through [`ShmVal::get_mut`] (or [`try_mut`](ShmVal::try_mut),
//! which the handle's own [`insert`](ShmVal::insert), [`push`](ShmVal::push),
//! [`set`](ShmVal::set) and [`remove`](ShmVal::remove) go through), which succeeds only
//! while the count is 1: the handle is the only reference, in any process, and no
//! container holds the value. The write access borrows the handle mutably, so no view made
//! before it exists either.
//! Once cloned, put in a container, or enqueued, a value is read-only to everyone, which is
//! what lets any number of processes read it in place without locks. Values put into a
//! container are heap values (copied) or handles moved in by value (the container takes
//! over their reference).
//!
//! The write access can still show the value: [`ShmValMut::view`] borrows it for reading,
//! and [`ShmRef::to_handle`] turns that view into a second handle, which outlives the view.
//! So every write ([`insert`](ShmValMut::insert), [`remove`](ShmValMut::remove),
//! [`push`](ShmValMut::push), [`set`](ShmValMut::set),
//! [`as_mut_slice`](ShmValMut::as_mut_slice)) first loads the count again (acquire, as
//! [`ShmVal::is_unique`]) and fails with [`ValError::NotUnique`] unless it is 1, leaving the
//! value unchanged and dropping the value it was given. After that check nothing can raise
//! the count until the write returns (or, for `as_mut_slice`, while the slice lives): a
//! reference is made only from another one, by cloning a handle, linking a handle into a
//! container, or making a handle from a view. The only reference is the handle the write
//! access holds, borrowed mutably by it, and the write method borrows the write access
//! mutably, so neither the handle nor any view of it (views borrow the handle or the write
//! access) is reachable meanwhile; no container holds the value, so no view of a container
//! leads to it; and no other process holds a reference to start from. Only
//! [`ShmVal::from_raw`], which is `unsafe` for this reason, could conjure one.
//!
//! So a cycle cannot be built. A container `c` is written only through its unique handle,
//! which means nothing links to `c`: no other container holds it. For `c` to become part
//! of a cycle, a value put into `c` would have to reach `c`; but everything reachable from
//! a value links only to objects that some container holds, and no container holds `c`.
//! Nor can a handle to `c` itself be put in: the only one is borrowed by the write access,
//! and another one (a clone, or one made from the write access's view) makes the count 2,
//! so the insertion is refused. The compiler enforces the first part:
//!
//! ```compile_fail,E0505
//! # use shmval::{alloc::Pool, PoolExt};
//! # fn f(pool: &Pool) -> Result<(), shmval::ValError> {
//! let mut t = pool.tab()?;
//! let mut w = t.try_mut()?;
//! w.insert("self", t)?; // error: `t` is borrowed by `w`
//! # Ok(()) }
//! ```
//!
//! and a second handle is refused at run time, whether cloned before the write access or
//! made through it:
//!
//! ```
//! # use std::sync::Arc;
//! # use shmval::{alloc::Pool, region::{Region, RegionName}, PoolExt, ValError};
//! # let name = RegionName::new(format!("shmval-doc-cycle-{}", std::process::id())).unwrap();
//! # let pool = Pool::create(Arc::new(Region::create(&name, 1 << 20)?))?;
//! let mut t = pool.tab()?;
//! let again = t.clone();
//! assert!(t.get_mut().is_none()); // two references: read-only
//! drop(again);
//! let mut w = t.try_mut()?;
//! let me = w.view().to_handle()?; // a second reference, made through the write access
//! assert_eq!(w.insert("self", me), Err(ValError::NotUnique)); // `me` is dropped
//! assert_eq!(w.view().len()?, 0);
//! w.insert("k", 1)?; // unique again
//! # drop(w);
//! # assert_eq!(t.ref_count(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Only [`ShmVal::from_raw`] could make a second handle from one reference, which is why it
//! is `unsafe`: each reference given up by [`ShmVal::into_raw`] must be taken over once.
//!
//! # Regions
//!
//! A handle carries its pool, and so its region and the region's random id. Putting a
//! handle of another region into a container is [`ValError::ForeignRegion`], so a value
//! never links to memory its readers have not mapped; a heap [`Val`](crate::Val) enters a pool only by
//! being copied.
//!
//! # Untrusted memory
//!
//! Another process may have written anything: every read treats the region as untrusted.
//! Offsets become references only through the region's bounds check; an object is opened
//! only after its magic and kind match what links to it; a container's length is checked
//! against its capacity and the capacity against the size of the pool block it lives in;
//! a string's length against its block; every loop is bounded by checked lengths or index
//! sizes; all arithmetic on lengths, capacities, counts, offsets and indices, read from the
//! region or given by the caller, is checked in release builds as in debug ones (an index
//! past the end, however large, is absent; a size that overflows is corrupt; a count that
//! contradicts the entries makes a write fail before it changes anything); copying out,
//! sharing and comparing stop at [`MAX_NESTING`] levels, so a graph linking back to itself
//! is an error, not a stack overflow. Nothing panics on garbage: the caller gets
//! [`ValError::Corrupt`].
//!
//! # Shared children and copies
//!
//! A container may hold one object many times (a handle cloned into it twice), so a few
//! objects can stand for a huge value: a list `[h, h]` built on itself 30 times is 31
//! objects and a billion values once expanded. Reading in place costs what the graph
//! costs; what expands the value is bounded:
//!
//! - [`ShmVal::to_val`] (and so `Display`, which prints a copy) refuses a copy past
//!   [`MAX_COPY_BYTES`] with [`ValError::TooLarge`], which says how many values and bytes
//!   the copy would take. A value whose containers are each linked once is copied in one
//!   walk that stops at the limit; one that links a container from several places is
//!   measured first, in one walk of the graph with each container measured once, and
//!   refused before anything is built. [`ShmVal::to_val_within`] takes another limit.
//! - `Debug` (of handles and views) copies nothing: it prints the Python literal in place,
//!   cut to the first elements of each container and characters of each string, a few
//!   levels deep and a few kilobytes long.
//! - Comparing with a heap value ([`ShmRef::eq_val`], `==`) walks the heap value and
//!   matches the shared one against it in place: the work is bounded by the heap value's
//!   size, and a shared value that expands to more differs in some length.
//! - [`ShmVal::validate`] hashes table keys in place to check their stored hashes, after
//!   measuring them: all the keys of a graph together within one [`MAX_COPY_BYTES`].
//!
//! # Validation
//!
//! [`ShmVal::validate`] walks the whole graph, each object once, and checks everything the
//! views check lazily: headers (magic, and the kind the handle or the linking cell
//! expects) against their pool blocks, every cell, every string's
//! UTF-8, bool arrays' bytes, each table's counts, stored hashes (recomputed from the
//! keys), and index (each entry has one slot; each live key is found at its entry); then
//! that every refcount is at least the number of links to it (plus the caller's handle
//! for the root) and below 2^48, and that the graph has no cycle.
//!
//! # Soundness
//!
//! Cells, headers and index slots are atomics, so any bits another process writes are
//! read without undefined behaviour. Some bytes are read as plain slices: strings and big
//! integers (written once, before their first reference leaves the process that made
//! them, never again), typed arrays, and the bytes of a short string inside its cell (a
//! [`ShmStr`] is a `&str` even for those), both written only through [`ShmValMut`], which
//! borrows the one handle mutably and checks before each write that the count is still 1
//! (a box's cell is never written).
//! A view is borrowed from a handle, which keeps its object alive, so while a slice lives
//! nobody writes its bytes, as [`Region::bytes`](crate::region::Region::bytes) requires.
//! Each slice lies inside its object's pool block (checked against the block's size read
//! from the pool, without the pool lock: a live block's header does not change), and
//! array slices are aligned and typed through `Elem`'s plain types, with bool bytes
//! checked to be 0 or 1; a short string's bytes are checked to be what its cell's atomic
//! words decoded to. This rests on every process following the refcount protocol; a
//! process that writes a value it does not uniquely own, or drops references it does not
//! hold, can make a plain slice race with its writes.

// Lengths, capacities, counts, offsets and indices come from shared memory or from the
// caller: every operation on them is checked, in release builds too.
#![warn(clippy::arithmetic_side_effects)]

mod access;
mod build;
mod containers;
mod eq;
mod expand;
mod free_walk;
mod handle;
mod hash;
mod journal;
mod layout;
mod leaves;
mod locked;
mod mutate;
mod ops;
mod plain;
mod release;
mod share;
mod show;
mod table;
mod to_val;
pub(crate) mod tracked;
mod validate;
mod views;
mod walk;
mod writes;

pub use build::{IntoShm, PoolExt, ShmItem};
pub use containers::{SeqIter, ShmSeq, ShmTab, TabIter};
pub use handle::ShmVal;
pub use leaves::{ShmArray, ShmStr};
pub use locked::{locked_status, LockedGuard, LockedMut, LockedStatus, ShmLocked};
pub use mutate::ShmValMut;
pub use views::{Key, ShmRef};

use crate::alloc::{AllocError, Pool, UsedBlock};
use crate::region::Offset;
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use crate::val::{Tag, ValError};

/// How many nested containers copying out ([`ShmVal::to_val`]), sharing
/// ([`PoolExt::share`]) and comparing follow: more is [`ValError::TooDeep`]. The same as
/// the text parser's [`MAX_DEPTH`](crate::val::MAX_DEPTH), so every value the parser
/// accepts can be shared and copied back. They walk with explicit stacks (comparing nests
/// a call only for a table key holding a table), so any depth they accept fits a 2 MiB
/// thread stack even unoptimised. Freeing and [`ShmVal::validate`]'s walk have no depth
/// limit (validate hashes table keys within it).
pub const MAX_NESTING: usize = 256;

/// The most heap bytes [`ShmVal::to_val`] (and `Display` and `Debug`, which print a copy)
/// builds for one shared value: 256 MiB, counting `size_of::<Val>()` bytes per value (a
/// few million values) plus string, big integer and array bytes. A larger copy is
/// [`ValError::TooLarge`], refused before anything is built: it is far above any message
/// a pipe carries, and well below what would exhaust a process's memory, which a value
/// sharing its children could otherwise do with a few objects. Read larger values in place
/// through views, or copy them with [`ShmVal::to_val_within`].
pub const MAX_COPY_BYTES: u64 = 256 << 20;

/// Every block the pool has handed out, in heap order, with the kind of value it holds:
/// the [`Tag`] of a value object (a boxed scalar's own tag), or `None` for a block that is
/// not one (a container's data grown into a block of its own, a pipe, a directory, raw
/// memory). For diagnostics such as counting live values by type.
///
/// Taken under the pool lock: a block flagged as a value object cannot be freed or handed
/// out meanwhile, and its header words, the only ones read, are only ever accessed through
/// atomics, so the census never reads payload another process may be writing.
///
/// # Errors
///
/// [`AllocError::Corrupted`] if the pool's chain of blocks is broken.
pub fn live_blocks(pool: &Pool) -> Result<Vec<(UsedBlock, Option<Tag>)>, AllocError> {
    let mut out = Vec::new();
    pool.for_each_used_block(|b| {
        let tag = if b.object {
            object_tag(pool, b.offset)
        } else {
            None
        };
        out.push((b, tag));
    })?;
    Ok(out)
}

/// The tag of the value object at `off`, from its header; `None` if the words there are
/// not an object header. Reads two header words and trusts only their bits.
fn object_tag(pool: &Pool, off: Offset) -> Option<Tag> {
    let region = pool.region();
    let w0 = region.at::<AtomicU64>(off).ok()?.load(Relaxed);
    if w0 as u32 != layout::OBJ_MAGIC {
        return None;
    }
    let kind = layout::Kind::from_u8((w0 >> 32) as u8)?;
    if kind == layout::Kind::Locked {
        // No value of its own: what it holds is read under its lock (see `locked_status`).
        return None;
    }
    match kind.tag() {
        Some(tag) => Some(tag),
        None => {
            let cell = region
                .at::<AtomicU64>(off.checked_add(layout::BOX_CELL)?)
                .ok()?
                .load(Relaxed);
            Tag::from_u8(cell as u8)
        }
    }
}

/// A [`ValError::Corrupt`] at `offset`.
pub(crate) fn corrupt(offset: u64, what: impl Into<String>) -> ValError {
    ValError::Corrupt {
        offset,
        what: what.into(),
    }
}

/// [`ValError::OutOfMemory`] for a size that overflows: no pool holds it.
pub(crate) fn too_large() -> ValError {
    ValError::OutOfMemory {
        requested: u64::MAX,
        largest_free: 0,
    }
}

/// The pool's region id, as an integer.
pub(crate) fn region_id(pool: &Pool) -> u128 {
    u128::from_be_bytes(pool.region().id().0)
}

impl From<AllocError> for ValError {
    /// [`AllocError::OutOfMemory`] and [`AllocError::TooLarge`] are
    /// [`ValError::OutOfMemory`] (`largest_free` 0 for a request larger than the pool);
    /// anything else is [`ValError::Pool`] with the allocator's error as its source.
    fn from(e: AllocError) -> ValError {
        match e {
            AllocError::OutOfMemory {
                requested,
                largest_free,
            } => ValError::OutOfMemory {
                requested,
                largest_free,
            },
            AllocError::TooLarge { size } => ValError::OutOfMemory {
                requested: size,
                largest_free: 0,
            },
            other => ValError::Pool {
                source: crate::val::Source::new(other),
            },
        }
    }
}
