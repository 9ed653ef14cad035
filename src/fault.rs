//! Named pause points for crash tests (cargo feature `fault-injection`).
//!
//! Code under test calls `pause_point` at the steps where a crash is interesting (inside
//! the allocator's, the pipes' and the directory's critical sections). Normally that costs
//! one relaxed atomic load; without the feature it compiles to nothing. A test child calls
//! [`arm`] with a point's name before the operation; when the operation reaches that point
//! the thread reports it through a [`Notice`] (if the parent gave it one) and then sleeps
//! forever, holding whatever it holds, so the test can kill or stop the process exactly
//! there and check that the survivors recover.
//!
//! The parent waits for the report instead of sleeping and hoping: [`Notice::new`] makes a
//! page of anonymous shared memory, [`Notice::env`] names it for the child's environment,
//! and [`Notice::wait`] sleeps on a futex in it until the child has reached its point.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use crate::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Whether any point is armed in this process: the fast path reads only this.
static ARMED: AtomicU8 = AtomicU8::new(0);
/// The armed point's name, and how many more times it is passed before it pauses.
static POINT: Mutex<(String, u32)> = Mutex::new((String::new(), 0));

/// The pause points inside an update of a locked table, in the order an update passes
/// them (several may be passed more than once: `name#n`): from taking the lock, through
/// the journal's records and stores, the commit and the settling, to a container's
/// growth and a value moving in.
pub const LOCKED_UPDATE_POINTS: [&str; 10] = [
    "locked.lock.taken",
    "locked.op.begun",
    "undo.recorded",
    "undo.stored",
    "undo.committed",
    "locked.op.converted",
    "undo.cleared",
    "val.build.allocated",
    "val.move.marked",
    "val.grow.linked",
];

/// The environment variable through which a child finds its parent's [`Notice`].
pub const NOTICE_ENV: &str = "SHMVAL_FAULT_NOTICE_FD";

/// Arms the pause point `point` in this process: the next thread to reach it reports it and
/// sleeps forever. `name#n` pauses at the `n`th time the point `name` is reached (from 1),
/// for a step an operation passes several times.
pub fn arm(point: &str) {
    let (name, nth) = match point.rsplit_once('#') {
        Some((name, n)) => (name, n.parse::<u32>().unwrap_or(1).max(1)),
        None => (point, 1),
    };
    let mut p = POINT.lock().unwrap_or_else(|e| e.into_inner());
    p.0.clear();
    p.0.push_str(name);
    p.1 = nth - 1;
    ARMED.store(1, Ordering::SeqCst);
}

/// Disarms any armed point.
pub fn disarm() {
    ARMED.store(0, Ordering::SeqCst);
}

/// Marks a step named `name`. Returns at once unless `name` is armed, in which case the
/// calling thread reports it and never returns.
#[inline]
pub(crate) fn pause_point(name: &'static str) {
    if ARMED.load(Ordering::Relaxed) != 0 {
        pause_if_armed(name);
    }
}

