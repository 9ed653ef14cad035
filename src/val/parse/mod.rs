//! The parser: Python literal text to [`Val`].
//!
//! It reads everything [`Display`](std::fmt::Display) and [`Val::pretty`] print, and
//! everything Python 3's `repr` prints for `None`, bools, ints, floats, complex numbers,
//! strings, dicts, lists and tuples, plus:
//!
//! - `inf`, `-inf` and `nan` (Python's repr of those floats, which `ast.literal_eval`
//!   cannot read), also as complex parts (`(1+infj)`);
//! - `OrderedDict()`, `OrderedDict([(k, v), ...])`, `OrderedDict({k: v, ...})` (Python 3.12's
//!   repr) and the original's `o{k: v, ...}`;
//! - `array([e1, e2], 'code')` with the codes of [`ElemType::typecode`](super::ElemType::typecode)
//!   and the original's;
//! - the original's `L` suffix on integers (`100L`);
//! - comments from `#` to the end of the line, and trailing commas.
//!
//! Integers become `I64` when they fit, else `BigInt`; floats `F64`; complex numbers
//! `C64`. As in Python, `(x)` is `x`, not a tuple: a one-element tuple needs its comma.
//!
//! # Depth
//!
//! A value nesting more than [`MAX_DEPTH`] containers is refused, so that every value the
//! parser returns can be printed, compared, shared and copied back, which recurse (or
//! stop) at that depth. Depth counts the containers of the value, whatever their syntax:
//! an `OrderedDict([(k, v)])` is one level, as `{k: v}` is (the list and the pair tuples
//! are its syntax, not containers of the value), and the parentheses of a complex number
//! `(1+2j)` are none. So whatever [`Display`](std::fmt::Display) or [`Val::pretty`] prints
//! for a value the parser returned reads back, at any depth. The parser itself keeps the
//! containers it is reading on a heap stack, not the native one: any input takes constant
//! native stack.

use std::str::FromStr;

use super::{OTab, Tab, Val, ValError};
use scalar::num_val;

mod scalar;

/// The deepest nesting of containers the parser accepts, counted in containers of the
/// value whatever their syntax: `OrderedDict([(k, v)])` is one level, as `{k: v}` is, and
/// the parentheses of a complex number `(1+2j)` are none. So what `Display` and
/// [`Val::pretty`] print for a parsed value parses back at any depth; and what the parser
/// returns can be shared, copied back and compared
/// ([`MAX_NESTING`](crate::val::shared::MAX_NESTING) is the same).
pub const MAX_DEPTH: usize = 256;

impl FromStr for Val {
    type Err = ValError;

    /// Parses one value; whitespace and comments may surround it.
    fn from_str(s: &str) -> Result<Val, ValError> {
        Val::parse(s)
    }
}

