//! `shmval val`: reads Python-literal values and prints them as repr, pretty or JSON.
//!
//! One value per line by default (blank lines and lines starting with `#` are skipped), or
//! the whole input as one value with `--whole`. A line that cannot be read or printed is
//! reported on standard error with its line and column; the other lines are still printed
//! and the exit code is 1.
//!
//! JSON output maps `None` to `null`, tuples and typed arrays to arrays, an `OTab` to an
//! object in its order and a `Tab` to an object with sorted keys. Integers of any size print
//! with all their digits: JSON's grammar has no limit, though many readers round beyond
//! 2**53. JSON cannot hold non-string keys, complex numbers, `inf` or `nan`: those values are
//! errors.

use std::fmt::Write as _;
use std::io::{self, Read, Write};

use shmval::{Array, Val, ValError};

use crate::output::errln;

/// Options of `shmval val`.
#[derive(Debug, clap::Args)]
pub struct ValArgs {
    /// Read all of standard input as one value instead of one value per line.
    #[arg(long)]
    whole: bool,
    /// Print in the original's pretty layout (one entry per line, sorted keys).
    #[arg(long, conflicts_with = "json")]
    pretty: bool,
    /// Print as JSON (non-string keys, complex numbers, inf and nan are errors).
    #[arg(long)]
    json: bool,
}

/// Runs the command and returns the process exit code.
pub fn run(args: &ValArgs) -> i32 {
    let mut input = Vec::new();
    if let Err(e) = io::stdin().read_to_end(&mut input) {
        errln!("shmval val: cannot read standard input: {e}");
        return 1;
    }
    let text = match String::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            errln!("shmval val: standard input is not UTF-8: {e}");
            return 1;
        }
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut failed = false;
    let mut emit = |line: usize, src: &str, line_offset: usize| -> io::Result<()> {
        match Val::parse(src)
            .map_err(|e| shift(e, line_offset))
            .and_then(|v| {
                format(&v, args).map_err(|msg| format!("line {line}: cannot print as JSON: {msg}"))
            }) {
            Ok(s) => writeln!(out, "{s}"),
            Err(msg) => {
                failed = true;
                out.flush()?;
                errln!("{msg}");
                Ok(())
            }
        }
    };
    let result = if args.whole {
        emit(1, &text, 0)
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .try_for_each(|(i, l)| emit(i + 1, l, i))
    };
    if let Err(e) = result.and_then(|()| out.flush()) {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return crate::output::EXIT_CLOSED;
        }
        errln!("shmval val: cannot write: {e}");
        return 1;
    }
    i32::from(failed)
}

/// A parse error as a message, its line moved down by `offset` lines.
fn shift(e: ValError, offset: usize) -> String {
    match e {
        ValError::Parse {
            line,
            column,
            expected,
            found,
        } => format!(
            "line {}, column {column}: expected {expected}, found {found}",
            line + offset
        ),
        other => format!("line {}: {other}", offset + 1),
    }
}

fn format(v: &Val, args: &ValArgs) -> Result<String, String> {
    if args.json {
        let mut s = String::new();
        json(&mut s, v)?;
        Ok(s)
    } else if args.pretty {
        Ok(v.pretty().to_string())
    } else {
        Ok(v.to_string())
    }
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_float(out: &mut String, x: f64) -> Result<(), String> {
    if !x.is_finite() {
        return Err(format!("{} is not a JSON number", Val::F64(x)));
    }
    // Python's float repr is valid JSON for finite numbers (`1e+16`, `-0.0`, `2.5`).
    let _ = write!(out, "{}", Val::F64(x));
    Ok(())
}

fn json_seq<'a>(out: &mut String, items: impl Iterator<Item = &'a Val>) -> Result<(), String> {
    out.push('[');
    for (i, x) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        json(out, x)?;
    }
    out.push(']');
    Ok(())
}

fn json(out: &mut String, v: &Val) -> Result<(), String> {
    match v {
        Val::None => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::F32(x) => json_float(out, f64::from(*x))?,
        Val::F64(x) => json_float(out, *x)?,
        Val::C32(_) | Val::C64(_) => return Err(format!("complex {v} has no JSON form")),
        Val::Str(s) => json_str(out, s),
        Val::Arr(a) | Val::Tup(a) => json_seq(out, a.iter())?,
        Val::Array(a) => match a {
            Array::C32(_) | Array::C64(_) => {
                return Err("an array of complex numbers has no JSON form".to_owned())
            }
            _ => {
                let elems: Vec<Val> = a.iter().collect();
                json_seq(out, elems.iter())?;
            }
        },
        Val::Tab(_) | Val::OTab(_) => {
            let items = if let Val::OTab(t) = v {
                t.iter().collect()
            } else {
                v.sorted_items()
            };
            out.push('{');
            for (i, (k, x)) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match k {
                    Val::Str(s) => json_str(out, s),
                    other => return Err(format!("key {other} is not a string")),
                }
                out.push_str(": ");
                json(out, x)?;
            }
            out.push('}');
        }
        // Integers of every size: their digits.
        _ => {
            let _ = write!(out, "{v}");
        }
    }
    Ok(())
}