#[cold]
#[inline(never)]
fn pause_if_armed(name: &'static str) {
    let hit = {
        let mut p = POINT.lock().unwrap_or_else(|e| e.into_inner());
        if p.0 != name {
            false
        } else if p.1 > 0 {
            p.1 -= 1;
            false
        } else {
            true
        }
    };
    if hit {
        if let Some(page) = child_page() {
            page.publish(name);
        }
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// The page of the parent's notice, mapped once from the descriptor named in
/// [`NOTICE_ENV`].
fn child_page() -> Option<&'static Page> {
    static PAGE: OnceLock<Option<Page>> = OnceLock::new();
    PAGE.get_or_init(|| {
        let fd: i32 = std::env::var(NOTICE_ENV).ok()?.parse().ok()?;
        // SAFETY: `fd` is the parent's notice descriptor, inherited across exec; it is
        // dup'ed, so the process keeps its own copy whatever else closes `fd`.
        let owned = unsafe { OwnedFd::from_raw_fd(libc::dup(fd)) };
        Page::map(&owned).ok()
    })
    .as_ref()
}

/// Bytes of a notice page.
const PAGE: usize = 4096;
/// Longest point name a notice carries.
const MAX_NAME: usize = 256;

/// The shared page: a state word (0 nothing yet, 1 reached), the reporter's pid, the
/// name's length, then its bytes.
struct Page {
    map: MmapRaw,
}

impl Page {
    fn map(fd: &OwnedFd) -> std::io::Result<Page> {
        let file = std::fs::File::from(fd.try_clone()?);
        Ok(Page {
            map: MmapOptions::new().len(PAGE).map_raw(&file)?,
        })
    }

    fn word32(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the mapping holds PAGE bytes, page-aligned; word `i` (i < 4) lies inside
        // and is aligned. AtomicU32 is valid for any bits, and every access to the page
        // goes through atomics.
        unsafe { &*self.map.as_ptr().add(4 * i).cast::<AtomicU32>() }
    }

    fn name_words(&self) -> &[AtomicU64] {
        // SAFETY: bytes 16..16+MAX_NAME lie inside the page and are 8-aligned; accessed
        // only through atomics.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(16).cast::<AtomicU64>(), MAX_NAME / 8)
        }
    }

    fn publish(&self, name: &str) {
        let bytes = &name.as_bytes()[..name.len().min(MAX_NAME)];
        for (i, w) in self.name_words().iter().enumerate() {
            let mut b = [0u8; 8];
            for (j, x) in b.iter_mut().enumerate() {
                *x = bytes.get(8 * i + j).copied().unwrap_or(0);
            }
            w.store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
        self.word32(1).store(std::process::id(), Ordering::Relaxed);
        self.word32(2).store(bytes.len() as u32, Ordering::Relaxed);
        // SYNC POINT: publishes the name and pid to the parent's acquire load.
        self.word32(0).store(1, Ordering::Release);
        crate::sync::futex_wake(self.word32(0), u32::MAX);
    }

    fn read(&self) -> Option<Reached> {
        if self.word32(0).load(Ordering::Acquire) == 0 {
            return None;
        }
        let len = (self.word32(2).load(Ordering::Relaxed) as usize).min(MAX_NAME);
        let mut bytes: Vec<u8> = self
            .name_words()
            .iter()
            .flat_map(|w| w.load(Ordering::Relaxed).to_le_bytes())
            .collect();
        bytes.truncate(len);
        Some(Reached {
            point: String::from_utf8_lossy(&bytes).into_owned(),
            pid: self.word32(1).load(Ordering::Relaxed),
        })
    }
}

/// What a child reported through a [`Notice`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reached {
    /// The pause point it reached.
    pub point: String,
    /// Its pid.
    pub pid: u32,
}

/// A page of shared memory through which a child process reports the pause point it
/// reached. Make one per child, pass [`env`](Self::env) to it, then [`wait`](Self::wait).
#[derive(Debug)]
pub struct Notice {
    fd: OwnedFd,
    page: Page,
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page").finish_non_exhaustive()
    }
}

impl Notice {
    /// A fresh notice: an anonymous shared page (`memfd`) whose descriptor children inherit.
    ///
    /// # Errors
    ///
    /// The operating system's, if the page cannot be made.
    pub fn new() -> std::io::Result<Notice> {
        // No close-on-exec: the child that is to report must inherit the descriptor.
        // SAFETY: the name is a valid NUL-terminated string; flags 0 are valid.
        let raw = unsafe { libc::memfd_create(c"shmval-fault-notice".as_ptr(), 0) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor memfd_create just returned to us alone.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        std::fs::File::from(fd.try_clone()?).set_len(PAGE as u64)?;
        let page = Page::map(&fd)?;
        Ok(Notice { fd, page })
    }

    /// The environment variable to give the child: `(NOTICE_ENV, descriptor)`.
    pub fn env(&self) -> (&'static str, String) {
        (NOTICE_ENV, self.fd.as_raw_fd().to_string())
    }

    /// What has been reported so far, if anything.
    pub fn reached(&self) -> Option<Reached> {
        self.page.read()
    }

    /// Sleeps until a child reports reaching its point, up to `timeout`.
    pub fn wait(&self, timeout: Duration) -> Option<Reached> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.page.read() {
                return Some(r);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            crate::sync::futex_wait(self.page.word32(0), 0, Some(left));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unarmed_or_other_point_returns() {
        pause_point("fault.test.unarmed");
        arm("fault.test.some-other-point");
        pause_point("fault.test.unarmed");
        disarm();
        pause_point("fault.test.some-other-point");
    }

    #[test]
    fn a_notice_carries_the_point_and_wakes_the_waiter() {
        let n = Notice::new().unwrap();
        assert_eq!(n.reached(), None);
        assert_eq!(n.wait(Duration::from_millis(1)), None);
        let (_, fd) = n.env();
        let fd: i32 = fd.parse().unwrap();
        // SAFETY: a dup of the notice's own descriptor, owned here.
        let other = unsafe { OwnedFd::from_raw_fd(libc::dup(fd)) };
        let page = Page::map(&other).unwrap();
        let t = std::thread::spawn(move || page.publish("ring.send.committed"));
        let r = n.wait(Duration::from_secs(60)).unwrap();
        t.join().unwrap();
        assert_eq!(r.point, "ring.send.committed");
        assert_eq!(r.pid, std::process::id());
    }
}