impl Val {
    /// Parses one value from Python literal text; whitespace and comments may surround it.
    ///
    /// Errors give the line and column (from 1, in characters) of the first character that
    /// could not be read, what was expected there and what was found.
    pub fn parse(text: &str) -> Result<Val, ValError> {
        let mut p = Parser { s: text, pos: 0 };
        let v = p.value()?;
        p.skip_ws();
        if p.pos < p.s.len() {
            return Err(p.err("end of input"));
        }
        Ok(v)
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

/// A container being read: what it holds so far.
enum Frame {
    /// `[`: a list.
    List(Vec<Val>),
    /// `(`: a tuple, or a parenthesized value if it ends after one item and no comma.
    Paren { items: Vec<Val>, comma: bool },
    /// `{`, `o{` or `OrderedDict({`: entries up to `}` (and then `)` when `paren`), with
    /// the key whose value is being read.
    Dict {
        tab: Table,
        key: Option<Val>,
        paren: bool,
    },
    /// `OrderedDict([`: `(key, value)` pairs up to `]`, then `)`, with the pair being read.
    Pairs { tab: OTab, pair: Option<Pair> },
}

enum Table {
    Tab(Tab),
    OTab(OTab),
}

/// A `(key, value)` or `[key, value]` pair of `OrderedDict([...])` being read.
struct Pair {
    /// Where it starts, for errors.
    at: usize,
    /// `)` or `]`.
    close: char,
    key: Option<Val>,
}

impl Frame {
    /// The character that ends the container.
    fn close(&self) -> char {
        match self {
            Frame::List(_) | Frame::Pairs { .. } => ']',
            Frame::Paren { .. } => ')',
            Frame::Dict { .. } => '}',
        }
    }

    /// Whether the container may end where its next item would start: after its opening
    /// or a comma, but not between a key and its value or inside a pair.
    fn may_close(&self) -> bool {
        match self {
            Frame::List(_) | Frame::Paren { .. } => true,
            Frame::Dict { key, .. } => key.is_none(),
            Frame::Pairs { pair, .. } => pair.is_none(),
        }
    }
}

/// What follows a value inside a container.
enum Next {
    /// Another item (a separator was read).
    Item,
    /// The container's end (its closing character was read).
    Close,
}

fn describe(c: Option<char>) -> String {
    match c {
        None => "end of input".to_owned(),
        Some('\n') => "end of line".to_owned(),
        Some(c) => {
            let mut s = String::new();
            // Writing to a String cannot fail.
            let _ = super::repr::write_str_repr(&mut s, &c.to_string());
            s
        }
    }
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.s[self.pos..].chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn err_at(&self, pos: usize, expected: &str) -> ValError {
        let before = &self.s[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        ValError::Parse {
            line,
            column,
            expected: expected.to_owned(),
            found: describe(self.s[pos..].chars().next()),
        }
    }

    fn err(&self, expected: &str) -> ValError {
        self.err_at(self.pos, expected)
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' | '\r' | '\x0c' => {
                    self.pos += 1;
                }
                '#' => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), ValError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                self.pos += 1;
            } else {
                break;
            }
        }
        &self.s[start..self.pos]
    }

    /// Reads one value. Containers are kept on a stack of [`Frame`]s, on the heap: each
    /// round reads the start of a value (opening a container, or reading a whole scalar),
    /// then hands each complete value to the container it is in, closing those that end.
    fn value(&mut self) -> Result<Val, ValError> {
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            let Some(mut v) = self.start(&mut stack)? else {
                continue;
            };
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(v);
                };
                match self.put(top, v)? {
                    Next::Item => break,
                    Next::Close => v = self.finish(&mut stack)?,
                }
            }
        }
    }

    /// Starts a container, if the stack has room for it.
    fn open(&mut self, stack: &mut Vec<Frame>, frame: Frame) -> Result<(), ValError> {
        if stack.len() >= MAX_DEPTH {
            return Err(self.err("nesting no deeper than 256 containers"));
        }
        stack.push(frame);
        Ok(())
    }

    /// Reads the start of the next value: a whole scalar (or an empty container, or the
    /// end of the container on top), or the opening of a container, pushed on `stack`
    /// (`None`).
    fn start(&mut self, stack: &mut Vec<Frame>) -> Result<Option<Val>, ValError> {
        self.skip_ws();
        if let Some(top) = stack.last_mut() {
            if top.may_close() && self.peek() == Some(top.close()) {
                self.pos += 1;
                return self.finish(stack).map(Some);
            }
            if let Frame::Pairs {
                pair: pair @ None, ..
            } = top
            {
                let at = self.pos;
                let close = match self.peek() {
                    Some('(') => ')',
                    Some('[') => ']',
                    _ => return Err(self.err("a (key, value) pair")),
                };
                self.pos += 1;
                *pair = Some(Pair {
                    at,
                    close,
                    key: None,
                });
                self.skip_ws();
            }
        }
        let start = self.pos;
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                let tab = Table::Tab(Tab::default());
                let dict = Frame::Dict {
                    tab,
                    key: None,
                    paren: false,
                };
                self.open(stack, dict)?;
                Ok(None)
            }
            Some('[') => {
                self.pos += 1;
                self.open(stack, Frame::List(Vec::new()))?;
                Ok(None)
            }
            Some('(') => {
                self.pos += 1;
                if let Some(v) = self.paren_number()? {
                    return Ok(Some(v));
                }
                let paren = Frame::Paren {
                    items: Vec::new(),
                    comma: false,
                };
                self.open(stack, paren)?;
                Ok(None)
            }
            Some('\'' | '"') => Ok(Some(Val::Str(self.string()?))),
            Some(c) if c.is_ascii_digit() || matches!(c, '.' | '+' | '-') => {
                self.number().map(num_val).map(Some)
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => match self.word() {
                "None" => Ok(Some(Val::None)),
                "True" => Ok(Some(Val::Bool(true))),
                "False" => Ok(Some(Val::Bool(false))),
                "inf" | "nan" | "infj" | "nanj" => {
                    self.pos = start;
                    self.number().map(num_val).map(Some)
                }
                "o" if self.peek() == Some('{') => {
                    self.pos += 1;
                    let dict = Frame::Dict {
                        tab: Table::OTab(OTab::default()),
                        key: None,
                        paren: false,
                    };
                    self.open(stack, dict)?;
                    Ok(None)
                }
                "OrderedDict" => self.ordered_dict(stack),
                "array" => self.array().map(Some),
                _ => Err(self.err_at(start, "a value")),
            },
            _ => Err(self.err("a value")),
        }
    }

    /// After `(`: a number in parentheses, such as Python's `(1+2j)`, which is the number
    /// and no container. Anything else is left for a tuple (`None`, nothing read).
    fn paren_number(&mut self) -> Result<Option<Val>, ValError> {
        let save = self.pos;
        self.skip_ws();
        let number = match self.peek() {
            Some(c) if c.is_ascii_digit() || matches!(c, '.' | '+' | '-') => true,
            Some(c) if c.is_ascii_alphabetic() => {
                matches!(self.word(), "inf" | "nan" | "infj" | "nanj")
            }
            _ => false,
        };
        if number {
            self.pos = save;
            self.skip_ws();
            let n = self.number()?;
            self.skip_ws();
            if self.peek() == Some(')') {
                self.pos += 1;
                return Ok(Some(num_val(n)));
            }
        }
        self.pos = save;
        Ok(None)
    }

    /// After `OrderedDict`: `()` (read whole), or the opening of `({...})` or `([...])`.
    fn ordered_dict(&mut self, stack: &mut Vec<Frame>) -> Result<Option<Val>, ValError> {
        self.expect('(', "'('")?;
        self.skip_ws();
        match self.peek() {
            Some(')') => {
                if stack.len() >= MAX_DEPTH {
                    return Err(self.err("nesting no deeper than 256 containers"));
                }
                self.pos += 1;
                Ok(Some(Val::OTab(OTab::default())))
            }
            Some('{') => {
                self.pos += 1;
                let dict = Frame::Dict {
                    tab: Table::OTab(OTab::default()),
                    key: None,
                    paren: true,
                };
                self.open(stack, dict)?;
                Ok(None)
            }
            Some('[') => {
                self.pos += 1;
                let pairs = Frame::Pairs {
                    tab: OTab::default(),
                    pair: None,
                };
                self.open(stack, pairs)?;
                Ok(None)
            }
            _ => Err(self.err("')', '[' or '{'")),
        }
    }

    /// Gives a complete value to the container on top, and reads what follows it there.
    fn put(&mut self, top: &mut Frame, v: Val) -> Result<Next, ValError> {
        match top {
            Frame::List(items) => {
                items.push(v);
                self.separator(']')
            }
            Frame::Paren { items, comma } => {
                items.push(v);
                let next = self.separator(')')?;
                *comma |= matches!(next, Next::Item);
                Ok(next)
            }
            Frame::Dict { tab, key, .. } => match key.take() {
                None => {
                    *key = Some(v);
                    self.expect(':', "':'")?;
                    Ok(Next::Item)
                }
                Some(k) => {
                    match tab {
                        Table::Tab(t) => t.insert(k, v),
                        Table::OTab(t) => t.insert(k, v),
                    };
                    self.separator('}')
                }
            },
            Frame::Pairs { tab, pair } => {
                let Some(p) = pair.as_mut() else {
                    return Err(self.err("a (key, value) pair"));
                };
                let Some(k) = p.key.take() else {
                    p.key = Some(v);
                    self.skip_ws();
                    if self.peek() != Some(',') {
                        return Err(self.err_at(p.at, "a (key, value) pair"));
                    }
                    self.pos += 1;
                    return Ok(Next::Item);
                };
                tab.insert(k, v);
                self.skip_ws();
                if self.peek() == Some(',') {
                    self.pos += 1;
                    self.skip_ws();
                }
                if self.peek() != Some(p.close) {
                    return Err(self.err_at(p.at, "a (key, value) pair"));
                }
                self.pos += 1;
                *pair = None;
                self.separator(']')
            }
        }
    }

    /// After an item: a comma (another item may follow) or `close`.
    fn separator(&mut self, close: char) -> Result<Next, ValError> {
        self.skip_ws();
        match self.peek() {
            Some(',') => {
                self.pos += 1;
                Ok(Next::Item)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(Next::Close)
            }
            _ => Err(self.err(&format!("',' or '{close}'"))),
        }
    }

    /// Ends the container on top of `stack` (its closing character read) and returns it.
    fn finish(&mut self, stack: &mut Vec<Frame>) -> Result<Val, ValError> {
        let Some(frame) = stack.pop() else {
            return Err(self.err("a value"));
        };
        Ok(match frame {
            Frame::List(items) => Val::Arr(items),
            Frame::Paren { mut items, comma } => match items.pop() {
                Some(v) if items.is_empty() && !comma => v,
                Some(v) => {
                    items.push(v);
                    Val::Tup(items)
                }
                None => Val::Tup(items),
            },
            Frame::Dict { tab, paren, .. } => {
                if paren {
                    self.expect(')', "')'")?;
                }
                match tab {
                    Table::Tab(t) => Val::Tab(t),
                    Table::OTab(t) => Val::OTab(t),
                }
            }
            Frame::Pairs { tab, .. } => {
                self.expect(')', "')'")?;
                Val::OTab(tab)
            }
        })
    }
}
