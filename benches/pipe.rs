//! Pipe benchmarks, group `pipe`: handing a value from one process to another through a
//! [`Pipe`], beside the same hand-off over `pipe(2)`, a Unix stream socket and (between two
//! threads of one process) crossbeam-channel, in one run, so that the ratios are read
//! directly.
//!
//! - `roundtrip/<transport>/<cores>/<bytes>`: one ping-pong. This process sends a payload
//!   of `bytes` bytes to a child process, which sends it back.
//!   - `shmval-block`: the payload is an `f64` array shared once in the pool
//!     (`pool.array_from`); its handle goes through pipe `a`, the child moves it into pipe
//!     `b`. Both sides receive with the pipe's blocking `dequeue` (a short spin, then a
//!     futex sleep). The payload is never copied, so the time should not depend on its
//!     size.
//!   - `shmval-spin`: the same, but both receivers busy-poll `try_dequeue` and never sleep.
//!   - `pipe2`, `uds`: the payload's bytes (the raw bytes of the same `f64` array: no
//!     encoding work is charged) are written into a `pipe(2)` pair or a
//!     `UnixStream::pair`; the child `read_exact`s them and writes them back.
//!   - `crossbeam-block`, `crossbeam-spin`: two threads of this process move the
//!     `Vec<f64>` itself (a pointer, like a handle) through two bounded crossbeam channels,
//!     receiving with `recv` or busy-polling `try_recv`.
//! - `stream/<transport>/<cores>/<p>to<c>`: one-way throughput, in items per second, of
//!   small values: `p` producers each share a boxed integer and enqueue its handle, `c`
//!   consumers in the child process dequeue, read and drop it (so each item is also one
//!   allocation and one free in the pool). `crossbeam` does the same with `Box<i64>`
//!   between threads.
//!
//! `<cores>`: `diff-core` pins this process (or thread) to one CPU and the child process
//! (or the peer threads) to another; `same-core` pins both to the first CPU. On a
//! virtual machine, waking a sleeper on the other CPU can cost tens of microseconds, so
//! the two placements differ by orders of magnitude for anything that sleeps. Two
//! readings need care:
//!
//! - `shmval-block/diff-core` mixes two regimes: the receiver's short spin usually sees
//!   the reply arrive, but a hop that outlasts it sleeps and costs a cross-CPU wake-up,
//!   so a few slow hops move the mean from run to run.
//! - `shmval-spin/same-core` measures the scheduler, not the pipe: a busy poller holds
//!   the only CPU until its time slice ends, so each hop waits for a tick. It is kept so
//!   that every cross-process figure has its same-core twin (`crossbeam-spin`, within one
//!   process, has none).
//!
//! The child is this bench binary run again with `SHMVAL_BENCH_ROLE` set. It dies with
//! this process (`PR_SET_PDEATHSIG`), exits when its pipes close, and a watchdog kills it
//! if a benchmark overruns. Every wait in the bench has a deadline, and each region's name
//! is removed from `/dev/shm` as soon as the child has attached, so nothing is left behind
//! even if the bench is killed.
//!
//! Defaults keep `cargo bench --bench pipe` to about two minutes on 2 CPUs; criterion's
//! `--warm-up-time` and `--measurement-time` override them.

// criterion_group! style functions without doc comments.
#![allow(missing_docs)]
// std atomics are fine here; the crate's loom shim is for library code.
#![allow(clippy::disallowed_types)]

use std::env;
use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use shmval::queue::{Pipe, RecvError, SendError};
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{PoolExt, ShmVal, Val};

const ROLE: &str = "SHMVAL_BENCH_ROLE";
const REGION: &str = "SHMVAL_BENCH_REGION";
const MODE: &str = "SHMVAL_BENCH_MODE";
const CPU: &str = "SHMVAL_BENCH_CPU";
const SIZE: &str = "SHMVAL_BENCH_SIZE";
const THREADS: &str = "SHMVAL_BENCH_THREADS";
const PARENT: &str = "SHMVAL_BENCH_PARENT";

