//! The in-memory format: object headers, cells, and their checked decoding.
//!
//! Everything here is arithmetic on words and the one place that knows the format's
//! numbers; the table in the [module docs](super#the-format) describes the same layout.
//! Objects are viewed only through [`Obj::open`], which checks the header against the
//! expected kind before anything else is read.

use num_complex::Complex32;

use super::corrupt;
use crate::alloc::Pool;
use crate::region::{Offset, Region};
use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use crate::val::{ElemType, Tag, Val, ValError};

/// The low half of every object's first word: `b"SVO\x01"` read as a little-endian `u32`
/// (the last byte is the format version).
pub(crate) const OBJ_MAGIC: u32 = u32::from_le_bytes(*b"SVO\x01");

/// Header word indices.
pub(crate) const W_KIND: usize = 0;
pub(crate) const W_RC: usize = 1;
pub(crate) const W_LEN: usize = 2;
pub(crate) const W_CAP: usize = 3;
pub(crate) const W_DATA: usize = 4;
pub(crate) const W_USED: usize = 5;

/// Byte offset of a box's cell in its object.
pub(crate) const BOX_CELL: u64 = 8 * W_LEN as u64;

/// Words in a container header (Tab, OTab, Arr, Tup, Array).
pub(crate) const CONTAINER_WORDS: usize = 6;
/// Words in a byte-string header (Str, BigInt, BigUint); the bytes follow.
pub(crate) const BYTES_WORDS: usize = 3;
/// Words of a boxed complex (two `f64`) or a boxed scalar (one cell).
pub(crate) const PAIR_WORDS: usize = 4;

/// Words of a locked value's header: kind, refcount, the lock (two words), the journal's
/// state, the count of committed operations, the value's cell (two words), then the
/// journal's [`JOURNAL_CAP`] records of two words (see `locked`).
pub(crate) const LOCKED_WORDS: usize = 8 + 2 * JOURNAL_CAP;
/// Records a locked value's journal holds: more than any one operation writes.
pub(crate) const JOURNAL_CAP: usize = 32;

/// Bytes of a cell: two words.
pub(crate) const CELL_BYTES: u64 = 16;
/// Words of a table entry: the key's hash, the key cell, the value cell.
pub(crate) const ENTRY_WORDS: usize = 5;
/// Bytes of a table entry.
pub(crate) const ENTRY_BYTES: u64 = 8 * ENTRY_WORDS as u64;
/// The most entries a table holds: index slots are `u32`s holding `entry + 1`.
pub(crate) const MAX_TABLE_CAP: u64 = (u32::MAX / 2) as u64;
/// Longest string held inline in a cell.
pub(crate) const SHORT_MAX: usize = 14;
/// Bit of a cell's second byte that marks an inline string (the low bits are its length).
const SHORT_FLAG: u64 = 0x80;
/// Refcounts above this are not plausible (no process holds 2^48 handles).
pub(crate) const MAX_REFCOUNT: u64 = 1 << 48;

/// The kind of an object: what its header describes. The codes are the [`Tag`] codes of the
/// values they hold, and `1` for a boxed scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// A scalar or short string held in a cell of its own: what a handle to such a value
    /// points at.
    Boxed = 1,
    /// A value several processes write under a lock (see `locked`): what a handle to it
    /// points at, never linked from a cell.
    Locked = 2,
    Str = b'a',
    BigInt = b'q',
    BigUint = b'Q',
    C64 = b'D',
    Tab = b't',
    OTab = b'o',
    Arr = b'n',
    Tup = b'u',
    Array = b'N',
}

impl Kind {
    const ALL: [Kind; 11] = [
        Kind::Boxed,
        Kind::Locked,
        Kind::Str,
        Kind::BigInt,
        Kind::BigUint,
        Kind::C64,
        Kind::Tab,
        Kind::OTab,
        Kind::Arr,
        Kind::Tup,
        Kind::Array,
    ];

