//! `Display`: the Python literal of a value, as Python 3's `repr` prints it.

use std::fmt::{self, Display, Formatter, Write};

use super::{Array, Val};

/// Writes a float as Python's `repr` does, from Rust's shortest round-trip digits.
///
/// `sci` is Rust's `{:e}` form of a finite number (`"-1.25e-5"`). Python prints the digits
/// in positional form when the decimal exponent is in `-4..16`, adding `.0` to integral
/// values when `dot0` is set (the `repr` of a float; the parts of a complex have none), and
/// otherwise in exponent form with a sign and at least two exponent digits (`1e+16`,
/// `1.5e-05`).
fn write_sci(out: &mut impl Write, sci: &str, dot0: bool) -> fmt::Result {
    let (mant, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    if neg {
        out.write_char('-')?;
    }
    let decpt = exp + 1;
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            out.write_str("0.")?;
            for _ in 0..-decpt {
                out.write_char('0')?;
            }
            out.write_str(&digits)?;
        } else {
            let d = decpt as usize;
            if d >= digits.len() {
                out.write_str(&digits)?;
                for _ in digits.len()..d {
                    out.write_char('0')?;
                }
                if dot0 {
                    out.write_str(".0")?;
                }
            } else {
                write!(out, "{}.{}", &digits[..d], &digits[d..])?;
            }
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.write_str(first)?;
        if !rest.is_empty() {
            write!(out, ".{rest}")?;
        }
        let sign = if exp < 0 { '-' } else { '+' };
        write!(out, "e{sign}{:02}", exp.unsigned_abs())?;
    }
    Ok(())
}

fn write_nonfinite(out: &mut impl Write, x: f64) -> fmt::Result {
    if x.is_nan() {
        out.write_str("nan")
    } else if x > 0.0 {
        out.write_str("inf")
    } else {
        out.write_str("-inf")
    }
}

/// Writes an `f64` as Python's `repr(float)`; `dot0` adds `.0` to integral values.
pub(crate) fn write_f64(out: &mut impl Write, x: f64, dot0: bool) -> fmt::Result {
    if x.is_finite() {
        write_sci(out, &format!("{x:e}"), dot0)
    } else {
        write_nonfinite(out, x)
    }
}

/// Writes an `f32` with the shortest digits that read back as the same `f32`, laid out as
/// Python would lay out a float with those digits.
pub(crate) fn write_f32(out: &mut impl Write, x: f32, dot0: bool) -> fmt::Result {
    if x.is_finite() {
        write_sci(out, &format!("{x:e}"), dot0)
    } else {
        write_nonfinite(out, f64::from(x))
    }
}

/// Writes a complex as Python's `repr(complex)`: `1.5j` when the real part is `+0.0`, else
/// `(re+imj)`, with the parts in float repr but no `.0`.
fn write_complex<T: Copy + Into<f64>>(
    out: &mut impl Write,
    re: T,
    im: T,
    part: fn(&mut String, T) -> fmt::Result,
) -> fmt::Result {
    let mut s = String::new();
    let (ref64, im64) = (re.into(), im.into());
    if ref64 == 0.0 && ref64.is_sign_positive() {
        part(&mut s, im)?;
        s.push('j');
    } else {
        s.push('(');
        part(&mut s, re)?;
        if !im64.is_sign_negative() || im64.is_nan() {
            s.push('+');
        }
        part(&mut s, im)?;
        s.push_str("j)");
    }
    out.write_str(&s)
}

fn part64(s: &mut String, x: f64) -> fmt::Result {
    write_f64(s, x, false)
}

fn part32(s: &mut String, x: f32) -> fmt::Result {
    write_f32(s, x, false)
}

/// Whether Python 3's `str.isprintable()` holds for `c`, for the characters this layer
/// knows: controls, separators other than the space, the common format characters,
/// private-use characters and noncharacters are not printable. Unassigned code points are
/// taken as printable (Python escapes those its Unicode version does not know).
pub(crate) fn is_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    !matches!(u,
        0x80..=0xa0
        | 0xad
        | 0x600..=0x605
        | 0x61c
        | 0x6dd
        | 0x70f
        | 0x890..=0x891
        | 0x8e2
        | 0x1680
        | 0x180e
        | 0x2000..=0x200f
        | 0x2028..=0x202f
        | 0x205f..=0x2064
        | 0x2066..=0x206f
        | 0x3000
        | 0xd800..=0xf8ff
        | 0xfdd0..=0xfdef
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0x110bd
        | 0x110cd
        | 0x13430..=0x1343f
        | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a
        | 0xe0001
        | 0xe0020..=0xe007f
        | 0xf0000..=0x10ffff
    ) && (u & 0xfffe) != 0xfffe
}

/// Writes a string as Python 3's `repr(str)`.
///
/// Single quotes, unless the string holds a `'` and no `"`; `\\`, `\n`, `\r`, `\t` and the
/// active quote escaped; other unprintable characters as `\xNN`, `\uNNNN` or `\UNNNNNNNN`;
/// everything else (non-ASCII included) as is.
pub(crate) fn write_str_repr(out: &mut impl Write, s: &str) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.write_char(quote)?;
    for c in s.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c == quote => write!(out, "\\{c}")?,
            c if is_printable(c) => out.write_char(c)?,
            c if (c as u32) < 0x100 => write!(out, "\\x{:02x}", c as u32)?,
            c if (c as u32) < 0x10000 => write!(out, "\\u{:04x}", c as u32)?,
            c => write!(out, "\\U{:08x}", c as u32)?,
        }
    }
    out.write_char(quote)
}

