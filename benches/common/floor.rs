//! The floors: the fastest a hand-off between two processes can be on this machine, by
//! the same process layout as the pipe benches, so ours is read as a ratio to them.
//!
//! - `cacheline`: two processes ping-pong a counter through two atomic words of a shared
//!   mapping, both busy-polling (no system call). Each round trip is two cache-line
//!   transfers between the CPUs: no spinning hand-off can beat it.
//! - `futex`: the same, but each side stores, always calls `FUTEX_WAKE`, and sleeps in
//!   `FUTEX_WAIT` until the word changes (no spinning): one wake per hop, the least a
//!   hand-off whose receiver sleeps must pay.
//! - the lock floor ([`PthreadCounter`]): a process-shared pthread mutex around a plain
//!   counter in the same kind of mapping, for the locked-value figures: an update is lock,
//!   increment, unlock, the least a locked update shared by processes costs.
//!
//! The mapping is an anonymous `memfd` given to the child as its standard input, so
//! nothing is created in `/dev/shm`. The parent ends the child by storing [`STOP`].

use std::cell::UnsafeCell;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Patience, WAIT};

/// Bytes mapped: the two words sit on different cache lines (128 bytes apart, beyond the
/// adjacent-line prefetcher's pair).
const LEN: usize = 4096;
/// The word the parent stores into, and the one the child echoes into.
const PING: usize = 0;
const PONG: usize = 128;
/// Stored into `PING`: the child returns.
const STOP: u32 = u32::MAX;

/// Which floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Busy-polling both ways.
    Cacheline,
    /// Wake and sleep on a shared futex both ways.
    Futex,
}

impl Kind {
    /// Its name in figures and in the child's environment.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cacheline => "cacheline",
            Kind::Futex => "futex",
        }
    }

    /// The kind named `s`.
    pub fn parse(s: &str) -> Kind {
        match s {
            "cacheline" => Kind::Cacheline,
            "futex" => Kind::Futex,
            _ => panic!("unknown floor {s}"),
        }
    }
}

/// A shared mapping of [`LEN`] bytes, unmapped when dropped.
pub struct Mapping {
    ptr: *mut u8,
    fd: OwnedFd,
}

impl Mapping {
    /// A fresh zeroed memfd, mapped.
    pub fn create() -> Mapping {
        // SAFETY: a NUL-terminated name and valid flags; the result is checked.
        let fd = unsafe { libc::memfd_create(c"shmval-floor".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just returned to us and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        File::from(fd.try_clone().expect("dup"))
            .set_len(LEN as u64)
            .expect("ftruncate");
        Mapping::map(fd)
    }

    /// Maps the memfd this process got as its standard input.
    pub fn from_stdin() -> Mapping {
        Mapping::map(
            std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .expect("dup stdin"),
        )
    }

    fn map(fd: OwnedFd) -> Mapping {
        // SAFETY: a shared mapping of a file at least LEN bytes long; the result is
        // checked, and the memory is only ever accessed through atomics.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        assert!(ptr != libc::MAP_FAILED, "mmap failed");
        Mapping {
            ptr: ptr.cast(),
            fd,
        }
    }

    /// The memfd, for the child's standard input.
    pub fn fd(&self) -> OwnedFd {
        self.fd.try_clone().expect("dup")
    }

    fn word(&self, at: usize) -> &AtomicU32 {
        // SAFETY: `at` is 4-aligned and within the mapping, which lives as long as `self`;
        // every access to the shared words is atomic.
        unsafe { &*self.ptr.add(at).cast::<AtomicU32>() }
    }

    /// The 64-bit word `at` bytes in (8-aligned), for control words shared with children.
    pub fn word64(&self, at: usize) -> &AtomicU64 {
        assert!(
            at % 8 == 0 && at + 8 <= LEN,
            "word {at} outside the mapping"
        );
        // SAFETY: `at` is 8-aligned (the mapping is page-aligned) and within the mapping,
        // which lives as long as `self`; every access to the shared words is atomic.
        unsafe { &*self.ptr.add(at).cast::<AtomicU64>() }
    }

    /// The lock floor `at` bytes in (64-aligned); [`PthreadCounter::init`] it once, before
    /// any process uses it.
    pub fn pthread_counter(&self, at: usize) -> &PthreadCounter {
        assert!(
            at % 64 == 0 && at + std::mem::size_of::<PthreadCounter>() <= LEN,
            "lock floor at {at} outside the mapping"
        );
        // SAFETY: aligned and within the mapping, which lives as long as `self`. The memfd
        // starts zeroed and all-zero bytes are a valid `PthreadCounter` (a C struct of
        // integers and a zero count); its words are only accessed through the pthread calls
        // and under the mutex (see `PthreadCounter`).
        unsafe { &*self.ptr.add(at).cast::<PthreadCounter>() }
    }
}

/// The lock floor: a process-shared pthread mutex (`PTHREAD_PROCESS_SHARED`, default type:
/// not robust, no spinning, a futex sleep when taken) and the plain `u64` it guards, on
/// one cache line of a shared [`Mapping`].
#[repr(C, align(64))]
pub struct PthreadCounter {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    count: UnsafeCell<u64>,
}

impl PthreadCounter {
    /// Makes the mutex process-shared and the count 0.
    ///
    /// # Safety
    ///
    /// No thread of any process uses the counter during the call (in practice: the parent
    /// calls it before it gives the mapping to a child).
    pub unsafe fn init(&self) {
        // SAFETY: the attribute object is initialised before use and destroyed after; the
        // mutex is not in use (the caller's promise), so initialising it is allowed.
        unsafe {
            let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
            assert_eq!(libc::pthread_mutexattr_init(attr.as_mut_ptr()), 0);
            assert_eq!(
                libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED),
                0
            );
            assert_eq!(libc::pthread_mutex_init(self.mutex.get(), attr.as_ptr()), 0);
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            *self.count.get() = 0;
        }
    }

    /// One update: lock, add 1, unlock.
    #[inline]
    pub fn update(&self) {
        // SAFETY: the mutex was initialised by `init` before the mapping was shared (or is
        // still all zero, glibc's default initialiser); the count is only read and written
        // while it is held, by whichever process holds it.
        unsafe {
            let r = libc::pthread_mutex_lock(self.mutex.get());
            assert_eq!(r, 0, "pthread_mutex_lock");
            *self.count.get() += 1;
            libc::pthread_mutex_unlock(self.mutex.get());
        }
    }

    /// The count, read under the mutex.
    pub fn count(&self) -> u64 {
        // SAFETY: as in `update`.
        unsafe {
            assert_eq!(libc::pthread_mutex_lock(self.mutex.get()), 0);
            let n = *self.count.get();
            libc::pthread_mutex_unlock(self.mutex.get());
            n
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, not used after this.
        unsafe { libc::munmap(self.ptr.cast(), LEN) };
    }
}

fn futex_wait(w: &AtomicU32, expected: u32) {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    // SAFETY: `w` is a valid, aligned u32 in a shared mapping; FUTEX_WAIT (not PRIVATE)
    // reads it and sleeps until a wake, a change, or the timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            w.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0,
        );
    }
}