    pub(crate) fn from_u8(code: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u8 == code)
    }

    /// The kind of object a value of `tag` is stored in when it does not fit a cell.
    pub(crate) fn of_tag(tag: Tag) -> Option<Kind> {
        Some(match tag {
            Tag::Str => Kind::Str,
            Tag::BigInt => Kind::BigInt,
            Tag::BigUint => Kind::BigUint,
            Tag::C64 => Kind::C64,
            Tag::Tab => Kind::Tab,
            Tag::OTab => Kind::OTab,
            Tag::Arr => Kind::Arr,
            Tag::Tup => Kind::Tup,
            Tag::Array => Kind::Array,
            _ => return None,
        })
    }

    /// The tag of the values this kind holds (`None` for a box: its cell says).
    pub(crate) fn tag(self) -> Option<Tag> {
        Some(match self {
            Kind::Boxed | Kind::Locked => return None,
            Kind::Str => Tag::Str,
            Kind::BigInt => Tag::BigInt,
            Kind::BigUint => Tag::BigUint,
            Kind::C64 => Tag::C64,
            Kind::Tab => Tag::Tab,
            Kind::OTab => Tag::OTab,
            Kind::Arr => Tag::Arr,
            Kind::Tup => Tag::Tup,
            Kind::Array => Tag::Array,
        })
    }

    /// Words of the header.
    pub(crate) fn header_words(self) -> usize {
        match self {
            Kind::Str | Kind::BigInt | Kind::BigUint => BYTES_WORDS,
            Kind::Boxed | Kind::C64 => PAIR_WORDS,
            Kind::Tab | Kind::OTab | Kind::Arr | Kind::Tup | Kind::Array => CONTAINER_WORDS,
            Kind::Locked => LOCKED_WORDS,
        }
    }

    /// Bytes of the header.
    pub(crate) fn header_bytes(self) -> u64 {
        const BYTES: u64 = 8 * BYTES_WORDS as u64;
        const PAIR: u64 = 8 * PAIR_WORDS as u64;
        const CONTAINER: u64 = 8 * CONTAINER_WORDS as u64;
        const LOCKED: u64 = 8 * LOCKED_WORDS as u64;
        match self {
            Kind::Str | Kind::BigInt | Kind::BigUint => BYTES,
            Kind::Boxed | Kind::C64 => PAIR,
            Kind::Tab | Kind::OTab | Kind::Arr | Kind::Tup | Kind::Array => CONTAINER,
            Kind::Locked => LOCKED,
        }
    }

    pub(crate) fn is_table(self) -> bool {
        matches!(self, Kind::Tab | Kind::OTab)
    }

    pub(crate) fn is_seq(self) -> bool {
        matches!(self, Kind::Arr | Kind::Tup)
    }
}

/// The first header word of an object of `kind` (element type `elem`, 0 if none).
pub(crate) fn kind_word(kind: Kind, elem: u8) -> u64 {
    u64::from(OBJ_MAGIC) | (kind as u64) << 32 | u64::from(elem) << 40
}

/// Bytes of one array element.
pub(crate) fn elem_size(t: ElemType) -> u64 {
    match t {
        ElemType::I8 | ElemType::U8 | ElemType::Bool => 1,
        ElemType::I16 | ElemType::U16 => 2,
        ElemType::I32 | ElemType::U32 | ElemType::F32 => 4,
        ElemType::I64 | ElemType::U64 | ElemType::F64 | ElemType::C32 => 8,
        ElemType::C64 => 16,
    }
}

/// Index slots of a table of `cap` entries: a power of two above `cap * 3 / 2`, so the
/// index is at most two-thirds full and a probe always meets an empty slot. `None` past
/// [`MAX_TABLE_CAP`].
pub(crate) fn index_cap(cap: u64) -> Option<u64> {
    if cap > MAX_TABLE_CAP {
        return None;
    }
    Some(
        cap.checked_add(cap / 2)?
            .checked_add(1)?
            .checked_next_power_of_two()?
            .max(4),
    )
}

/// Bytes of a table's data: `cap` entries, then the index (`None` past
/// [`MAX_TABLE_CAP`]).
pub(crate) fn table_data_bytes(cap: u64) -> Option<u64> {
    cap.checked_mul(ENTRY_BYTES)?
        .checked_add(index_cap(cap)?.checked_mul(4)?)
}

/// Bytes of the data of a container of `kind` with room for `cap` elements or entries.
pub(crate) fn data_bytes(kind: Kind, elem: Option<ElemType>, cap: u64) -> Option<u64> {
    match kind {
        Kind::Tab | Kind::OTab => table_data_bytes(cap),
        Kind::Arr | Kind::Tup => cap.checked_mul(CELL_BYTES),
        Kind::Array => cap.checked_mul(elem_size(elem?)),
        _ => None,
    }
}

