//! `Debug` of shared values: the Python literal, printed in place and bounded.
//!
//! A value in a pool may be huge, or small in the pool and huge once expanded (a container
//! holding one child many times), so `Debug` copies nothing: it walks the views and prints
//! at most [`ITEMS`] elements of each container, [`CHARS`] characters of each string and
//! [`DEPTH`] levels of nesting, and stops once about [`BUDGET`] bytes are written, each cut
//! marked `...`. A part that cannot be read prints as `<` and the error `>`. `Display` of a
//! [`ShmVal`] still prints the whole value, from a copy.
//!
//! The literal is Python's, as [`Val`](crate::Val)'s `Display` prints it, except that a
//! `Tab` shows its entries in insertion order (sorting them would read them all) and a big
//! integer past [`BIG_BYTES`] bytes only says how long it is.

use std::fmt::{self, Write};

use super::containers::{ShmSeq, ShmTab};
use super::handle::ShmVal;
use super::layout::{scalar_val, Cell, Obj};
use super::leaves::{ShmArray, ShmStr};
use super::plain::with_elem;
use super::to_val::leaf_to_val;
use super::views::{byte_payload, ShmRef};
use crate::val::repr::{write_array, write_scalar, write_str_repr};
use crate::val::{Elem, Tag, ValError};

/// Elements (or entries) of one container that are printed; the rest is `...`.
const ITEMS: usize = 32;
/// Characters of one string that are printed.
const CHARS: usize = 100;
/// Nesting levels that are printed; a container deeper down is `[...]`.
const DEPTH: usize = 8;
/// Bytes of output after which every further element is `...`. The output ends within a
/// few kilobytes of it: past it, only the element being printed and closing brackets
/// follow.
const BUDGET: usize = 2048;
/// Bytes of a big integer that are printed in decimal; a longer one is described.
const BIG_BYTES: usize = 64;

/// A writer that counts what it writes.
struct Printer<'w, W: Write> {
    out: &'w mut W,
    written: usize,
}

impl<W: Write> Write for Printer<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.written = self.written.saturating_add(s.len());
        self.out.write_str(s)
    }
}

