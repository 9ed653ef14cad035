//! The real platform: futexes, the monotonic clock, and liveness from `/proc`.
//!
//! # Liveness
//!
//! A lock word names its owner by thread id and a key taken from the thread's start time
//! (`/proc/<tid>/stat`, field 22, in clock ticks since boot). An owner is dead when
//! `/proc/<tid>` is gone (while `/proc` itself is readable), is a zombie, or belongs to a
//! thread with another start time (the id was reused). This needs no registration, no file
//! descriptor and no cleanup, works for processes that never met, and cannot be fooled by
//! id reuse.
//!
//! Whatever cannot be told counts as alive, so a lock is never stolen from a live owner:
//! no `/proc` (or no `/proc/self`), a `stat` file that cannot be read or parsed, an owner
//! whose own start time could not be read (key 0: any running thread with its id counts
//! as it), and every owner while a region shared across pid namespaces is mapped (see
//! [`add_liveness_veto`]: a thread id from another namespace means nothing in this
//! `/proc`).

use std::cell::Cell;
use std::path::Path;
use std::sync::{Mutex, Once};
use std::thread::LocalKey;
use std::time::Duration;

use super::atomic::{AtomicU32, AtomicU64, Ordering};
use super::futex;
use super::owner::Owner;
use super::platform::{Platform, Wake};

/// The operating system: futex wait/wake, `CLOCK_MONOTONIC`, `/proc` liveness.
#[derive(Clone, Copy, Debug, Default)]
pub struct Os;

impl Platform for Os {
    /// A dead owner goes unnoticed for at most this long (plus a `/proc` read).
    const LIVENESS_POLL: Option<Duration> = Some(Duration::from_millis(20));

    fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wake {
        futex::wait(word, expected, timeout)
    }

    fn wake(word: &AtomicU32, n: u32) -> u32 {
        futex::wake(word, n)
    }

    fn now_ns() -> u64 {
        monotonic_ns()
    }

    fn current() -> Owner {
        current_owner()
    }

    fn is_alive(owner: Owner) -> bool {
        vetoed() || owner_alive(Path::new(PROC), owner)
    }
}

/// Words in shared mappings that, while any is non-zero, make every owner count as alive
/// (see [`add_liveness_veto`]): their address and an id to remove them by.
static VETOES: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());
static NEXT_VETO: AtomicU64 = AtomicU64::new(1);

/// Removes its word from the liveness vetoes when dropped.
#[derive(Debug)]
pub(crate) struct LivenessVeto(u64);

impl Drop for LivenessVeto {
    fn drop(&mut self) {
        VETOES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != self.0);
    }
}

/// Registers `word`: while it holds a non-zero value, this process judges no lock owner
/// dead. A region whose processes live in different pid namespaces sets such a word,
/// since a thread id read from a lock word then names a thread of another namespace that
/// `/proc` here cannot see; "unknown" must mean "alive".
///
/// # Safety
///
/// `word` stays valid (mapped) until the returned guard is dropped.
pub(crate) unsafe fn add_liveness_veto(word: &AtomicU32) -> LivenessVeto {
    let id = NEXT_VETO.fetch_add(1, Ordering::Relaxed);
    VETOES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, word as *const AtomicU32 as usize));
    LivenessVeto(id)
}

/// Whether a registered veto word is set now.
fn vetoed() -> bool {
    // Pairs with the SeqCst store that sets a veto word before its setter takes any lock.
    super::atomic::fence(Ordering::SeqCst);
    VETOES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|&(_, at)| {
            // SAFETY: `at` was registered by `add_liveness_veto`, whose caller keeps the
            // word mapped until the guard, which removes it from this list under the same
            // lock, is dropped.
            unsafe { &*(at as *const AtomicU32) }.load(Ordering::SeqCst) != 0
        })
}

/// Nanoseconds on `CLOCK_MONOTONIC`.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The last id [`unique_id`] gave.
static LAST_ID: AtomicU64 = AtomicU64::new(0);

/// An id no other call in this process returns (never 0): for telling apart objects
/// that may live at the same address one after another.
pub(crate) fn unique_id() -> u64 {
    LAST_ID.fetch_add(1, Ordering::Relaxed) + 1
}

/// Bumped in every child after `fork`, so a thread's cached identity is recomputed there.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Async-signal-safe: one atomic add.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