/// Payload sizes of the round trips, in bytes.
const PAYLOADS: [usize; 3] = [64, 4096, 1 << 20];
/// The longest any single hand-off may take before the bench gives up (with a panic).
const WAIT: Duration = Duration::from_secs(10);
/// How long a child may wait for its next message before it gives up.
const CHILD_IDLE: Duration = Duration::from_secs(60);
/// How long one child may live: its benchmark has overrun past this, and the watchdog
/// kills it (which makes this process's pending read or receive fail).
const CHILD_LIFETIME: Duration = Duration::from_secs(300);
/// Slots in the streaming pipe and channel.
const STREAM_CAP: u64 = 1024;
/// The item that ends one streaming batch.
const END: i64 = -1;

// ---------------------------------------------------------------------------------------
// Pinning

/// The two CPUs the bench uses: this process runs on `first`; a peer on `other` for
/// `diff-core`, on `first` for `same-core`.
#[derive(Clone, Copy)]
struct Cpus {
    first: usize,
    second: Option<usize>,
}

impl Cpus {
    fn detect() -> Cpus {
        let set = sched_getaffinity(Pid::from_raw(0)).expect("sched_getaffinity");
        let mut allowed = (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false));
        let first = allowed.next().expect("at least one CPU");
        Cpus {
            first,
            second: allowed.next(),
        }
    }

    /// The placements this machine can run, with the CPU the peer goes on.
    fn placements(self) -> Vec<(&'static str, usize)> {
        let mut v = Vec::new();
        match self.second {
            Some(c) => v.push(("diff-core", c)),
            None => eprintln!("pipe bench: one CPU only, no diff-core figures"),
        }
        v.push(("same-core", self.first));
        v
    }
}

/// Pins the calling thread (and the threads it starts afterwards) to `cpu`.
fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu).expect("a CPU number within CpuSet");
    sched_setaffinity(Pid::from_raw(0), &set).expect("sched_setaffinity");
}

/// Restores the calling thread's affinity when dropped.
struct Unpin(CpuSet);

impl Unpin {
    fn save() -> Unpin {
        Unpin(sched_getaffinity(Pid::from_raw(0)).expect("sched_getaffinity"))
    }
}

impl Drop for Unpin {
    fn drop(&mut self) {
        let _ = sched_setaffinity(Pid::from_raw(0), &self.0);
    }
}

// ---------------------------------------------------------------------------------------
// Child processes

/// A child process running a role: killed by a watchdog if it outlives
/// [`CHILD_LIFETIME`], and killed and reaped when dropped, even while a panic unwinds.
struct Peer {
    child: Option<Child>,
    stop: Option<mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<()>>,
}

