//! The pretty form: one entry per line, as the original's `prettyPrint`.

use std::fmt::{self, Display, Formatter, Write};

use super::repr::write_scalar;
use super::Val;

/// A value laid out as the original's `prettyPrint`, made by [`Val::pretty`].
///
/// Each entry of a table, list or tuple on its own line, indented by `step` spaces per
/// level (4 by default); table keys sorted, written `key:value` with no space; a comma
/// after every entry but the last; an `OTab` as `o{ ... }` in insertion order; empty
/// containers as `{ }`, `o{ }`, `[ ]` and `( )`; big integers with an `L` suffix. Scalars,
/// keys and typed arrays print as in [`Display`]. A one-element tuple keeps its trailing
/// comma so it reads back as a tuple (the original printed `(1)`).
///
/// The parser reads this form back. Python does not (`L`, `o{`); `big_suffix(false)`
/// drops the `L`.
#[derive(Debug, Clone, Copy)]
pub struct Pretty<'a> {
    val: &'a Val,
    indent: usize,
    step: usize,
    big_suffix: bool,
}

impl Val {
    /// The value in the original's pretty layout; see [`Pretty`].
    pub fn pretty(&self) -> Pretty<'_> {
        Pretty {
            val: self,
            indent: 0,
            step: 4,
            big_suffix: true,
        }
    }
}

impl Pretty<'_> {
    /// Starts every line after the first `indent` spaces in (default 0).
    pub fn indent(self, indent: usize) -> Self {
        Pretty { indent, ..self }
    }

    /// Indents each nesting level by `step` spaces (default 4).
    pub fn step(self, step: usize) -> Self {
        Pretty { step, ..self }
    }

    /// Whether big integers carry the original's `L` suffix (default true).
    pub fn big_suffix(self, on: bool) -> Self {
        Pretty {
            big_suffix: on,
            ..self
        }
    }

    fn spaces(f: &mut Formatter<'_>, n: usize) -> fmt::Result {
        for _ in 0..n {
            f.write_char(' ')?;
        }
        Ok(())
    }

    fn write(&self, f: &mut Formatter<'_>, v: &Val, indent: usize) -> fmt::Result {
        let inner = indent + self.step;
        match v {
            Val::Tab(_) | Val::OTab(_) => {
                let items = if let Val::OTab(t) = v {
                    t.iter().collect()
                } else {
                    v.sorted_items()
                };
                let open = if matches!(v, Val::OTab(_)) { "o{" } else { "{" };
                if items.is_empty() {
                    return write!(f, "{open} }}");
                }
                writeln!(f, "{open}")?;
                for (i, (k, x)) in items.iter().enumerate() {
                    Self::spaces(f, inner)?;
                    write!(f, "{k}:")?;
                    self.write(f, x, inner)?;
                    if i + 1 < items.len() {
                        f.write_char(',')?;
                    }
                    f.write_char('\n')?;
                }
                Self::spaces(f, indent)?;
                f.write_char('}')
            }
            Val::Arr(a) | Val::Tup(a) => {
                let (open, close) = if matches!(v, Val::Arr(_)) {
                    ('[', ']')
                } else {
                    ('(', ')')
                };
                if a.is_empty() {
                    return write!(f, "{open} {close}");
                }
                writeln!(f, "{open}")?;
                for (i, x) in a.iter().enumerate() {
                    Self::spaces(f, inner)?;
                    self.write(f, x, inner)?;
                    if i + 1 < a.len() || (a.len() == 1 && close == ')') {
                        f.write_char(',')?;
                    }
                    f.write_char('\n')?;
                }
                Self::spaces(f, indent)?;
                f.write_char(close)
            }
            _ => write_scalar(f, v, self.big_suffix),
        }
    }
}

impl Display for Pretty<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.write(f, self.val, self.indent)
    }
}
