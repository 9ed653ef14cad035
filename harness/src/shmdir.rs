//! `shmval list` and `shmval clean`: this project's regions in `/dev/shm`.
//!
//! A file counts as a region when its first bytes are a region header's magic. Its
//! creator's pid and start key come from the header, so "alive" means that very process
//! still runs (not another that reused the pid). Cleaning goes through
//! `Region::remove_stale` only: the file must be ours, a region, its creator dead, and the
//! name must still stand for the file that was checked.

use std::io::Read;
use std::os::unix::fs::MetadataExt;

use serde::Serialize;
use shmval::region::header::{HEADER_SIZE, MAGIC};
use shmval::region::{Region, RegionName, SHM_DIR};

/// One region file.
#[derive(Debug, Serialize)]
pub struct Listed {
    name: String,
    bytes: u64,
    owner_uid: u32,
    owner: String,
    creator_pid: u32,
    creator_alive: bool,
}

/// Header fields at their offsets (see `shmval::region::header`).
const CREATOR_PID: usize = 48;
const CREATOR_START: usize = 56;

/// The regions in `/dev/shm`, by name.
pub fn list() -> Result<Vec<Listed>, String> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| format!("{SHM_DIR}: {e}"))?;
    let mut out = vec![];
    for e in dir.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if !meta.file_type().is_file() || meta.len() < HEADER_SIZE {
            continue;
        }
        let mut head = [0u8; 64];
        let read = std::fs::File::open(e.path()).and_then(|mut f| f.read_exact(&mut head));
        if read.is_err() || head[..8] != MAGIC {
            continue;
        }
        let word4 = |at: usize| u32::from_ne_bytes(head[at..at + 4].try_into().unwrap_or_default());
        let word8 = |at: usize| u64::from_ne_bytes(head[at..at + 8].try_into().unwrap_or_default());
        let (pid, start) = (word4(CREATOR_PID), word8(CREATOR_START));
        let alive = if start == 0 {
            std::path::Path::new(&format!("/proc/{pid}")).exists()
        } else {
            shmval::sync::process_alive(pid, start)
        };
        out.push(Listed {
            name: e.file_name().to_string_lossy().into_owned(),
            bytes: meta.len(),
            owner_uid: meta.uid(),
            owner: nix::unistd::User::from_uid(meta.uid().into())
                .ok()
                .flatten()
                .map_or_else(|| meta.uid().to_string(), |u| u.name),
            creator_pid: pid,
            creator_alive: alive,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Prints the list for a person.
pub fn print(regions: &[Listed]) {
    if regions.is_empty() {
        println!("no shmval regions in {SHM_DIR}");
        return;
    }
    println!(
        "{:<40} {:>12} {:<10} {:>8}  creator",
        "region", "bytes", "owner", "pid"
    );
    for r in regions {
        println!(
            "{:<40} {:>12} {:<10} {:>8}  {}",
            r.name,
            r.bytes,
            r.owner,
            r.creator_pid,
            if r.creator_alive {
                "running"
            } else {
                "gone (stale: `shmval clean --stale` removes it)"
            }
        );
    }
}

/// `shmval clean REGION` or `shmval clean --stale`; returns the exit code.
pub fn clean(region: Option<&str>, stale: bool) -> i32 {
    let names: Vec<String> = match (region, stale) {
        (Some(r), false) => vec![r.to_string()],
        (None, true) => match list() {
            Ok(l) => l
                .into_iter()
                .filter(|r| !r.creator_alive)
                .map(|r| r.name)
                .collect(),
            Err(e) => {
                eprintln!("shmval clean: {e}");
                return 1;
            }
        },
        _ => {
            eprintln!("shmval clean: give a REGION or --stale");
            return 2;
        }
    };
    let mut code = 0;
    let mut removed = 0;
    for n in &names {
        let name = match RegionName::new(n.as_str()) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("shmval clean: {e}");
                code = 1;
                continue;
            }
        };
        match Region::remove_stale(&name) {
            Ok(true) => {
                println!("removed {name}");
                removed += 1;
            }
            Ok(false) if name.file_path().exists() => {
                eprintln!("shmval clean: {name}: its creator is still running; not removed");
                code = 1;
            }
            Ok(false) => {
                eprintln!("shmval clean: {name}: no such region");
                code = 1;
            }
            Err(e) => {
                eprintln!("shmval clean: {name}: {e}");
                code = 1;
            }
        }
    }
    if stale && removed == 0 && code == 0 {
        println!("no stale regions");
    }
    code
}