impl Peer {
    /// Runs this binary again as `role` pinned to `cpu`, with the given standard input and
    /// output (the byte baselines talk over them).
    fn spawn(role: &str, cpu: usize, env: &[(&str, String)], stdin: Stdio, stdout: Stdio) -> Peer {
        let exe = env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.env(ROLE, role)
            .env(CPU, cpu.to_string())
            .env(PARENT, std::process::id().to_string())
            .stdin(stdin)
            .stdout(stdout);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn the child process");
        // `cmd` drops here, closing this process's copies of the child's ends.
        drop(cmd);
        let pid = Pid::from_raw(child.id() as i32);
        let (stop, stopped) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHILD_LIFETIME) {
                eprintln!("pipe bench: child {pid} overran {CHILD_LIFETIME:?}; killing it");
                // The child is not reaped while the watchdog runs (see `stop_watchdog`),
                // so the pid is still the child's.
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        });
        Peer {
            child: Some(child),
            stop: Some(stop),
            watchdog: Some(watchdog),
        }
    }

    fn stop_watchdog(&mut self) {
        drop(self.stop.take());
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
    }

    /// Waits (up to [`WAIT`]) for the child to exit by itself, after its pipes were
    /// closed; kills it past that. Panics if it failed.
    fn finish(mut self) {
        self.stop_watchdog();
        let mut child = self.child.take().expect("child present");
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            if start.elapsed() > WAIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the child did not exit within {WAIT:?} after its pipes closed");
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(status.success(), "the child failed: {status}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop_watchdog();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// A region name unique to this process and call.
fn region_name(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "shmval-bench-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The start of every child: die with the parent, run on the CPU asked for.
fn child_setup() {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).expect("set_pdeathsig");
    // The parent may have died before the line above: then we were re-parented already.
    let parent: i32 = env_var(PARENT).parse().expect("a pid");
    if nix::unistd::getppid() != Pid::from_raw(parent) {
        std::process::exit(1);
    }
    pin(env_var(CPU).parse().expect("a CPU number"));
}

fn run_child(role: &str) {
    child_setup();
    match role {
        "shm-echo" => shm_echo(),
        "byte-echo" => byte_echo(),
        "shm-sink" => shm_sink(),
        _ => panic!("unknown role {role}"),
    }
}

// ---------------------------------------------------------------------------------------
// Sending and receiving handles, blocking or spinning, always with a deadline

/// Receives from `p`: with `spin`, busy-polling `try_dequeue` until `limit` has passed;
/// otherwise with the pipe's own `dequeue`. `Err` only for `Closed`; other errors panic.
fn recv(p: &Pipe, spin: bool, limit: Duration) -> Result<ShmVal, RecvError> {
    if !spin {
        return match p.dequeue(limit) {
            Err(RecvError::Timeout) => panic!("nothing arrived within {limit:?}"),
            Err(RecvError::Closed) => Err(RecvError::Closed),
            Err(e) => panic!("dequeue: {e}"),
            ok => ok,
        };
    }
    let start = Instant::now();
    let mut polls = 0u32;
    loop {
        match p.try_dequeue() {
            Err(RecvError::Empty) => {}
            Err(RecvError::Closed) => return Err(RecvError::Closed),
            Err(e) => panic!("try_dequeue: {e}"),
            ok => return ok,
        }
        polls = polls.wrapping_add(1);
        if polls % 4096 == 0 && start.elapsed() > limit {
            panic!("nothing arrived within {limit:?}");
        }
        std::hint::spin_loop();
    }
}

/// Sends `v` into `p`: with `spin`, retrying `try_enqueue` while full; otherwise with
/// `enqueue`. Panics on any error or past [`WAIT`].
fn send(p: &Pipe, mut v: ShmVal, spin: bool) {
    if !spin {
        p.enqueue(v, WAIT).expect("enqueue");
        return;
    }
    let start = Instant::now();
    loop {
        match p.try_enqueue(v) {
            Ok(()) => return,
            Err(SendError::Full(back)) if start.elapsed() < WAIT => v = back,
            Err(e) => panic!("try_enqueue: {e}"),
        }
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------
// Round trips

/// The child of `roundtrip/shmval-*`: moves each handle from pipe `a` into pipe `b` until
/// `a` closes.
fn shm_echo() {
    let region = env_var(REGION);
    let spin = env_var(MODE) == "spin";
    let a = ClientSide::new(region.as_str(), "a")
        .timeout(WAIT)
        .start()
        .expect("attach pipe a");
    let b = ClientSide::new(region.as_str(), "b")
        .timeout(WAIT)
        .start()
        .expect("attach pipe b");
    while let Ok(v) = recv(a.pipe(), spin, CHILD_IDLE) {
        send(b.pipe(), v, spin);
    }
}

/// The child of `roundtrip/pipe2` and `roundtrip/uds`: echoes messages of `SIZE` bytes
/// from standard input to standard output until end of file.
fn byte_echo() {
    let size: usize = env_var(SIZE).parse().expect("a size");
    let mut input = File::from(
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .expect("dup stdin"),
    );
    let mut output = File::from(
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .expect("dup stdout"),
    );
    let mut buf = vec![0u8; size];
    loop {
        // End of file before a message: the parent is done.
        match input.read(&mut buf[..1]) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => panic!("read: {e}"),
        }
        input.read_exact(&mut buf[1..]).expect("read a message");
        output.write_all(&buf).expect("write it back");
    }
}

/// The payload of `bytes` bytes: an `f64` array.
fn floats(bytes: usize) -> Vec<f64> {
    (0..bytes / 8).map(|i| i as f64 * 0.5).collect()
}

/// Its raw bytes (little-endian), what the byte baselines carry.
fn raw_bytes(f: &[f64]) -> Vec<u8> {
    f.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn roundtrip_shm(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus) {
    for spin in [false, true] {
        let transport = if spin { "shmval-spin" } else { "shmval-block" };
        for (cores, peer_cpu) in cpus.placements() {
            for size in PAYLOADS {
                let name = region_name("rt");
                let main = ShmMain::new(name.as_str(), 16 << 20)
                    .start()
                    .expect("create the bench region");
                let a = ServerSide::new(name.as_str(), "a", 4)
                    .start()
                    .expect("pipe a");
                let b = ServerSide::new(name.as_str(), "b", 4)
                    .start()
                    .expect("pipe b");
                let child = Peer::spawn(
                    "shm-echo",
                    peer_cpu,
                    &[
                        (REGION, name.clone()),
                        (MODE, if spin { "spin" } else { "block" }.into()),
                    ],
                    Stdio::null(),
                    Stdio::null(),
                );
                let (a, b) = (a.pipe(), b.pipe());
                let v = a.pool().array_from(&floats(size)[..]).expect("share");
                let at = v.offset();
                // One round trip untimed: the child has attached (so the name can go).
                send(a, v, spin);
                let mut held = Some(recv(b, spin, WAIT).expect("the first echo"));
                main.region().unlink();
                g.bench_function(format!("roundtrip/{transport}/{cores}/{size}"), |bn| {
                    bn.iter_custom(|iters| {
                        let mut v = held.take().expect("the handle is home");
                        let start = Instant::now();
                        for _ in 0..iters {
                            send(a, v, spin);
                            v = recv(b, spin, WAIT).expect("echo");
                        }
                        let t = start.elapsed();
                        assert_eq!(v.offset(), at, "the same handle came back");
                        held = Some(v);
                        t
                    })
                });
                a.close().expect("close pipe a");
                child.finish();
            }
        }
    }
}

fn roundtrip_bytes(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus) {
    for transport in ["pipe2", "uds"] {
        for (cores, peer_cpu) in cpus.placements() {
            for size in PAYLOADS {
                // (ours to write, child's stdin), (child's stdout, ours to read)
                let (mut tx, mut rx, child_in, child_out): (File, File, OwnedFd, OwnedFd) =
                    if transport == "pipe2" {
                        let (a_r, a_w) =
                            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
                        let (b_r, b_w) =
                            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
                        (File::from(a_w), File::from(b_r), a_r, b_w)
                    } else {
                        let (ours, theirs) = UnixStream::pair().expect("socketpair");
                        ours.set_read_timeout(Some(WAIT)).expect("set_read_timeout");
                        let ours = OwnedFd::from(ours);
                        let theirs = OwnedFd::from(theirs);
                        (
                            File::from(ours.try_clone().expect("dup")),
                            File::from(ours),
                            theirs.try_clone().expect("dup"),
                            theirs,
                        )
                    };
                let child = Peer::spawn(
                    "byte-echo",
                    peer_cpu,
                    &[(SIZE, size.to_string())],
                    Stdio::from(child_in),
                    Stdio::from(child_out),
                );
                let payload = raw_bytes(&floats(size));
                let mut back = vec![0u8; size];
                tx.write_all(&payload).expect("write");
                rx.read_exact(&mut back).expect("the first echo");
                g.bench_function(format!("roundtrip/{transport}/{cores}/{size}"), |bn| {
                    bn.iter_custom(|iters| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            tx.write_all(black_box(&payload)).expect("write");
                            rx.read_exact(&mut back).expect("echo");
                        }
                        start.elapsed()
                    })
                });
                assert_eq!(back, payload, "the bytes came back");
                drop((tx, rx));
                child.finish();
            }
        }
    }
}

fn roundtrip_crossbeam(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus) {
    for spin in [false, true] {
        let transport = if spin {
            "crossbeam-spin"
        } else {
            "crossbeam-block"
        };
        for (cores, peer_cpu) in cpus.placements() {
            // Two spinners on one CPU only measure the scheduler's time slice.
            if spin && cores == "same-core" {
                continue;
            }
            for size in PAYLOADS {
                let (a_tx, a_rx) = crossbeam_channel::bounded::<Vec<f64>>(4);
                let (b_tx, b_rx) = crossbeam_channel::bounded::<Vec<f64>>(4);
                let echo = std::thread::spawn(move || {
                    pin(peer_cpu);
                    while let Ok(v) = cb_recv(&a_rx, spin) {
                        b_tx.send(v).expect("send back");
                    }
                });
                let mut held = Some(floats(size));
                g.bench_function(format!("roundtrip/{transport}/{cores}/{size}"), |bn| {
                    bn.iter_custom(|iters| {
                        let mut v = held.take().expect("the payload is home");
                        let start = Instant::now();
                        for _ in 0..iters {
                            a_tx.send(v).expect("send");
                            v = cb_recv(&b_rx, spin).expect("echo");
                        }
                        let t = start.elapsed();
                        held = Some(v);
                        t
                    })
                });
                drop(a_tx);
                echo.join().expect("the echo thread");
            }
        }
    }
}

/// Receives from a crossbeam channel, blocking or busy-polling, within [`WAIT`]; `Err`
/// once the channel is closed.
fn cb_recv<T>(rx: &crossbeam_channel::Receiver<T>, spin: bool) -> Result<T, ()> {
    use crossbeam_channel::{RecvTimeoutError, TryRecvError};
    if !spin {
        return match rx.recv_timeout(WAIT) {
            Ok(v) => Ok(v),
            Err(RecvTimeoutError::Disconnected) => Err(()),
            Err(RecvTimeoutError::Timeout) => panic!("nothing arrived within {WAIT:?}"),
        };
    }
    let start = Instant::now();
    let mut polls = 0u32;
    loop {
        match rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(TryRecvError::Disconnected) => return Err(()),
            Err(TryRecvError::Empty) => {}
        }
        polls = polls.wrapping_add(1);
        if polls % 4096 == 0 && start.elapsed() > WAIT {
            panic!("nothing arrived within {WAIT:?}");
        }
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------
// Streaming

/// The child of `stream/shmval`: `THREADS` consumers dequeue from `items` until they meet
/// an [`END`], and then each acknowledges through `ack`; until `items` closes.
fn shm_sink() {
    let region = env_var(REGION);
    let threads: usize = env_var(THREADS).parse().expect("a thread count");
    let items = ClientSide::new(region.as_str(), "items")
        .timeout(WAIT)
        .start()
        .expect("attach items");
    let ack = ClientSide::new(region.as_str(), "ack")
        .timeout(WAIT)
        .start()
        .expect("attach ack");
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Ok(v) = recv(items.pipe(), false, CHILD_IDLE) {
                    let n = v.to_val().expect("read an item");
                    drop(v);
                    if n == Val::I64(END) {
                        let token = ack.pool().share(&Val::I64(0)).expect("share");
                        send(ack.pipe(), token, false);
                    }
                }
            });
        }
    });
}