impl<'w, W: Write> Printer<'w, W> {
    fn new(out: &'w mut W) -> Printer<'w, W> {
        Printer { out, written: 0 }
    }

    /// Whether element `i` of a container is past what is printed.
    fn cut(&self, i: usize) -> bool {
        i >= ITEMS || self.written >= BUDGET
    }

    fn error(&mut self, e: &ValError) -> fmt::Result {
        write!(self, "<{e}>")
    }

    /// Any value, `depth` containers down.
    fn value(&mut self, r: ShmRef<'_>, depth: usize) -> fmt::Result {
        let shown = match r.cell {
            Cell::Empty => return self.write_str("<empty cell>"),
            Cell::Locked(_) => return self.write_str("<locked value>"),
            Cell::Scalar(tag, bits) => return write_scalar(self, &scalar_val(tag, bits), false),
            Cell::Short(_) => r.as_str().map(|s| self.string(&s)),
            Cell::Obj(tag, off) => match tag {
                Tag::Str => r.as_str().map(|s| self.string(&s)),
                Tag::Tab | Tag::OTab => r.as_tab().map(|t| self.table(t, depth)),
                Tag::Arr | Tag::Tup => r.as_seq().map(|s| self.seq(s, depth)),
                Tag::Array => r.as_array().map(|a| self.array(a)),
                Tag::BigInt | Tag::BigUint => {
                    let len = Obj::open_linked(r.pool.region(), tag, off)
                        .and_then(|obj| Ok(byte_payload(r.pool, &obj)?.len()));
                    match len {
                        Ok(n) if n > BIG_BYTES => return write!(self, "<{tag} of {n} bytes>"),
                        Ok(_) => {
                            leaf_to_val(r.pool, &r.cell).map(|v| write_scalar(self, &v, false))
                        }
                        Err(e) => Err(e),
                    }
                }
                _ => leaf_to_val(r.pool, &r.cell).map(|v| write_scalar(self, &v, false)),
            },
        };
        shown.unwrap_or_else(|e| self.error(&e))
    }

    /// A string's literal, its first [`CHARS`] characters.
    fn string(&mut self, s: &str) -> fmt::Result {
        let Some((end, _)) = s.char_indices().nth(CHARS) else {
            return write_str_repr(self, s);
        };
        let mut lit = String::new();
        write_str_repr(&mut lit, &s[..end])?;
        let quote = lit.pop().unwrap_or('\'');
        self.write_str(&lit)?;
        self.write_str("...")?;
        self.write_char(quote)
    }

    fn seq(&mut self, s: ShmSeq<'_>, depth: usize) -> fmt::Result {
        let (open, close) = if s.is_tuple() { ('(', ')') } else { ('[', ']') };
        self.write_char(open)?;
        if depth >= DEPTH && !s.is_empty() {
            self.write_str("...")?;
            return self.write_char(close);
        }
        for (i, e) in s.iter().enumerate() {
            if i > 0 {
                self.write_str(", ")?;
            }
            if self.cut(i) {
                self.write_str("...")?;
                break;
            }
            match e {
                Ok(r) => self.value(r, depth.saturating_add(1))?,
                Err(e) => {
                    self.error(&e)?;
                    break;
                }
            }
        }
        if s.is_tuple() && s.len() == 1 {
            self.write_char(',')?;
        }
        self.write_char(close)
    }

    fn table(&mut self, t: ShmTab<'_>, depth: usize) -> fmt::Result {
        let ordered = t.is_ordered();
        let (open, close) = match (ordered, t.is_empty()) {
            (true, true) => return self.write_str("OrderedDict()"),
            (true, false) => ("OrderedDict([", "])"),
            (false, _) => ("{", "}"),
        };
        self.write_str(open)?;
        if depth >= DEPTH && !t.is_empty() {
            self.write_str("...")?;
            return self.write_str(close);
        }
        let inner = depth.saturating_add(1);
        for (i, e) in t.iter().enumerate() {
            if i > 0 {
                self.write_str(", ")?;
            }
            if self.cut(i) {
                self.write_str("...")?;
                break;
            }
            let (k, v) = match e {
                Ok(kv) => kv,
                Err(e) => {
                    self.error(&e)?;
                    break;
                }
            };
            if ordered {
                self.write_char('(')?;
            }
            self.value(k, inner)?;
            self.write_str(if ordered { ", " } else { ": " })?;
            self.value(v, inner)?;
            if ordered {
                self.write_char(')')?;
            }
        }
        self.write_str(close)
    }

    /// An array's literal, `array([1.0,2.5], 'd')`, its first [`ITEMS`] elements.
    fn array(&mut self, a: ShmArray<'_>) -> fmt::Result {
        let head = with_elem!(a.elem_type(), E => a
            .as_slice::<E>()
            .map(|xs| (E::into_array(xs[..xs.len().min(ITEMS)].to_vec()), xs.len() > ITEMS)));
        let (head, more) = match head {
            Ok(h) => h,
            Err(e) => return self.error(&e),
        };
        let mut lit = String::new();
        write_array(&mut lit, &head)?;
        if more {
            if let Some(end) = lit.rfind("], ") {
                lit.insert_str(end, ",...");
            }
        }
        self.write_str(&lit)
    }
}

/// Writes `name(` and the bounded literal of `r`, then `)`.
fn named(f: &mut fmt::Formatter<'_>, name: &str, r: ShmRef<'_>) -> fmt::Result {
    write!(f, "{name}(")?;
    Printer::new(f).value(r, 0)?;
    f.write_char(')')
}

/// The bounded literal of a value, as a `Debug` field.
struct Literal<'a>(ShmRef<'a>);

impl fmt::Debug for Literal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Printer::new(f).value(self.0, 0)
    }
}

impl fmt::Debug for ShmVal {
    /// `ShmVal(` and the value's Python literal, bounded (see the module docs of
    /// [`shared`](super)). The alternate form `{:#?}` also shows where the value lives: its
    /// offset, tag, reference count and region.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return named(f, "ShmVal", self.view());
        }
        f.debug_struct("ShmVal")
            .field("value", &Literal(self.view()))
            .field("offset", &self.offset())
            .field("tag", &self.tag())
            .field("refs", &self.ref_count())
            .field("region", &self.pool().region().id())
            .finish()
    }
}

impl fmt::Debug for ShmRef<'_> {
    /// `ShmRef(` and the value's Python literal, bounded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        named(f, "ShmRef", *self)
    }
}

impl fmt::Debug for ShmTab<'_> {
    /// `ShmTab(` and the table's Python literal, bounded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        named(f, "ShmTab", self.value())
    }
}

impl fmt::Debug for ShmSeq<'_> {
    /// `ShmSeq(` and the sequence's Python literal, bounded.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        named(f, "ShmSeq", self.value())
    }
}

impl fmt::Debug for ShmArray<'_> {
    /// `ShmArray(` and the array's literal, its first elements.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShmArray(")?;
        Printer::new(f).array(*self)?;
        f.write_char(')')
    }
}

impl fmt::Debug for ShmStr<'_> {
    /// `ShmStr(` and the string's Python literal, its first characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ShmStr(")?;
        Printer::new(f).string(self.as_str())?;
        f.write_char(')')
    }
}
