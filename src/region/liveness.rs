//! Whether a region's creator still runs, judged from `/proc` and never across pid
//! namespaces.
//!
//! A creator is named by its pid and start key in the header, which only mean something
//! to a process that sees the creator's pid namespace in `/proc`. So a creator is judged
//! dead only when the judge provably shares its namespace (both namespaces known and
//! equal), the region is not mixed (no process of another namespace attached), `/proc`
//! works here, and it shows no such process (or one that started at another time).
//! Anything unknown counts as alive: a live region is never removed on a guess.

use std::os::unix::fs::MetadataExt;

use crate::sync;

/// The pid namespace of this process: the inode number of `/proc/self/ns/pid`, or 0 when
/// it cannot be read. Read afresh each time: a child forked after `unshare(CLONE_NEWPID)`
/// lives in another namespace than the parent whose memory it inherits.
pub(crate) fn own_pid_ns() -> u64 {
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// Whether a process of pid namespace `ours` attaching to a region created in namespace
/// `creator` makes it mixed: the two differ, counting an unknown (0) one as different from
/// a known one.
pub(crate) fn mixes(creator: u64, ours: u64) -> bool {
    creator != ours
}

/// Whether `/proc` shows this process, so that a missing entry there means something.
fn proc_works() -> bool {
    std::fs::metadata(format!("/proc/{}", std::process::id())).is_ok()
}

/// Whether some process `pid` runs here; `true` unless `/proc` works and has no entry for
/// it.
pub(crate) fn pid_alive(pid: u32) -> bool {
    !(proc_works()
        && matches!(
            std::fs::metadata(format!("/proc/{pid}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        ))
}

/// Whether the creator of a region (`pid`, start key `start`, pid namespace `pid_ns`, as
/// its header says; `mixed`, its mixed word) may still run. `false` only when death is
/// proven (see the module docs). A start key of 0 means the creator could not read its
/// own: then any process with that pid counts as the creator.
pub(crate) fn creator_alive(pid: u32, start: u64, pid_ns: u64, mixed: bool) -> bool {
    if mixed || pid_ns == 0 || pid_ns != own_pid_ns() || !proc_works() {
        return true;
    }
    if start == 0 {
        return pid_alive(pid);
    }
    sync::process_alive(pid, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_provably_dead_creator_of_our_namespace_is_dead() {
        let pid = std::process::id();
        let key = sync::process_start_key(pid).unwrap();
        let ns = own_pid_ns();
        assert_ne!(ns, 0, "this test needs /proc");
        assert!(creator_alive(pid, key, ns, false));
        assert!(creator_alive(pid, 0, ns, false));
        // Another start key: this pid was reused, the creator is dead...
        assert!(!creator_alive(pid, key + 1, ns, false));
        // ...unless the region is mixed, or the creator's namespace is not provably ours.
        assert!(creator_alive(pid, key + 1, ns, true));
        assert!(creator_alive(pid, key + 1, ns + 1, false));
        assert!(creator_alive(pid, key + 1, 0, false));
        assert!(mixes(ns, ns + 1) && mixes(0, ns) && mixes(ns, 0) && !mixes(ns, ns));
    }
}