/// How many of `iters` items producer `p` of `n` sends.
fn share_of(iters: u64, n: usize, p: usize) -> u64 {
    iters / n as u64 + u64::from((p as u64) < iters % n as u64)
}

/// Runs `f(p)` for each producer `p` of `n`: on this thread if there is one, else on
/// scoped threads (which inherit this thread's CPU).
fn producers(n: usize, f: impl Fn(usize) + Sync) {
    if n == 1 {
        f(0);
        return;
    }
    std::thread::scope(|s| {
        for p in 0..n {
            let f = &f;
            s.spawn(move || f(p));
        }
    });
}

fn stream_shm(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus) {
    for (cores, peer_cpu) in cpus.placements() {
        for n in [1usize, 2] {
            let name = region_name("st");
            let main = ShmMain::new(name.as_str(), 16 << 20)
                .start()
                .expect("create the bench region");
            let items = ServerSide::new(name.as_str(), "items", STREAM_CAP)
                .start()
                .expect("pipe items");
            let ack = ServerSide::new(name.as_str(), "ack", 16)
                .start()
                .expect("pipe ack");
            let child = Peer::spawn(
                "shm-sink",
                peer_cpu,
                &[(REGION, name.clone()), (THREADS, n.to_string())],
                Stdio::null(),
                Stdio::null(),
            );
            let (items, ack, pool) = (items.pipe(), ack.pipe(), items.pool());
            let batch = |iters: u64| {
                let start = Instant::now();
                producers(n, |p| {
                    for i in 0..share_of(iters, n, p) {
                        let v = pool.share(&Val::I64(i as i64)).expect("share");
                        send(items, v, false);
                    }
                });
                for _ in 0..n {
                    send(items, pool.share(&Val::I64(END)).expect("share"), false);
                }
                for _ in 0..n {
                    drop(recv(ack, false, WAIT).expect("an acknowledgement"));
                }
                start.elapsed()
            };
            // One batch untimed: the child has attached (so the name can go).
            batch(1);
            main.region().unlink();
            g.bench_function(format!("stream/shmval/{cores}/{n}to{n}"), |bn| {
                bn.iter_custom(batch)
            });
            items.close().expect("close items");
            child.finish();
        }
    }
}