fn futex_wake(w: &AtomicU32) {
    // SAFETY: `w` is a valid, aligned u32; FUTEX_WAKE only uses its address.
    unsafe {
        libc::syscall(libc::SYS_futex, w.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

/// Waits until `w` holds `want` (or, for the child, [`STOP`]); panics past [`WAIT`].
fn wait_for(kind: Kind, w: &AtomicU32, want: u32) -> u32 {
    let mut patience = Patience::new(WAIT);
    loop {
        let v = w.load(Ordering::Acquire);
        if v == want || v == STOP {
            return v;
        }
        let over = match kind {
            Kind::Cacheline => {
                std::hint::spin_loop();
                patience.exhausted()
            }
            Kind::Futex => {
                futex_wait(w, v);
                patience.exhausted_now()
            }
        };
        if over {
            panic!("the floor peer did not answer within {WAIT:?}");
        }
    }
}

fn store(kind: Kind, w: &AtomicU32, v: u32) {
    w.store(v, Ordering::Release);
    if kind == Kind::Futex {
        futex_wake(w);
    }
}

/// The child: echoes every value stored in `PING` into `PONG` until [`STOP`].
pub fn echo(kind: Kind) {
    let m = Mapping::from_stdin();
    let (ping, pong) = (m.word(PING), m.word(PONG));
    let mut want = 1u32;
    loop {
        if wait_for(kind, ping, want) == STOP {
            return;
        }
        store(kind, pong, want);
        want = next(want);
    }
}

fn next(i: u32) -> u32 {
    if i >= 1 << 30 {
        1
    } else {
        i + 1
    }
}

/// The parent's side of one floor: round trips with the child over `m`, counting on
/// from where the last call stopped.
pub struct Floor {
    m: Mapping,
    kind: Kind,
    seq: u32,
}

impl Floor {
    /// A fresh mapping for `kind`; give [`Mapping::fd`] (via [`Floor::fd`]) to the child.
    pub fn new(kind: Kind) -> Floor {
        Floor {
            m: Mapping::create(),
            kind,
            seq: 0,
        }
    }

    /// The memfd for the child's standard input.
    pub fn fd(&self) -> OwnedFd {
        self.m.fd()
    }

    /// `iters` round trips; the time they took.
    pub fn round_trips(&mut self, iters: u64) -> Duration {
        let (ping, pong) = (self.m.word(PING), self.m.word(PONG));
        let start = Instant::now();
        for _ in 0..iters {
            self.seq = next(self.seq);
            store(self.kind, ping, self.seq);
            let got = wait_for(self.kind, pong, self.seq);
            debug_assert_eq!(got, self.seq);
        }
        start.elapsed()
    }

    /// Tells the child to return.
    pub fn stop(&self) {
        store(self.kind, self.m.word(PING), STOP);
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop();
    }
}
