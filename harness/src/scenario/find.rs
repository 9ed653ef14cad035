//! Where `shmval run NAME` finds its scenario file.

use std::path::{Path, PathBuf};

/// The repository's folder, where a scenario given by name alone is also looked for.
fn shipped_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// Finds a scenario: the path as given (or with `.toml` added), or else the same in the
/// repository's folder or its `scenarios` folder. The error says where it looked and
/// lists the shipped scenarios.
pub fn resolve(arg: &str) -> Result<PathBuf, String> {
    let root = shipped_root();
    let mut tried: Vec<PathBuf> = vec![];
    for base in [
        PathBuf::from(arg),
        root.join(arg),
        root.join("scenarios").join(arg),
    ] {
        for candidate in [base.clone(), base.with_extension("toml")] {
            if candidate.is_file() {
                return Ok(candidate);
            }
            if !tried.contains(&candidate) {
                tried.push(candidate);
            }
        }
    }
    let looked: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    let dir = root.join("scenarios");
    let mut known: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".toml").map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    known.sort();
    Err(format!(
        "{arg}: no such scenario file (looked for {}); the scenarios in {}: {}",
        looked.join(", "),
        dir.display(),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ))
}