/// The tag of each byte code: a table, since every cell read decodes one.
static TAGS: [Option<Tag>; 256] = {
    let mut t = [None; 256];
    let mut i = 0;
    while i < Tag::ALL.len() {
        t[Tag::ALL[i] as usize] = Some(Tag::ALL[i]);
        i += 1;
    }
    t
};

/// A short string held in a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Short {
    pub(crate) len: u8,
    pub(crate) bytes: [u8; SHORT_MAX],
}

impl Short {
    pub(crate) fn new(s: &[u8]) -> Option<Short> {
        (s.len() <= SHORT_MAX).then(|| {
            let mut bytes = [0; SHORT_MAX];
            bytes[..s.len()].copy_from_slice(s);
            Short {
                len: s.len() as u8,
                bytes,
            }
        })
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len).min(SHORT_MAX)]
    }

    /// The string, if its bytes are UTF-8. ASCII (the common key) is told by one mask
    /// over the bytes, without the general check.
    #[inline]
    pub(crate) fn as_str(&self) -> Option<&str> {
        let mut w = [0u8; 16];
        w[..SHORT_MAX].copy_from_slice(&self.bytes);
        let b = self.as_bytes();
        if u128::from_le_bytes(w) & 0x8080_8080_8080_8080_8080_8080_8080_8080 == 0 {
            // SAFETY: the mask above sees all 14 bytes, so every byte of the string is
            // below 0x80, and ASCII bytes are UTF-8.
            return Some(unsafe { std::str::from_utf8_unchecked(b) });
        }
        std::str::from_utf8(b).ok()
    }
}

/// A decoded cell: a scalar (its tag and payload word), a short string, or a link to an
/// object of the region.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Cell {
    /// A dead table entry's key (tag byte 0).
    Empty,
    /// `None`, `Bool`, the fixed-size integers, `F32`, `F64`, `C32`: the payload word.
    Scalar(Tag, u64),
    /// A string of at most [`SHORT_MAX`] bytes.
    Short(Short),
    /// A value held in an object: its tag and the object's offset.
    Obj(Tag, Offset),
    /// A locked value (what a handle to one sees; never stored in a cell): its object.
    Locked(Offset),
}

/// Whether a cell's first word holds an inline string: its other bytes are the string's,
/// where every other kind of cell has only the tag byte.
pub(crate) fn is_short(w0: u64) -> bool {
    w0 as u8 == Tag::Str as u8 && (w0 >> 8) & SHORT_FLAG != 0
}

/// Whether a cell's first word may be a link to an object: its tag is one an object holds
/// and it is not an inline string. Cheaper than [`Cell::decode`], for walks that only
/// follow links.
pub(crate) fn may_link(w0: u64) -> bool {
    TAGS[usize::from(w0 as u8)].is_some_and(|t| Kind::of_tag(t).is_some()) && !is_short(w0)
}

impl Cell {
    /// The tag of the value (`None` for an empty cell).
    pub(crate) fn tag(&self) -> Option<Tag> {
        match self {
            Cell::Empty | Cell::Locked(_) => None,
            Cell::Scalar(t, _) | Cell::Obj(t, _) => Some(*t),
            Cell::Short(_) => Some(Tag::Str),
        }
    }

    /// The two words that store the cell.
    pub(crate) fn encode(&self) -> [u64; 2] {
        match *self {
            // A locked value is never put in a cell (`child_of` refuses it): were it
            // written, it would read back as a dead entry, never as a link.
            Cell::Empty | Cell::Locked(_) => [0, 0],
            Cell::Scalar(t, bits) => [t as u64, bits],
            Cell::Obj(t, off) => [t as u64, off.get()],
            Cell::Short(s) => {
                let mut b = [0u8; 16];
                b[0] = Tag::Str as u8;
                b[1] = SHORT_FLAG as u8 | s.len;
                b[2..].copy_from_slice(&s.bytes);
                let mut w0 = [0u8; 8];
                let mut w1 = [0u8; 8];
                w0.copy_from_slice(&b[..8]);
                w1.copy_from_slice(&b[8..]);
                [u64::from_le_bytes(w0), u64::from_le_bytes(w1)]
            }
        }
    }