fn stream_crossbeam(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus) {
    for (cores, peer_cpu) in cpus.placements() {
        for n in [1usize, 2] {
            let (tx, rx) = crossbeam_channel::bounded::<Box<i64>>(STREAM_CAP as usize);
            let (ack_tx, ack_rx) = crossbeam_channel::bounded::<()>(16);
            let consumers: Vec<_> = (0..n)
                .map(|_| {
                    let (rx, ack_tx) = (rx.clone(), ack_tx.clone());
                    std::thread::spawn(move || {
                        pin(peer_cpu);
                        while let Ok(v) = cb_recv(&rx, false) {
                            if *black_box(v) == END {
                                ack_tx.send(()).expect("acknowledge");
                            }
                        }
                    })
                })
                .collect();
            drop((rx, ack_tx));
            g.bench_function(format!("stream/crossbeam/{cores}/{n}to{n}"), |bn| {
                bn.iter_custom(|iters| {
                    let start = Instant::now();
                    producers(n, |p| {
                        for i in 0..share_of(iters, n, p) {
                            tx.send(Box::new(i as i64)).expect("send");
                        }
                    });
                    for _ in 0..n {
                        tx.send(Box::new(END)).expect("send");
                    }
                    for _ in 0..n {
                        cb_recv(&ack_rx, false).expect("an acknowledgement");
                    }
                    start.elapsed()
                })
            });
            drop(tx);
            for c in consumers {
                c.join().expect("a consumer thread");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------

fn pipe_benches(c: &mut Criterion) {
    let cpus = Cpus::detect();
    let _restore = Unpin::save();
    // This thread (and the threads it starts) runs on the first CPU throughout.
    pin(cpus.first);
    let mut g = c.benchmark_group("pipe");
    g.sample_size(20);
    roundtrip_shm(&mut g, cpus);
    roundtrip_bytes(&mut g, cpus);
    roundtrip_crossbeam(&mut g, cpus);
    g.throughput(Throughput::Elements(1));
    stream_shm(&mut g, cpus);
    stream_crossbeam(&mut g, cpus);
    g.finish();
}

fn main() {
    if let Ok(role) = env::var(ROLE) {
        run_child(&role);
        return;
    }
    // Defaults for the whole group; criterion's own flags override them.
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    pipe_benches(&mut c);
    c.final_summary();
}
