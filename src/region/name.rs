//! [`RegionName`]: a validated shared-memory object name.

use std::fmt;

use super::error::RegionError;

/// Longest name accepted, in bytes. Leaves room under `NAME_MAX` (255) for the suffix of
/// the private name a region is built under before it is published.
pub const MAX_NAME_LEN: usize = 200;

/// The name of a region: 1 to 200 bytes of `[A-Za-z0-9._-]`, not starting with a dot.
///
/// It names the file `/dev/shm/<name>`. The rules keep names portable, free of path
/// separators, and visible to `ls` (no leading dot).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionName(String);

/// What is wrong with `name` as a name of at most `max` bytes of `[A-Za-z0-9._-]` not
/// starting with a dot, if anything. The layers above name their objects (pipes) by the
/// same rules.
pub(crate) fn name_problem(name: &str, max: usize) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > max {
        Some("it is too long")
    } else if name.starts_with('.') {
        Some("it starts with a dot")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("it holds a character other than A-Z, a-z, 0-9, '.', '_' or '-'")
    } else {
        None
    }
}

impl RegionName {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`RegionError::BadName`] saying what is allowed, when `name` breaks a rule.
    pub fn new(name: impl Into<String>) -> Result<RegionName, RegionError> {
        let name = name.into();
        let problem = name_problem(&name, MAX_NAME_LEN);
        match problem {
            Some(why) => Err(RegionError::BadName { name, why }),
            None => Ok(RegionName(name)),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The private name a region is built under before it is published as `self`:
    /// `<name>.tmp-<suffix>`. It may exceed [`MAX_NAME_LEN`]; with a suffix of at most 32
    /// bytes it stays under `NAME_MAX` (255).
    pub(crate) fn private_name(&self, suffix: &str) -> RegionName {
        debug_assert!(
            suffix.len() <= 32
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        );
        RegionName(format!("{}.tmp-{suffix}", self.0))
    }

    /// The name as `shm_open` takes it (with a leading slash).
    pub(crate) fn shm_path(&self) -> String {
        format!("/{}", self.0)
    }

    /// The file the name stands for: `/dev/shm/<name>`.
    pub fn file_path(&self) -> std::path::PathBuf {
        std::path::Path::new(super::SHM_DIR).join(&self.0)
    }
}

impl fmt::Display for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::str::FromStr for RegionName {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionName::new(s)
    }
}

/// A name no other test of this process uses (`shmval-test-<tag>-<pid>-<n>`), for the
/// library's unit tests.
#[cfg(test)]
pub(crate) fn unique_test_name(tag: &str) -> RegionName {
    use crate::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    RegionName::new(format!(
        "shmval-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
    .expect("a valid name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in ["a", "mempool", "A-b_c.d9", &"x".repeat(200)] {
            assert_eq!(RegionName::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        for (bad, why) in [
            ("", "empty"),
            (".hidden", "dot"),
            ("a/b", "character"),
            ("sp ace", "character"),
            ("é", "character"),
            (&"x".repeat(201), "200"),
        ] {
            let e = RegionName::new(bad).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(why), "{msg}");
            assert!(msg.contains("A-Z, a-z, 0-9"), "{msg}");
        }
    }
}