/// Writes the elements of a typed array as `array([e1,e2], 'code')`, the original's form.
pub(crate) fn write_array(out: &mut impl Write, a: &Array) -> fmt::Result {
    fn each<T, W: Write>(
        out: &mut W,
        v: &[T],
        f: impl Fn(&mut W, &T) -> fmt::Result,
    ) -> fmt::Result {
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                out.write_char(',')?;
            }
            f(out, x)?;
        }
        Ok(())
    }
    out.write_str("array([")?;
    match a {
        Array::I8(v) => each(out, v, |o, x| write!(o, "{x}")),
        Array::U8(v) => each(out, v, |o, x| write!(o, "{x}")),
        Array::I16(v) => each(out, v, |o, x| write!(o, "{x}")),
        Array::U16(v) => each(out, v, |o, x| write!(o, "{x}")),
        Array::I32(v) => each(out, v, |o, x| write!(o, "{x}")),
        Array::U32(v) => each(out, v, |o, x| write!(o, "{x}")),
        Array::I64(v) => each(out, v, |o, x| write!(o, "{x}")),
        Array::U64(v) => each(out, v, |o, x| write!(o, "{x}")),
        Array::F32(v) => each(out, v, |o, x| write_f32(o, *x, true)),
        Array::F64(v) => each(out, v, |o, x| write_f64(o, *x, true)),
        Array::C32(v) => each(out, v, |o, x| write_complex(o, x.re, x.im, part32)),
        Array::C64(v) => each(out, v, |o, x| write_complex(o, x.re, x.im, part64)),
        Array::Bool(v) => each(out, v, |o, x| {
            o.write_str(if *x { "True" } else { "False" })
        }),
    }?;
    write!(out, "], '{}')", a.elem_type().typecode())
}

/// Writes a scalar (anything but a container of values) in its literal form. Big integers
/// get an `L` when `big_suffix` is set.
pub(crate) fn write_scalar(out: &mut impl Write, v: &Val, big_suffix: bool) -> fmt::Result {
    let suffix = if big_suffix { "L" } else { "" };
    match v {
        Val::None => out.write_str("None"),
        Val::Bool(b) => out.write_str(if *b { "True" } else { "False" }),
        Val::I8(x) => write!(out, "{x}"),
        Val::U8(x) => write!(out, "{x}"),
        Val::I16(x) => write!(out, "{x}"),
        Val::U16(x) => write!(out, "{x}"),
        Val::I32(x) => write!(out, "{x}"),
        Val::U32(x) => write!(out, "{x}"),
        Val::I64(x) => write!(out, "{x}"),
        Val::U64(x) => write!(out, "{x}"),
        Val::BigInt(x) => write!(out, "{x}{suffix}"),
        Val::BigUint(x) => write!(out, "{x}{suffix}"),
        // The exact value of the f32, so the text reads back equal (see the module docs).
        Val::F32(x) => write_f64(out, f64::from(*x), true),
        Val::F64(x) => write_f64(out, *x, true),
        Val::C32(c) => write_complex(out, f64::from(c.re), f64::from(c.im), part64),
        Val::C64(c) => write_complex(out, c.re, c.im, part64),
        Val::Str(s) => write_str_repr(out, s),
        Val::Array(a) => write_array(out, a),
        Val::Tab(_) | Val::OTab(_) | Val::Arr(_) | Val::Tup(_) => write!(out, "{v}"),
    }
}

impl Display for Val {
    /// The Python literal: `{'a': 1, 'b': [1, 2.5, 'x']}`, `OrderedDict([('b', 1)])`,
    /// `(1,)`, `array([1.0,2.5], 'd')`. A `Tab` prints its entries sorted by key.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Val::Tab(_) => {
                f.write_char('{')?;
                for (i, (k, v)) in self.sorted_items().into_iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_char('}')
            }
            Val::OTab(t) => {
                if t.is_empty() {
                    return f.write_str("OrderedDict()");
                }
                f.write_str("OrderedDict([")?;
                for (i, (k, v)) in t.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "({k}, {v})")?;
                }
                f.write_str("])")
            }
            Val::Arr(a) => {
                f.write_char('[')?;
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_char(']')
            }
            Val::Tup(a) => {
                f.write_char('(')?;
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x}")?;
                }
                if a.len() == 1 {
                    f.write_char(',')?;
                }
                f.write_char(')')
            }
            _ => write_scalar(f, self, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> String {
        let mut s = String::new();
        write_f64(&mut s, x, true).unwrap();
        s
    }

    #[test]
    fn floats_like_python() {
        let cases = [
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e16, "1.5e+16"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (1e-7, "1e-07"),
            (123456789.125, "123456789.125"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (100.0, "100.0"),
            (1e20, "1e+20"),
        ];
        for (x, want) in cases {
            assert_eq!(f(x), want, "{x:e}");
        }
    }
}