    /// Decodes the two words of a cell, checking every bit the format fixes. `at` is the
    /// cell's offset, for the error.
    pub(crate) fn decode(w: [u64; 2], at: u64) -> Result<Cell, ValError> {
        let [w0, w1] = w;
        let code = w0 as u8;
        if code == 0 {
            return if w0 == 0 && w1 == 0 {
                Ok(Cell::Empty)
            } else {
                Err(corrupt(at, "an empty cell holds bits"))
            };
        }
        let tag = TAGS[code as usize].ok_or_else(|| corrupt(at, format!("tag byte {code:#x}")))?;
        if tag == Tag::Str && (w0 >> 8) as u8 & SHORT_FLAG as u8 != 0 {
            let len = ((w0 >> 8) as u8 & !(SHORT_FLAG as u8)) as usize;
            if len > SHORT_MAX {
                return Err(corrupt(at, format!("inline string of {len} bytes")));
            }
            // The string's bytes are bytes 2.. of the two words, little-endian: as one
            // 112-bit number, whose bits past the string's end must be clear.
            let payload = u128::from(w0 >> 16) | (u128::from(w1) << 48);
            if payload
                .checked_shr((len as u32).saturating_mul(8))
                .is_some_and(|rest| rest != 0)
            {
                return Err(corrupt(at, "bytes past an inline string's end"));
            }
            let mut bytes = [0u8; SHORT_MAX];
            bytes.copy_from_slice(&payload.to_le_bytes()[..SHORT_MAX]);
            return Ok(Cell::Short(Short {
                len: len as u8,
                bytes,
            }));
        }
        if w0 >> 8 != 0 {
            return Err(corrupt(
                at,
                format!("cell word {w0:#x} has bits past its tag"),
            ));
        }
        let width = match tag {
            Tag::None => 0,
            Tag::Bool => 1,
            Tag::I8 | Tag::U8 => 8,
            Tag::I16 | Tag::U16 => 16,
            Tag::I32 | Tag::U32 | Tag::F32 => 32,
            Tag::I64 | Tag::U64 | Tag::F64 | Tag::C32 => 64,
            _ => {
                if w1 == 0 || w1 % 16 != 0 {
                    return Err(corrupt(at, format!("{tag} cell links to {w1:#x}")));
                }
                return Ok(Cell::Obj(tag, Offset::new(w1)));
            }
        };
        if width < 64 && w1 >> width != 0 {
            return Err(corrupt(at, format!("{tag} payload {w1:#x} is too wide")));
        }
        Ok(Cell::Scalar(tag, w1))
    }

    /// The cell of a scalar value, if `v` is held inline (numbers but big integers and
    /// `C64`; strings of at most [`SHORT_MAX`] bytes).
    pub(crate) fn inline(v: &Val) -> Option<Cell> {
        let bits = match v {
            Val::None => 0,
            Val::Bool(b) => u64::from(*b),
            Val::I8(x) => u64::from(*x as u8),
            Val::U8(x) => u64::from(*x),
            Val::I16(x) => u64::from(*x as u16),
            Val::U16(x) => u64::from(*x),
            Val::I32(x) => u64::from(*x as u32),
            Val::U32(x) => u64::from(*x),
            Val::I64(x) => *x as u64,
            Val::U64(x) => *x,
            Val::F32(x) => u64::from(x.to_bits()),
            Val::F64(x) => x.to_bits(),
            Val::C32(c) => u64::from(c.re.to_bits()) | u64::from(c.im.to_bits()) << 32,
            Val::Str(s) => return Short::new(s.as_bytes()).map(Cell::Short),
            _ => return None,
        };
        Some(Cell::Scalar(v.tag(), bits))
    }
}

/// The value of a scalar cell's tag and payload (as checked by [`Cell::decode`]).
pub(crate) fn scalar_val(tag: Tag, bits: u64) -> Val {
    match tag {
        Tag::Bool => Val::Bool(bits != 0),
        Tag::I8 => Val::I8(bits as u8 as i8),
        Tag::U8 => Val::U8(bits as u8),
        Tag::I16 => Val::I16(bits as u16 as i16),
        Tag::U16 => Val::U16(bits as u16),
        Tag::I32 => Val::I32(bits as u32 as i32),
        Tag::U32 => Val::U32(bits as u32),
        Tag::I64 => Val::I64(bits as i64),
        Tag::U64 => Val::U64(bits),
        Tag::F32 => Val::F32(f32::from_bits(bits as u32)),
        Tag::F64 => Val::F64(f64::from_bits(bits)),
        Tag::C32 => Val::C32(Complex32::new(
            f32::from_bits(bits as u32),
            f32::from_bits((bits >> 32) as u32),
        )),
        _ => Val::None,
    }
}