fn register_atfork() {
    ATFORK.call_once(|| {
        // SAFETY: registering a handler with no prepare/parent parts; the child handler
        // only performs an atomic add, which is async-signal-safe.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// The process a value was made in, told apart from a child `fork`ed from it: such a child
/// inherits a copy of the value, and its drop must not release what the parent still
/// holds (unlink the parent's region, drop a count the parent will drop again).
///
/// One relaxed load to check: a fork bumps a counter in the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadeIn(u64);

impl MadeIn {
    /// The calling process.
    pub fn this_process() -> MadeIn {
        register_atfork();
        MadeIn(FORK_GENERATION.load(Ordering::Relaxed))
    }

    /// Whether the calling process is the one this was made in (not a forked child).
    pub fn is_this_process(self) -> bool {
        FORK_GENERATION.load(Ordering::Relaxed) == self.0
    }
}

thread_local! {
    /// (fork generation + 1, owner) of the calling thread; generation 0 means unset.
    static CURRENT: Cell<(u64, Owner)> = const { Cell::new((0, Owner::new(1, 0))) };
}

/// What `cache` holds for the calling process (recomputed in a forked child), made by
/// `make` the first time.
fn cached(cache: &'static LocalKey<Cell<(u64, Owner)>>, make: impl FnOnce() -> Owner) -> Owner {
    register_atfork();
    let gen = FORK_GENERATION.load(Ordering::Relaxed) + 1;
    cache.with(|c| {
        let (g, o) = c.get();
        if g == gen {
            return o;
        }
        let o = make();
        c.set((gen, o));
        o
    })
}

fn current_owner() -> Owner {
    cached(&CURRENT, || {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        let key = match read_stat(Path::new(PROC), tid) {
            Stat::Running { start, .. } => owner_key(start),
            // Without /proc the key is 0 (unknown): a running thread with this id counts as
            // this one.
            _ => 0,
        };
        Owner::new(tid, key)
    })
}

/// Where the kernel's process table is mounted.
const PROC: &str = "/proc";

/// The start-time key an owner stores: never 0, which stands for "unknown".
fn owner_key(start: u64) -> u64 {
    start % ((1 << super::owner::KEY_BITS) - 1) + 1
}

/// Whether the owner is alive as far as the process table at `proc` can tell; `true` when
/// it cannot.
pub(crate) fn owner_alive(proc: &Path, owner: Owner) -> bool {
    match read_stat(proc, owner.tid()) {
        Stat::Gone => false,
        Stat::Unknown => true,
        // A zombie is a thread that has exited: the owner, or (its id reused) a thread
        // that came after the owner had gone.
        Stat::Running { zombie: true, .. } => false,
        Stat::Running { start, .. } => {
            owner.start_key() == 0 || owner.start_key() == owner_key(start)
        }
    }
}

/// What the process table says about a thread or process.
enum Stat {
    /// No such id, in a readable process table.
    Gone,
    /// The table could not tell.
    Unknown,
    Running {
        zombie: bool,
        start: u64,
    },
}

fn read_stat(proc: &Path, tid: u32) -> Stat {
    let text = match std::fs::read_to_string(proc.join(tid.to_string()).join("stat")) {
        Ok(t) => t,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ESRCH) =>
        {
            // Gone only if the table itself is there: with no /proc mounted every id
            // would look gone.
            return if proc.join("self").join("stat").is_file() {
                Stat::Gone
            } else {
                Stat::Unknown
            };
        }
        Err(_) => return Stat::Unknown,
    };
    parse_stat(&text).map_or(Stat::Unknown, |(state, start)| Stat::Running {
        zombie: matches!(state, 'Z' | 'X' | 'x'),
        start,
    })
}

/// Parses `(state, starttime)` out of a `/proc/<pid>/stat` line. The command name may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state; starttime is field 22, so 18 fields after the state.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// The start-time key of process `pid` (its start time in clock ticks since boot), if it
/// is running. Store it beside a pid to test that process's liveness later with
/// [`process_alive`].
pub fn process_start_key(pid: u32) -> Option<u64> {
    match read_stat(Path::new(PROC), pid) {
        Stat::Running {
            zombie: false,
            start,
        } => Some(start),
        _ => None,
    }
}

/// The calling process's identity, as a lock word would name its main thread: its pid
/// and the key of its start time. What [`process_owner_of`] makes of a registry slot's
/// pid and start key.
pub(crate) fn process_owner() -> Owner {
    cached(&PROCESS, || {
        let pid = std::process::id();
        process_owner_of(pid, process_start_key(pid).unwrap_or(0))
    })
}

thread_local! {
    /// (fork generation + 1, [`process_owner`]) as the calling thread last read it;
    /// generation 0 means unset. A forked child reads its own.
    static PROCESS: Cell<(u64, Owner)> = const { Cell::new((0, Owner::new(1, 0))) };
}

/// The identity of process `pid` whose start key (see [`process_start_key`]) is
/// `start_key`; liveness tested as a lock owner's ([`Platform::is_alive`]).
pub(crate) fn process_owner_of(pid: u32, start_key: u64) -> Owner {
    Owner::new(
        pid,
        if start_key == 0 {
            0
        } else {
            owner_key(start_key)
        },
    )
}

/// Whether process `pid` with start key `start_key` (from [`process_start_key`]) is still
/// running. `true` when `/proc` cannot tell.
pub fn process_alive(pid: u32, start_key: u64) -> bool {
    match read_stat(Path::new(PROC), pid) {
        Stat::Gone => false,
        Stat::Unknown => true,
        Stat::Running { zombie, start } => !zombie && start == start_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_hostile_name() {
        let line = "1234 (a) b (c) R 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('R', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_thread_is_alive_and_a_wrong_key_is_not() {
        let me = Os::current();
        // SAFETY: gettid has no preconditions.
        assert_eq!(me.tid(), unsafe { libc::gettid() } as u32);
        assert!(Os::is_alive(me));
        let impostor = Owner::new(me.tid(), me.start_key() % 1000 + 1);
        assert_ne!(impostor, me);
        assert!(!Os::is_alive(impostor));
    }

    #[test]
    fn keys_are_never_zero() {
        for start in [0, 1, (1 << 30) - 2, (1 << 30) - 1, 1 << 30, u64::MAX] {
            let k = owner_key(start);
            assert!(k != 0 && k < 1 << 30, "{start}: {k}");
        }
        assert_ne!(Os::current().start_key(), 0);
    }

    #[test]
    fn an_owner_whose_start_time_was_unknown_is_alive_while_its_id_runs() {
        let me = Os::current();
        assert!(Os::is_alive(Owner::new(me.tid(), 0)));
        let gone = std::thread::spawn(Os::current).join().unwrap();
        assert!(!Os::is_alive(Owner::new(gone.tid(), 0)));
    }

    #[test]
    fn without_a_process_table_every_owner_is_alive() {
        let gone = std::thread::spawn(Os::current).join().unwrap();
        assert!(!owner_alive(Path::new(PROC), gone));
        assert!(owner_alive(Path::new("/nonexistent-proc"), gone));
        // A table without `self` is not a process table either.
        let empty = std::env::temp_dir().join(format!("shmval-noproc-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        assert!(owner_alive(&empty, gone));
        std::fs::remove_dir_all(&empty).unwrap();
    }

    #[test]
    fn an_unreadable_or_garbled_stat_means_alive() {
        let gone = std::thread::spawn(Os::current).join().unwrap();
        let root = std::env::temp_dir().join(format!("shmval-badproc-{}", std::process::id()));
        let stat = root.join(gone.tid().to_string()).join("stat");
        // `stat` a directory: reading it fails with something other than "not found".
        std::fs::create_dir_all(&stat).unwrap();
        assert!(owner_alive(&root, gone));
        std::fs::remove_dir(&stat).unwrap();
        std::fs::write(&stat, "garbage").unwrap();
        assert!(owner_alive(&root, gone));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_exited_thread_is_dead() {
        let o = std::thread::spawn(Os::current).join().unwrap();
        assert_ne!(o, Os::current());
        assert!(!Os::is_alive(o));
    }

    #[test]
    fn a_set_veto_word_makes_every_owner_alive() {
        let dead = std::thread::spawn(Os::current).join().unwrap();
        assert!(!Os::is_alive(dead));
        let word = AtomicU32::new(0);
        // SAFETY: `word` outlives the guard, dropped at the end of this scope.
        let guard = unsafe { add_liveness_veto(&word) };
        assert!(!Os::is_alive(dead));
        word.store(1, Ordering::SeqCst);
        assert!(Os::is_alive(dead));
        drop(guard);
        assert!(!Os::is_alive(dead));
    }

    #[test]
    fn process_keys() {
        let pid = std::process::id();
        let key = process_start_key(pid).unwrap();
        assert!(process_alive(pid, key));
        assert!(!process_alive(pid, key + 1));
    }
}
