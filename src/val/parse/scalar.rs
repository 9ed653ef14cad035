//! The parser's leaves: numbers, strings with their escapes, and typed arrays.

use std::str::FromStr;

use num_bigint::BigInt;
use num_complex::{Complex32, Complex64};

use super::Parser;
use crate::val::{Array, ElemType, Val, ValError};

/// A real number's text: sign and digits, underscores removed.
#[derive(Debug, Clone)]
pub(super) struct RealLit {
    text: String,
    /// Written without `.`, exponent, `inf` or `nan`.
    integral: bool,
}

/// A number literal, before its type is chosen.
#[derive(Debug, Clone)]
pub(super) enum NumLit {
    Real(RealLit),
    /// Real part (if written) and imaginary part.
    Complex(Option<RealLit>, RealLit),
}

/// An element of a typed array, with the byte offset it started at.
#[derive(Debug, Clone)]
enum ElemLit {
    Num(NumLit),
    Bool(bool),
}

impl Parser<'_> {
    /// After `array`: `([e1, e2, ...], 'code')`.
    pub(super) fn array(&mut self) -> Result<Val, ValError> {
        self.expect('(', "'('")?;
        self.expect('[', "'['")?;
        let mut elems = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(']') {
                self.pos += 1;
                break;
            }
            let at = self.pos;
            elems.push((at, self.array_elem()?));
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(']') => {}
                _ => return Err(self.err("',' or ']'")),
            }
        }
        self.expect(',', "',' and a typecode")?;
        self.skip_ws();
        let code_at = self.pos;
        let code = self.string()?;
        let mut chars = code.chars();
        let ty = match (chars.next(), chars.next()) {
            (Some(c), None) => ElemType::from_typecode(c),
            _ => None,
        }
        .ok_or_else(|| self.err_at(code_at, "a typecode such as 'd' or 'l'"))?;
        self.expect(')', "')'")?;
        let mut a = Array::new(ty);
        for (at, e) in elems {
            self.push_elem(&mut a, e).ok_or_else(|| {
                self.err_at(at, &format!("an element of type '{}'", ty.typecode()))
            })?;
        }
        Ok(Val::Array(a))
    }

    fn array_elem(&mut self) -> Result<ElemLit, ValError> {
        let start = self.pos;
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                self.skip_ws();
                let n = self.number()?;
                self.expect(')', "')'")?;
                Ok(ElemLit::Num(n))
            }
            Some(c) if c.is_ascii_alphabetic() => match self.word() {
                "True" => Ok(ElemLit::Bool(true)),
                "False" => Ok(ElemLit::Bool(false)),
                _ => {
                    self.pos = start;
                    self.number().map(ElemLit::Num)
                }
            },
            _ => self.number().map(ElemLit::Num),
        }
    }

    fn push_elem(&self, a: &mut Array, e: ElemLit) -> Option<()> {
        fn int<T: TryFrom<BigInt>>(e: &ElemLit) -> Option<T> {
            match e {
                ElemLit::Num(NumLit::Real(r)) if r.integral => {
                    T::try_from(r.text.parse::<BigInt>().ok()?).ok()
                }
                _ => None,
            }
        }
        fn real<T: FromStr>(e: &ElemLit) -> Option<T> {
            match e {
                ElemLit::Num(NumLit::Real(r)) => r.text.parse().ok(),
                _ => None,
            }
        }
        fn cplx<T: FromStr + Default>(e: &ElemLit) -> Option<(T, T)> {
            match e {
                ElemLit::Num(NumLit::Real(r)) => Some((r.text.parse().ok()?, T::default())),
                ElemLit::Num(NumLit::Complex(re, im)) => {
                    let re = match re {
                        Some(r) => r.text.parse().ok()?,
                        None => T::default(),
                    };
                    Some((re, im.text.parse().ok()?))
                }
                ElemLit::Bool(_) => None,
            }
        }
        match a {
            Array::I8(v) => v.push(int(&e)?),
            Array::U8(v) => v.push(int(&e)?),
            Array::I16(v) => v.push(int(&e)?),
            Array::U16(v) => v.push(int(&e)?),
            Array::I32(v) => v.push(int(&e)?),
            Array::U32(v) => v.push(int(&e)?),
            Array::I64(v) => v.push(int(&e)?),
            Array::U64(v) => v.push(int(&e)?),
            Array::F32(v) => v.push(real(&e)?),
            Array::F64(v) => v.push(real(&e)?),
            Array::C32(v) => {
                let (re, im) = cplx::<f32>(&e)?;
                v.push(Complex32::new(re, im));
            }
            Array::C64(v) => {
                let (re, im) = cplx::<f64>(&e)?;
                v.push(Complex64::new(re, im));
            }
            Array::Bool(v) => v.push(match e {
                ElemLit::Bool(b) => b,
                _ => match int::<u8>(&e)? {
                    0 => false,
                    1 => true,
                    _ => return None,
                },
            }),
        }
        Some(())
    }

    /// One real or imaginary literal with an optional sign: digits, `inf` or `nan`, then an
    /// optional `j` (imaginary) or `L` (the original's long suffix).
    fn real_lit(&mut self) -> Result<(RealLit, bool), ValError> {
        let start = self.pos;
        let mut text = String::new();
        if let Some(c @ ('+' | '-')) = self.peek() {
            self.pos += 1;
            if c == '-' {
                text.push('-');
            }
            self.skip_ws();
        }
        let mut integral = true;
        if self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            let at = self.pos;
            let w = self.word();
            let (word, j) = match w.strip_suffix(['j', 'J']) {
                Some(w) => (w, true),
                None => (w, false),
            };
            if word != "inf" && word != "nan" {
                return Err(self.err_at(at, "a number"));
            }
            text.push_str(word);
            return Ok((
                RealLit {
                    text,
                    integral: false,
                },
                j,
            ));
        }
        let mut digits = 0;
        let mut eat_digits = |p: &mut Self, text: &mut String| {
            while let Some(c) = p.peek() {
                if c.is_ascii_digit() {
                    text.push(c);
                    digits += 1;
                } else if c != '_' || !p.peek_at(1).is_some_and(|d| d.is_ascii_digit()) {
                    break;
                }
                p.pos += 1;
            }
        };
        eat_digits(self, &mut text);
        if self.peek() == Some('.') {
            self.pos += 1;
            text.push('.');
            integral = false;
            eat_digits(self, &mut text);
        }
        if digits == 0 {
            return Err(self.err_at(start, "a number"));
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let save = self.pos;
            let mut exp = String::from("e");
            self.pos += 1;
            if let Some(c @ ('+' | '-')) = self.peek() {
                exp.push(c);
                self.pos += 1;
            }
            let mut n = 0;
            while let Some(c) = self.peek().filter(char::is_ascii_digit) {
                exp.push(c);
                self.pos += 1;
                n += 1;
            }
            if n == 0 {
                self.pos = save;
                return Err(self.err_at(save, "an exponent such as e+10"));
            }
            text.push_str(&exp);
            integral = false;
        }
        match self.peek() {
            Some('j' | 'J') => {
                self.pos += 1;
                Ok((
                    RealLit {
                        text,
                        integral: false,
                    },
                    true,
                ))
            }
            Some('L' | 'l') if integral => {
                self.pos += 1;
                Ok((RealLit { text, integral }, false))
            }
            _ => Ok((RealLit { text, integral }, false)),
        }
    }

    /// A number: a real, an imaginary, or `real ± imaginary`.
    pub(super) fn number(&mut self) -> Result<NumLit, ValError> {
        let (re, j) = self.real_lit()?;
        if j {
            return Ok(NumLit::Complex(None, re));
        }
        let save = self.pos;
        self.skip_ws();
        if let Some('+' | '-') = self.peek() {
            let at = self.pos;
            let (im, j) = self.real_lit()?;
            if !j {
                return Err(self.err_at(at, "an imaginary number such as +2j"));
            }
            return Ok(NumLit::Complex(Some(re), im));
        }
        self.pos = save;
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(self.err("a separator after the number"));
        }
        Ok(NumLit::Real(re))
    }

    /// A quoted string, either quote, with Python's escapes.
    pub(super) fn string(&mut self) -> Result<String, ValError> {
        let quote = match self.peek() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(self.err("a quoted string")),
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => return Err(self.err(&format!("a closing {quote}"))),
                Some('\n') => return Err(self.err_at(at, &format!("a closing {quote}"))),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => self.escape(&mut out, at)?,
                Some(c) => out.push(c),
            }
        }
    }

    fn hex(&mut self, n: usize, at: usize) -> Result<char, ValError> {
        let end = self.pos + n;
        let digits = self
            .s
            .get(self.pos..end)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let code = digits.and_then(|d| u32::from_str_radix(d, 16).ok());
        match code.and_then(char::from_u32) {
            Some(c) => {
                self.pos = end;
                Ok(c)
            }
            None => Err(self.err_at(at, &format!("{n} hex digits naming a character"))),
        }
    }

    fn escape(&mut self, out: &mut String, at: usize) -> Result<(), ValError> {
        let Some(c) = self.bump() else {
            return Err(self.err("an escape sequence"));
        };
        let e = match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'v' => '\x0b',
            '\\' | '\'' | '"' => c,
            '\n' => return Ok(()),
            'x' => self.hex(2, at)?,
            'u' => self.hex(4, at)?,
            'U' => self.hex(8, at)?,
            '0'..='7' => {
                let mut v = c as u32 - '0' as u32;
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ '0'..='7') => {
                            v = v * 8 + (d as u32 - '0' as u32);
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                // At most 0o777, always a character.
                char::from_u32(v).unwrap_or('\0')
            }
            _ => return Err(self.err_at(at, "an escape such as \\n, \\x41 or \\u00e9")),
        };
        out.push(e);
        Ok(())
    }
}

fn real_val(r: &RealLit) -> Val {
    if r.integral {
        match r.text.parse::<i64>() {
            Ok(i) => Val::I64(i),
            // Digits with an optional minus: always a valid BigInt.
            Err(_) => r.text.parse::<BigInt>().map_or(Val::None, Val::BigInt),
        }
    } else {
        Val::F64(r.text.parse::<f64>().unwrap_or(f64::NAN))
    }
}

fn part(r: &RealLit) -> f64 {
    r.text.parse::<f64>().unwrap_or(f64::NAN)
}

pub(super) fn num_val(n: NumLit) -> Val {
    match n {
        NumLit::Real(r) => real_val(&r),
        NumLit::Complex(re, im) => {
            let re = re.as_ref().map_or(0.0, part);
            Val::C64(Complex64::new(re, part(&im)))
        }
    }
}
