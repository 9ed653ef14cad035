//! `shmval list` and `shmval clean`: this project's regions in `/dev/shm`.
//!
//! A file counts as a region when its first bytes are a region header's magic. Its
//! creator's pid, start key and pid namespace come from the header, so "alive" means that
//! very process still runs (not another that reused the pid), and a creator in another pid
//! namespace, or of a region shared across namespaces, always counts as alive. Cleaning goes through
//! `Region::remove_stale` only: the file must be ours, a region, its creator dead, and the
//! name must still stand for the file that was checked.
//!
//! Files under private build names (`<region>.tmp-<pid>-<n>`), which a creator killed
//! while building leaves where regions cannot be built in unnamed files, are listed as
//! unfinished builds and removed through `region::remove_unfinished_build`, by the same
//! rules with the builder in place of the creator.

use std::os::unix::fs::MetadataExt;

use serde::Serialize;
use shmval::region::{self, Region, RegionName, SHM_DIR};

use crate::output::{errln, outln};

/// One region file, or one unfinished build.
#[derive(Debug, Serialize)]
pub struct Listed {
    name: String,
    bytes: u64,
    owner_uid: u32,
    owner: String,
    creator_pid: u32,
    /// Whether the creator may still run: never judged dead across pid namespaces.
    creator_alive: bool,
    /// The creator's pid namespace (0: unknown), in which `creator_pid` means something.
    creator_pid_ns: u64,
    /// Whether processes of several pid namespaces share the region.
    mixed_namespaces: bool,
    /// A file a builder left under a private name, not a published region.
    unfinished_build: bool,
}

/// The region name a command was given: `NAME` or `/dev/shm/NAME`. Anything else with a
/// slash is an error for the user (exit code 2): regions live in `/dev/shm` only.
pub fn region_arg(arg: &str) -> Result<String, String> {
    if !arg.contains('/') {
        return Ok(arg.to_string());
    }
    let path = std::path::Path::new(arg);
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) if dir == std::path::Path::new(SHM_DIR) => Ok(name.to_string()),
        _ => Err(format!(
            "{arg}: regions live in {SHM_DIR}: give a region's name, or {SHM_DIR}/NAME"
        )),
    }
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// The regions and unfinished builds in `/dev/shm`, by name.
pub fn list() -> Result<Vec<Listed>, String> {
    let builds = region::unfinished_builds().map_err(|e| e.to_string())?;
    let dir = std::fs::read_dir(SHM_DIR).map_err(|e| format!("{SHM_DIR}: {e}"))?;
    let mut out: Vec<Listed> = builds
        .iter()
        .map(|b| Listed {
            name: b.file_name.clone(),
            bytes: b.bytes,
            owner_uid: b.owner_uid,
            owner: user_name(b.owner_uid),
            creator_pid: b.builder_pid,
            creator_alive: b.builder_alive,
            creator_pid_ns: 0,
            mixed_namespaces: false,
            unfinished_build: true,
        })
        .collect();
    for e in dir.flatten() {
        if builds.iter().any(|b| *b.file_name == *e.file_name()) {
            continue;
        }
        // Region::peek reads the header without following links or blocking on FIFOs;
        // anything that is not a region (or not readable) is left out.
        let Some(name) = e.file_name().to_str().and_then(|n| RegionName::new(n).ok()) else {
            continue;
        };
        let (Ok(meta), Ok(info)) = (std::fs::symlink_metadata(e.path()), Region::peek(&name))
        else {
            continue;
        };
        out.push(Listed {
            name: name.to_string(),
            bytes: meta.len(),
            owner_uid: meta.uid(),
            owner: user_name(meta.uid()),
            creator_pid: info.creator_pid,
            creator_alive: info.creator_alive(),
            creator_pid_ns: info.creator_pid_ns,
            mixed_namespaces: info.mixed_namespaces,
            unfinished_build: false,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Prints the list for a person.
pub fn print(regions: &[Listed]) {
    if regions.is_empty() {
        outln!("no shmval regions in {SHM_DIR}");
        return;
    }
    outln!(
        "{:<40} {:>12} {:<10} {:>8}  creator",
        "region",
        "bytes",
        "owner",
        "pid"
    );
    for r in regions {
        let state = match (r.unfinished_build, r.creator_alive) {
            (false, true) => "running",
            (false, false) => "gone (stale: `shmval clean --stale` removes it)",
            (true, true) => "building (unfinished build, its builder runs)",
            (true, false) => {
                "gone (unfinished build of a killed builder: `shmval clean --stale` removes it)"
            }
        };
        outln!(
            "{:<40} {:>12} {:<10} {:>8}  {state}",
            r.name,
            r.bytes,
            r.owner,
            r.creator_pid,
        );
    }
}

/// `shmval clean REGION` or `shmval clean --stale [--prefix P]`; returns the exit code.
/// REGION may also be an unfinished build's file name.
pub fn clean(region: Option<&str>, stale: bool, prefix: &str) -> i32 {
    let builds: Vec<String> = match region::unfinished_builds() {
        Ok(b) => b.into_iter().map(|b| b.file_name).collect(),
        Err(e) => {
            errln!("shmval clean: {e}");
            return 1;
        }
    };
    let names: Vec<String> = match (region.map(region_arg), stale) {
        (Some(Ok(r)), false) => vec![r],
        (Some(Err(e)), false) => {
            errln!("shmval clean: {e}");
            return 2;
        }
        (None, true) => match list() {
            Ok(l) => l
                .into_iter()
                .filter(|r| !r.creator_alive && r.name.starts_with(prefix))
                .map(|r| r.name)
                .collect(),
            Err(e) => {
                errln!("shmval clean: {e}");
                return 1;
            }
        },
        _ => {
            errln!("shmval clean: give a REGION or --stale");
            return 2;
        }
    };
    let mut code = 0;
    let mut removed = 0;
    for n in &names {
        if builds.contains(n) {
            match region::remove_unfinished_build(n) {
                Ok(true) => {
                    outln!("removed {n} (unfinished build)");
                    removed += 1;
                }
                Ok(false) => {
                    errln!("shmval clean: {n}: its builder is still running; not removed");
                    code = 1;
                }
                Err(e) => {
                    errln!("shmval clean: {n}: {e}");
                    code = 1;
                }
            }
            continue;
        }
        let name = match RegionName::new(n.as_str()) {
            Ok(n) => n,
            Err(e) => {
                errln!("shmval clean: {e}");
                code = 2;
                continue;
            }
        };
        match Region::remove_stale(&name) {
            Ok(true) => {
                outln!("removed {name}");
                removed += 1;
            }
            Ok(false) if name.file_path().exists() => {
                errln!("shmval clean: {name}: its creator is still running; not removed");
                code = 1;
            }
            Ok(false) => {
                errln!("shmval clean: {name}: no such region");
                code = 1;
            }
            Err(e) => {
                errln!("shmval clean: {name}: {e}");
                code = 1;
            }
        }
    }
    if stale && removed == 0 && code == 0 {
        outln!("no stale regions");
    }
    code
}