/// Loads a cell's two words.
pub(crate) fn load_cell(w: &[AtomicU64]) -> [u64; 2] {
    [w[0].load(Relaxed), w[1].load(Relaxed)]
}

/// Stores a cell's two words.
pub(crate) fn store_cell(w: &[AtomicU64], c: &Cell) {
    let [a, b] = c.encode();
    w[0].store(a, Relaxed);
    w[1].store(b, Relaxed);
}

/// `off + n`, as an offset, or a corruption error naming `off`.
pub(crate) fn add(off: Offset, n: u64) -> Result<Offset, ValError> {
    off.checked_add(n)
        .ok_or_else(|| corrupt(off.get(), "offset overflows"))
}

/// The offset of item `i` of `size` bytes in an array starting at `off`: `off + i * size`,
/// or a corruption error naming `off`.
pub(crate) fn nth(off: Offset, i: u64, size: u64) -> Result<Offset, ValError> {
    add(off, mul(i, size, off.get())?)
}

/// `a * b` for a size read from shared memory, or a corruption error naming `at`.
pub(crate) fn mul(a: u64, b: u64, at: u64) -> Result<u64, ValError> {
    a.checked_mul(b)
        .ok_or_else(|| corrupt(at, format!("{a} x {b} bytes overflow")))
}

/// A count read from shared memory as a `usize`, or a corruption error naming `at`
/// (lossless on 64-bit targets; a count past the address space is corrupt).
pub(crate) fn to_usize(n: u64, at: u64) -> Result<usize, ValError> {
    usize::try_from(n).map_err(|_| corrupt(at, format!("count {n} past the address space")))
}

/// An offset for an error message only: `base + n`, saturating.
pub(crate) fn at(base: u64, n: u64) -> u64 {
    base.saturating_add(n)
}

/// What is wrong with the object header word `first` at `off` (`None`: the offset
/// itself), which [`Obj::open`] refused.
#[cold]
#[inline(never)]
fn bad_header(off: Offset, first: Option<u64>, want: Option<Kind>) -> ValError {
    let Some(first) = first else {
        return corrupt(off.get(), "not an object offset");
    };
    let code = (first >> 32) as u8;
    let what = if first as u32 != OBJ_MAGIC {
        format!("header word {first:#x}: no object")
    } else if let Some(kind) = Kind::from_u8(code) {
        let elem = (first >> 40) as u8;
        match want {
            _ if first >> 48 != 0 => format!("header word {first:#x}"),
            Some(w) if w != kind => format!("a {w:?} was linked, the object is a {kind:?}"),
            _ => format!("element type {elem:#x}"),
        }
    } else {
        format!("kind {code:#x}")
    };
    corrupt(off.get(), what)
}

/// The `n` words at `off`, bounds-checked by the region.
#[inline]
pub(crate) fn words(region: &Region, off: Offset, n: u64) -> Result<&[AtomicU64], ValError> {
    region
        .at_slice::<AtomicU64>(off, n)
        .map_err(|e| out_of_reach(off, e))
}

/// The `n` `u32` index slots at `off`, bounds-checked by the region.
#[inline]
pub(crate) fn slots(region: &Region, off: Offset, n: u64) -> Result<&[AtomicU32], ValError> {
    region
        .at_slice::<AtomicU32>(off, n)
        .map_err(|e| out_of_reach(off, e))
}

#[cold]
#[inline(never)]
fn out_of_reach(off: Offset, e: crate::region::RegionError) -> ValError {
    corrupt(off.get(), e.to_string())
}

/// An object's header, checked: its magic and kind, read through the region's bounds
/// check. Holds the header words; the payload is reached through the accessors of the
/// modules that know each kind.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Obj<'a> {
    pub(crate) region: &'a Region,
    pub(crate) off: Offset,
    pub(crate) kind: Kind,
    /// The element type byte (arrays; 0 otherwise).
    pub(crate) elem: u8,
    pub(crate) words: &'a [AtomicU64],
}

