//! [`PipeName`] and [`ValueName`]: validated names of pipes and of named values.

use std::fmt;

use super::error::SidesError;

/// Longest pipe name, in bytes (the directory stores names inline).
pub const MAX_PIPE_NAME: usize = 64;

/// The name of a pipe in a region's directory: 1 to 64 bytes of `[A-Za-z0-9._-]`, not
/// starting with a dot (the same alphabet as region names).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PipeName(String);

impl PipeName {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`SidesError::BadPipeName`] saying which rule it breaks.
    pub fn new(name: impl Into<String>) -> Result<PipeName, SidesError> {
        let name = name.into();
        let why = crate::region::name_problem(&name, MAX_PIPE_NAME);
        match why {
            Some(why) => Err(SidesError::BadPipeName { name, why }),
            None => Ok(PipeName(name)),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as the directory stores it: 64 bytes, zero-padded, as eight words.
    pub(crate) fn words(&self) -> [u64; 8] {
        to_words(&self.0)
    }

    /// Decodes a stored name (untrusted): `None` unless it is a valid name.
    pub(crate) fn from_words(w: &[u64; 8]) -> Option<PipeName> {
        from_words(w).and_then(|s| PipeName::new(s).ok())
    }
}

/// `name` (at most 64 bytes) as a directory stores it: zero-padded, as eight words.
fn to_words(name: &str) -> [u64; 8] {
    let mut bytes = [0u8; MAX_PIPE_NAME];
    let n = name.len().min(MAX_PIPE_NAME);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    let mut w = [0u64; 8];
    for (i, c) in bytes.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        w[i] = u64::from_le_bytes(b);
    }
    w
}

/// The string a directory stored as eight words (untrusted: the caller validates it).
fn from_words(w: &[u64; 8]) -> Option<String> {
    let mut bytes = Vec::with_capacity(MAX_PIPE_NAME);
    for x in w {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let len = bytes.iter().position(|b| *b == 0).unwrap_or(MAX_PIPE_NAME);
    bytes.truncate(len);
    String::from_utf8(bytes).ok()
}

impl fmt::Display for PipeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PipeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Longest name of a named value, in bytes (the names directory stores names inline).
pub const MAX_VALUE_NAME: usize = 64;

/// The name of a value in a region's [`Names`](super::Names): the rules of a pipe name,
/// 1 to 64 bytes of `[A-Za-z0-9._-]`, not starting with a dot.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ValueName(String);

impl ValueName {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`SidesError::BadValueName`] saying which rule it breaks.
    pub fn new(name: impl Into<String>) -> Result<ValueName, SidesError> {
        let name = name.into();
        match crate::region::name_problem(&name, MAX_VALUE_NAME) {
            Some(why) => Err(SidesError::BadValueName { name, why }),
            None => Ok(ValueName(name)),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as the names directory stores it.
    pub(crate) fn words(&self) -> [u64; 8] {
        to_words(&self.0)
    }

    /// Decodes a stored name (untrusted): `None` unless it is a valid name.
    pub(crate) fn from_words(w: &[u64; 8]) -> Option<ValueName> {
        from_words(w).and_then(|s| ValueName::new(s).ok())
    }
}

impl fmt::Display for ValueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ValueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_words() {
        for n in ["p", "pipe1", &"x".repeat(64), "a.b-c_d"] {
            let p = PipeName::new(n).unwrap();
            assert_eq!(PipeName::from_words(&p.words()), Some(p));
        }
        assert_eq!(PipeName::from_words(&[0; 8]), None);
        assert_eq!(PipeName::from_words(&[u64::MAX; 8]), None);
    }

    #[test]
    fn value_names_follow_the_pipe_rules() {
        for n in ["t", "boot.info", &"x".repeat(64)] {
            let v = ValueName::new(n).unwrap();
            assert_eq!(ValueName::from_words(&v.words()), Some(v));
        }
        for bad in ["", ".x", "a/b", &"x".repeat(65)] {
            let e = ValueName::new(bad).unwrap_err().to_string();
            assert!(e.starts_with("bad value name"), "{e}");
        }
    }

    #[test]
    fn bad_names_say_why() {
        for bad in ["", ".x", "a b", &"x".repeat(65)] {
            let e = PipeName::new(bad).unwrap_err().to_string();
            assert!(e.contains("A-Z, a-z, 0-9"), "{e}");
        }
    }
}
