//! Helpers shared by the integration tests: unique region names that are removed even when
//! a test fails, and child processes made by re-executing the test binary in a role.
//!
//! Each test binary that spawns children has a test named `child_role` that calls
//! [`role_entry`]; a child is the same binary run with `--exact child_role` and the role's
//! name in the environment. Re-executing (rather than `fork` in the multi-threaded test
//! harness) gives the child a clean process.

#![allow(dead_code)]
// each test binary uses a part of this module
// Test helpers count with std atomics; the crate's loom shim is internal.
#![allow(clippy::disallowed_types)]

pub mod held;
pub mod kills;
pub mod pools;
pub mod vals;

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmval::fault::Notice;
use shmval::region::{header, RegionName};

const ROLE_VAR: &str = "SHMVAL_TEST_ROLE";
const ARGS_VAR: &str = "SHMVAL_TEST_ARGS";

/// A region name unique to this process and call, removed (with any half-built private
/// names beside it) when dropped, even if the test panics.
pub struct TestName {
    pub name: RegionName,
}

impl TestName {
    pub fn new(tag: &str) -> TestName {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = RegionName::new(format!(
            "shmval-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
        .expect("test names are valid");
        remove_files(name.as_str());
        TestName { name }
    }

    pub fn as_str(&self) -> &str {
        self.name.as_str()
    }
}

impl std::ops::Deref for TestName {
    type Target = RegionName;
    fn deref(&self) -> &RegionName {
        &self.name
    }
}

impl Drop for TestName {
    fn drop(&mut self) {
        remove_files(self.name.as_str());
    }
}

fn remove_files(name: &str) {
    let path = Path::new("/dev/shm").join(name);
    if std::fs::remove_file(&path).is_err() {
        // A test may squat the name with a directory.
        let _ = std::fs::remove_dir(&path);
    }
    if let Ok(dir) = std::fs::read_dir("/dev/shm") {
        let tmp = format!("{name}.tmp-");
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(&tmp) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A child process killed and reaped when dropped, so a failing test leaves none behind.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    /// Waits for the child to exit, up to `limit`; kills it and panics past that.
    pub fn wait_ok(mut self, limit: Duration) {
        let mut child = self.0.take().expect("child present");
        let start = Instant::now();
        loop {
            match child.try_wait().expect("try_wait") {
                Some(status) => {
                    assert!(status.success(), "child failed: {status}");
                    return;
                }
                None if start.elapsed() > limit => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("child did not finish within {limit:?}");
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("child present").id()
    }

    /// The child's exit status if it has ended (and is reaped now), without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.0
            .as_mut()
            .expect("child present")
            .try_wait()
            .expect("try_wait")
    }

    /// Sends `sig` to the child, which is not reaped yet (so the pid is still its own).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, sig).expect("signal the child");
    }

    /// Stops the child (SIGSTOP) and waits until the kernel shows it stopped.
    pub fn stop(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
        let pid = self.pid();
        assert!(
            wait_until(Duration::from_secs(30), || proc_state(pid, pid)
                == Some('T')),
            "the child {pid} never showed as stopped"
        );
    }

    /// Sends SIGKILL and reaps the child.
    pub fn kill(mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts this test binary again as a child running `role` with `args`.
pub fn spawn_role(role: &str, args: &[&str]) -> ChildGuard {
    spawn_role_env(role, args, &[])
}

/// Like [`spawn_role`], with extra environment variables (e.g. a fault notice's).
pub fn spawn_role_env(role: &str, args: &[&str], env: &[(&str, String)]) -> ChildGuard {
    role_command(role, args, env, Stdio::null, Stdio::inherit)
}

/// Like [`spawn_role`], with the child's standard input and output piped to this process
/// (take them from the guard's `Child`). The child's test harness prints its own lines to
/// standard output too: a protocol over it must tell its lines apart.
pub fn spawn_role_stdio(role: &str, args: &[&str]) -> ChildGuard {
    role_command(role, args, &[], Stdio::piped, Stdio::inherit)
}

/// Like [`spawn_role`], with the child's standard error piped to this process (take it
/// from the guard's `Child`): for what the library says there.
pub fn spawn_role_stderr(role: &str, args: &[&str]) -> ChildGuard {
    role_command(role, args, &[], Stdio::null, Stdio::piped)
}

/// Starts this test binary as a child running `role`, its standard input and output
/// made by `stdio`, its standard error by `stderr`.
fn role_command(
    role: &str,
    args: &[&str],
    env: &[(&str, String)],
    stdio: fn() -> Stdio,
    stderr: fn() -> Stdio,
) -> ChildGuard {
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args([
            "--exact",
            "child_role",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE_VAR, role)
        .env(ARGS_VAR, args.join("\u{1f}"))
        .stdin(stdio())
        .stdout(stdio())
        .stderr(stderr())
        .spawn()
        .expect("spawn child");
    ChildGuard(Some(child))
}

/// A role a child can run: its name and its body (given the spawn arguments).
pub type Role = (&'static str, fn(&[String]));

/// Called by each binary's `child_role` test: in a child, runs the named role and exits
/// the process (0 on return, 101 on panic); in the parent test run, returns at once.
pub fn role_entry(roles: &[Role]) {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let args: Vec<String> = std::env::var(ARGS_VAR)
        .unwrap_or_default()
        .split('\u{1f}')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let f = roles
        .iter()
        .find(|(n, _)| *n == role)
        .unwrap_or_else(|| panic!("unknown role {role}"))
        .1;
    let code = match std::panic::catch_unwind(|| f(&args)) {
        Ok(()) => 0,
        Err(_) => 101,
    };
    // Ends the process without the C library's exit handlers: a role that changed its
    // uid leaves the test harness's other thread to finish the signal glibc uses to change
    // every thread's ids, and that handler crashes (SIGSEGV) when `exit` tears the process
    // down under it. Nothing here needs those handlers once the output is flushed.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` ends the process at once; it has no preconditions.
    unsafe { libc::_exit(code) }
}

/// How long a child may take to reach its pause point.
pub const PAUSE_LIMIT: Duration = Duration::from_secs(60);

/// Starts `role` with `args` and a fault notice, and returns it once the child reports
/// that it reached pause point `point` (it sleeps there, holding what it holds, until it is
/// killed). Panics if the child ends first, reports another point, or takes longer than
/// [`PAUSE_LIMIT`].
pub fn spawn_paused(role: &str, args: &[&str], point: &str) -> ChildGuard {
    match try_spawn_paused(role, args, point) {
        Ok(child) => child,
        Err(status) => panic!("the child ended ({status}) without reaching {point}"),
    }
}

/// As [`spawn_paused`], but a child that ends without reaching the point is its exit
/// status (for a test that walks a point's every passing until the operation is done).
pub fn try_spawn_paused(
    role: &str,
    args: &[&str],
    point: &str,
) -> Result<ChildGuard, std::process::ExitStatus> {
    let notice = Notice::new().expect("a fault notice");
    let mut child = spawn_role_env(role, args, &[notice.env()]);
    let start = Instant::now();
    loop {
        if let Some(r) = notice.wait(Duration::from_millis(50)) {
            assert_eq!(r.point, point, "the child paused at another point");
            assert_eq!(r.pid, child.pid(), "another process reported {point}");
            return Ok(child);
        }
        if let Some(status) = child.try_wait() {
            return Err(status);
        }
        assert!(
            start.elapsed() < PAUSE_LIMIT,
            "the child did not reach {point} within {PAUSE_LIMIT:?}"
        );
    }
}

/// The state letter of thread `tid` of process `pid` (`R`, `S`, `D`, `T`, `Z`...), from
/// `/proc`; `None` once it is gone.
pub fn proc_state(pid: u32, tid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Whether thread `tid` of process `pid` is blocked now in one of the system calls
/// `calls` (from `/proc/PID/task/TID/syscall`). Where that file cannot be read, whether
/// the thread sleeps at all.
pub fn blocked_in(pid: u32, tid: u32, calls: &[libc::c_long]) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")) {
        Ok(text) => {
            text.split_whitespace()
                .next()
                .and_then(|n| n.parse::<libc::c_long>().ok())
                .is_some_and(|n| calls.contains(&n))
                && proc_state(pid, tid) == Some('S')
        }
        Err(_) => proc_state(pid, tid) == Some('S'),
    }
}

/// The calling thread's id, for [`blocked_in`] from another thread.
pub fn this_thread() -> u32 {
    nix::unistd::gettid().as_raw() as u32
}

/// Polls `cond` every millisecond until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// The entries of `/dev/shm` that belong to `name`: the name itself and any private build
/// names beside it (`<name>.tmp-*`).
pub fn shm_files_of(name: &RegionName) -> Vec<String> {
    let tmp = format!("{name}.tmp-");
    std::fs::read_dir("/dev/shm")
        .expect("read /dev/shm")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f == name.as_str() || f.starts_with(&tmp))
        .collect()
}

/// Byte offsets of the header's fields, from the table in `src/region/header.rs`.
pub mod field {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const HEADER_SIZE: usize = 12;
    pub const FINGERPRINT: usize = 16;
    pub const SIZE: usize = 24;
    pub const ID: usize = 32;
    pub const CREATOR_PID: usize = 48;
    pub const CREATOR_START: usize = 56;
    pub const STATE: usize = 64;
    pub const MIXED: usize = 68;
    pub const ROOT: usize = 72;
    pub const CREATOR_PID_NS: usize = 80;
    pub const COMMITTED: usize = 96;
}

/// The bytes of a valid, ready region file of `size` bytes (at least the header): the
/// header image for layout fingerprint `layout`, then zeros.
pub fn region_image(size: u64, layout: u64) -> Vec<u8> {
    let mut v = vec![0u8; size as usize];
    let h = header::encode_for_tests(size, layout);
    v[..h.len()].copy_from_slice(&h);
    v
}

pub fn put_u32(image: &mut [u8], at: usize, v: u32) {
    image[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

pub fn put_u64(image: &mut [u8], at: usize, v: u64) {
    image[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Writes `bytes` to `/dev/shm/<name>` with exactly `mode` (whatever the umask),
/// replacing any file there.
pub fn write_shm_file_mode(name: &RegionName, bytes: &[u8], mode: u32) {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = name.file_path();
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .expect("create crafted file");
    f.write_all(bytes).expect("write crafted file");
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .expect("chmod crafted file");
}

/// Writes `bytes` to `/dev/shm/<name>` with mode 0600.
pub fn write_shm_file(name: &RegionName, bytes: &[u8]) {
    write_shm_file_mode(name, bytes, 0o600);
}

/// This process's pid namespace, as a region header records it: the inode number of
/// `/proc/self/ns/pid`.
pub fn own_pid_ns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid")
        .expect("read /proc/self/ns/pid")
        .ino()
}

/// Whether the tests run as root (so they can change owners and drop privileges).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The uid and gid of `nobody`, which tests as root hand files to or become.
pub const NOBODY: u32 = 65534;