impl<'a> Obj<'a> {
    /// Opens the object at `off`, checking its magic and, if given, that it holds `want`.
    #[inline]
    pub(crate) fn open(
        region: &'a Region,
        off: Offset,
        want: Option<Kind>,
    ) -> Result<Obj<'a>, ValError> {
        if off.is_null() || off.get() % 16 != 0 {
            return Err(bad_header(off, None, want));
        }
        let first = words(region, off, 1)?[0].load(Relaxed);
        let elem = (first >> 40) as u8;
        let kind = match Kind::from_u8((first >> 32) as u8) {
            Some(kind)
                if first as u32 == OBJ_MAGIC
                    && first >> 48 == 0
                    && want.is_none_or(|w| w == kind)
                    && if kind == Kind::Array {
                        ElemType::from_u8(elem).is_some()
                    } else {
                        elem == 0
                    } =>
            {
                kind
            }
            _ => return Err(bad_header(off, Some(first), want)),
        };
        let words = words(region, off, kind.header_words() as u64)?;
        Ok(Obj {
            region,
            off,
            kind,
            elem,
            words,
        })
    }

    /// Opens the object a cell links to, which must hold the cell's tag.
    pub(crate) fn open_linked(
        region: &'a Region,
        tag: Tag,
        off: Offset,
    ) -> Result<Obj<'a>, ValError> {
        let kind = Kind::of_tag(tag)
            .ok_or_else(|| corrupt(off.get(), format!("a {tag} is never an object")))?;
        Obj::open(region, off, Some(kind))
    }

    pub(crate) fn load(&self, w: usize) -> u64 {
        self.words[w].load(Relaxed)
    }

    pub(crate) fn store(&self, w: usize, v: u64) {
        self.words[w].store(v, Relaxed)
    }

    pub(crate) fn rc(&self) -> &'a AtomicU64 {
        &self.words[W_RC]
    }

    pub(crate) fn elem_type(&self) -> Option<ElemType> {
        ElemType::from_u8(self.elem)
    }

    /// Offset just past the header, where inline data starts.
    pub(crate) fn inline_data(&self) -> Result<Offset, ValError> {
        add(self.off, self.kind.header_bytes())
    }

    /// The container's data offset, its length and capacity, checked against each other
    /// and against the data block's size, read through `pool`'s unlocked block lookup.
    pub(crate) fn container(&self, pool: &Pool) -> Result<Container, ValError> {
        let (len, cap, data, used) = (
            self.load(W_LEN),
            self.load(W_CAP),
            Offset::new(self.load(W_DATA)),
            self.load(W_USED),
        );
        let at = self.off.get();
        let fill = if self.kind.is_table() { used } else { len };
        if self.kind.is_table() && len > used {
            return Err(corrupt(at, format!("{len} live entries of {used}")));
        }
        if !self.kind.is_table() && used != 0 {
            return Err(corrupt(
                at,
                format!("used word {used} in a {:?}", self.kind),
            ));
        }
        if fill > cap || (self.kind.is_table() && cap > MAX_TABLE_CAP) {
            return Err(corrupt(at, format!("{fill} elements, capacity {cap}")));
        }
        let bytes = data_bytes(self.kind, self.elem_type(), cap)
            .ok_or_else(|| corrupt(at, format!("capacity {cap} overflows")))?;
        let inline = data == self.inline_data()?;
        let block = if inline { self.off } else { data };
        let need = if inline {
            bytes.checked_add(self.kind.header_bytes())
        } else {
            Some(bytes)
        };
        let usable = pool
            .usable_size_unlocked(block)
            .map_err(|e| corrupt(at, format!("data block {data}: {e}")))?;
        if need.is_none_or(|n| n > usable) {
            return Err(corrupt(
                at,
                format!("capacity {cap} needs {bytes} bytes at {data}, the block holds {usable}"),
            ));
        }
        Ok(Container {
            len,
            cap,
            used,
            data,
            inline,
        })
    }
}

/// A container's checked geometry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Container {
    pub(crate) len: u64,
    pub(crate) cap: u64,
    /// Entries written to a table, dead ones included (0 for other kinds).
    pub(crate) used: u64,
    pub(crate) data: Offset,
    /// Whether the data follows the header in the object's own block.
    pub(crate) inline: bool,
}

/// The cell of a boxed scalar, checked: a scalar or a short string, never a link.
pub(crate) fn boxed_cell(obj: &Obj<'_>) -> Result<Cell, ValError> {
    let cell = Cell::decode(load_cell(&obj.words[W_LEN..W_LEN + 2]), obj.off.get())?;
    match cell {
        Cell::Scalar(..) | Cell::Short(_) => Ok(cell),
        _ => Err(corrupt(obj.off.get(), "a box holds no scalar")),
    }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
