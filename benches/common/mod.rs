//! Shared by the `pipe` and `peers` benches and the regression gate: pinning, child
//! processes (this binary re-executed with `SHMVAL_BENCH_ROLE`), blocking and spinning
//! hand-offs with deadlines, the echo and sink children, the floors (see [`floor`]), and the
//! criterion figures of the floors and our handle round trip, which both criterion benches
//! report.

// Each bench binary uses its own subset.
#![allow(dead_code)]

pub mod contend;
pub mod floor;
pub mod rigs;

use std::collections::HashMap;
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
use criterion::BenchmarkGroup;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use shmval::queue::{Pipe, RecvError, RecvTimeoutError, TryRecvError, TrySendError};
use shmval::sides::{ClientSide, ServerSide, ShmMain};
use shmval::{PoolExt, ShmVal, Tab, Tag, Val};
pub const ROLE: &str = "SHMVAL_BENCH_ROLE";
pub const REGION: &str = "SHMVAL_BENCH_REGION";
pub const MODE: &str = "SHMVAL_BENCH_MODE";
pub const CPU: &str = "SHMVAL_BENCH_CPU";
pub const SIZE: &str = "SHMVAL_BENCH_SIZE";
pub const THREADS: &str = "SHMVAL_BENCH_THREADS";
pub const PARENT: &str = "SHMVAL_BENCH_PARENT";

/// Payload sizes of the round trips, in bytes.
pub const PAYLOADS: [usize; 3] = [64, 4096, 1 << 20];
/// The longest any single hand-off may take before the bench gives up (with a panic).
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a child may wait for its next message before it gives up.
pub const CHILD_IDLE: Duration = Duration::from_secs(60);
/// How long one child may live: its benchmark has overrun past this, and the watchdog
/// kills it (which makes this process's pending read or receive fail).
pub const CHILD_LIFETIME: Duration = Duration::from_secs(300);
/// Slots in the streaming pipe and channel.
pub const STREAM_CAP: u64 = 1024;
/// Most values a streaming consumer takes per `dequeue_batch`.
pub const BATCH: usize = 64;
/// The item that ends one streaming batch.
pub const END: i64 = -1;

// ---------------------------------------------------------------------------------------
// Pinning

/// The two CPUs the bench uses: this process runs on `first`; a peer on `other` for
/// `diff-core`, on `first` for `same-core`.
#[derive(Clone, Copy)]
pub struct Cpus {
    pub first: usize,
    pub second: Option<usize>,
}

impl Cpus {
    pub fn detect() -> Cpus {
        let set = sched_getaffinity(Pid::from_raw(0)).expect("sched_getaffinity");
        let mut allowed = (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false));
        let first = allowed.next().expect("at least one CPU");
        Cpus {
            first,
            second: allowed.next(),
        }
    }

    /// The placements this machine can run, with the CPU the peer goes on.
    pub fn placements(self) -> Vec<(&'static str, usize)> {
        let mut v = Vec::new();
        match self.second {
            Some(c) => v.push(("diff-core", c)),
            None => eprintln!("bench: one CPU only, no diff-core figures"),
        }
        v.push(("same-core", self.first));
        v
    }
}

/// Pins the calling thread (and the threads it starts afterwards) to `cpu`.
pub fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu).expect("a CPU number within CpuSet");
    sched_setaffinity(Pid::from_raw(0), &set).expect("sched_setaffinity");
}

/// Restores the calling thread's affinity when dropped.
pub struct Unpin(CpuSet);

impl Unpin {
    pub fn save() -> Unpin {
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
pub struct Peer {
    child: Option<Child>,
    stop: Option<mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<()>>,
}

impl Peer {
    /// Runs this binary again as `role` pinned to `cpu`, with the given standard input and
    /// output (the byte baselines talk over them).
    pub fn spawn(
        role: &str,
        cpu: usize,
        env: &[(&str, String)],
        stdin: Stdio,
        stdout: Stdio,
    ) -> Peer {
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
                eprintln!("bench: child {pid} overran {CHILD_LIFETIME:?}; killing it");
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

    pub fn stop_watchdog(&mut self) {
        drop(self.stop.take());
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
    }

    /// Waits (up to [`WAIT`]) for the child to exit by itself, after its pipes were
    /// closed; kills it past that. Panics if it failed.
    pub fn finish(mut self) {
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

pub fn env_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// A region name unique to this process and call.
pub fn region_name(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "shmval-bench-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The start of every child: die with the parent, run on the CPU asked for.
pub fn child_setup() {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).expect("set_pdeathsig");
    // The parent may have died before the line above: then we were re-parented already.
    let parent: i32 = env_var(PARENT).parse().expect("a pid");
    if nix::unistd::getppid() != Pid::from_raw(parent) {
        std::process::exit(1);
    }
    pin(env_var(CPU).parse().expect("a CPU number"));
}

// ---------------------------------------------------------------------------------------
// Sending and receiving handles, blocking or spinning, always with a deadline

/// Polls after which a busy-polling wait is idle (about a millisecond; a hand-off being
/// measured takes microseconds).
pub const IDLE_POLLS: u32 = 1 << 16;
/// The sleep before each poll of an idle wait.
pub const IDLE_NAP: Duration = Duration::from_millis(1);

/// The limit of a busy-polling wait, which reads the clock only every 4096 polls and not
/// at all for a wait that ends sooner: a clock read costs tens of nanoseconds on a virtual
/// machine, as much as a cache-line transfer, and a timed hand-off must not time the
/// clock. The limit counts from the first read, about 4096 polls into the wait. A wait
/// that goes on past [`IDLE_POLLS`] naps between polls.
pub struct Patience {
    limit: Duration,
    polls: u32,
    since: Option<Instant>,
}

impl Patience {
    pub fn new(limit: Duration) -> Patience {
        Patience {
            limit,
            polls: 0,
            since: None,
        }
    }

    /// Counts one poll; `true` once the limit has passed. After [`IDLE_POLLS`] polls
    /// the wait is idle, not a hand-off in progress, and each poll first sleeps
    /// [`IDLE_NAP`]: a rig waiting its turn must not spin on the CPU the measured rig
    /// uses.
    pub fn exhausted(&mut self) -> bool {
        self.polls = self.polls.saturating_add(1);
        if self.polls > IDLE_POLLS {
            std::thread::sleep(IDLE_NAP);
            return self.exhausted_now();
        }
        self.polls % 4096 == 0 && self.exhausted_now()
    }

    /// Reads the clock now (for loops whose every turn is slow, like a futex wake-up);
    /// `true` once the limit has passed.
    pub fn exhausted_now(&mut self) -> bool {
        self.since.get_or_insert_with(Instant::now).elapsed() > self.limit
    }
}

/// Receives from `p`: with `spin`, busy-polling `try_dequeue` until `limit` has passed;
/// otherwise with the pipe's own `dequeue`. `Err` only for `Closed` and `Disconnected`;
/// other errors panic.
pub fn recv(p: &Pipe, spin: bool, limit: Duration) -> Result<ShmVal, RecvError> {
    if !spin {
        return match p.dequeue(limit) {
            Err(RecvTimeoutError::Timeout) => panic!("nothing arrived within {limit:?}"),
            Err(RecvTimeoutError::Closed) => Err(RecvError::Closed),
            Err(RecvTimeoutError::Disconnected) => Err(RecvError::Disconnected),
            Err(e) => panic!("dequeue: {e}"),
            Ok(v) => Ok(v),
        };
    }
    let mut patience = Patience::new(limit);
    loop {
        match p.try_dequeue() {
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Closed) => return Err(RecvError::Closed),
            Err(TryRecvError::Disconnected) => return Err(RecvError::Disconnected),
            Err(e) => panic!("try_dequeue: {e}"),
            Ok(v) => return Ok(v),
        }
        if patience.exhausted() {
            panic!("nothing arrived within {limit:?}");
        }
        std::hint::spin_loop();
    }
}

/// Sends `v` into `p`: with `spin`, retrying `try_enqueue` while full; otherwise with
/// `enqueue`. Panics on any error or past [`WAIT`].
pub fn send(p: &Pipe, mut v: ShmVal, spin: bool) {
    if !spin {
        p.enqueue(v, WAIT).expect("enqueue");
        return;
    }
    let mut patience = Patience::new(WAIT);
    loop {
        match p.try_enqueue(v) {
            Ok(()) => return,
            Err(TrySendError::Full(back)) if !patience.exhausted() => v = back,
            Err(e) => panic!("try_enqueue: {e}"),
        }
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------
// Round trips

/// The child of `roundtrip/shmval-*`: moves each handle from pipe `a` into pipe `b` until
/// `a` closes.
pub fn shm_echo() {
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

/// Standard input and output as files of their own, for a child's raw byte traffic.
pub fn stdio_files() -> (File, File) {
    let dup = |fd: std::os::fd::BorrowedFd<'_>, what: &str| {
        File::from(
            fd.try_clone_to_owned()
                .unwrap_or_else(|e| panic!("dup {what}: {e}")),
        )
    };
    (
        dup(std::io::stdin().as_fd(), "stdin"),
        dup(std::io::stdout().as_fd(), "stdout"),
    )
}

/// A streaming set-up: a region with the pipes `items` (of [`STREAM_CAP`] slots) and `ack`,
/// and a `shm-sink` child with `threads` consumer threads pinned to `cpu`.
pub struct ShmStream {
    /// Owns the region; the caller unlinks its name once the child has attached.
    pub main: ShmMain,
    /// The items pipe (the parent sends).
    pub items: ServerSide,
    /// The acknowledgement pipe (the child sends one per end marker).
    pub ack: ServerSide,
    /// The consumer process.
    pub child: Peer,
}

impl ShmStream {
    /// Creates the region (named with `tag`) and its pipes, and starts the child.
    pub fn start(tag: &str, cpu: usize, threads: usize) -> ShmStream {
        ShmStream::start_in(tag, cpu, threads, false)
    }

    /// As [`start`](Self::start); if `grown`, the region starts at 64 KiB and has grown
    /// past 16 MiB (by a block allocated and freed) before the child starts.
    pub fn start_in(tag: &str, cpu: usize, threads: usize, grown: bool) -> ShmStream {
        ShmStream::start_kind(tag, cpu, threads, grown, false)
    }

    /// As [`start`](Self::start) with a one-to-one items pipe (a lane), for one consumer
    /// thread.
    pub fn start_one_to_one(tag: &str, cpu: usize) -> ShmStream {
        ShmStream::start_kind(tag, cpu, 1, false, true)
    }

    fn start_kind(
        tag: &str,
        cpu: usize,
        threads: usize,
        grown: bool,
        one_to_one: bool,
    ) -> ShmStream {
        let name = region_name(tag);
        let main = if grown {
            let main = ShmMain::new(name.as_str(), 64 << 10)
                .max_bytes(64 << 20)
                .start()
                .expect("create the bench region");
            grow(main.pool());
            main
        } else {
            ShmMain::new(name.as_str(), 16 << 20)
                .start()
                .expect("create the bench region")
        };
        let items = ServerSide::new(name.as_str(), "items", STREAM_CAP)
            .one_to_one(one_to_one)
            .start()
            .expect("pipe items");
        let ack = ServerSide::new(name.as_str(), "ack", 16)
            .start()
            .expect("pipe ack");
        let child = Peer::spawn(
            "shm-sink",
            cpu,
            &[(REGION, name), (THREADS, threads.to_string())],
            Stdio::null(),
            Stdio::null(),
        );
        ShmStream {
            main,
            items,
            ack,
            child,
        }
    }

    /// Closes the items pipe and waits for the child.
    pub fn finish(self) {
        self.items.pipe().close().expect("close items");
        self.child.finish();
    }
}

/// Grows `pool`'s region past 16 MiB: a block that does not fit, allocated and freed.
pub fn grow(pool: &shmval::alloc::Pool) {
    let before = pool.region().growths().0;
    let big = pool
        .alloc(16 << 20, 8)
        .expect("a block that grows the pool");
    // SAFETY: allocated just above; nothing else uses it.
    unsafe { pool.free(big) }.expect("free");
    assert!(pool.region().growths().0 > before, "the pool did not grow");
}

/// (ours to write, ours to read, child's stdin, child's stdout) for `pipe2` or `uds`.
pub fn byte_channel(transport: &str) -> (File, File, OwnedFd, OwnedFd) {
    if transport == "pipe2" {
        let (a_r, a_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
        let (b_r, b_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
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
    }
}

/// The child of `roundtrip/pipe2` and `roundtrip/uds`: echoes messages of `SIZE` bytes
/// from standard input to standard output until end of file.
pub fn byte_echo() {
    let size: usize = env_var(SIZE).parse().expect("a size");
    let (mut input, mut output) = stdio_files();
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
pub fn floats(bytes: usize) -> Vec<f64> {
    (0..bytes / 8).map(|i| i as f64 * 0.5).collect()
}

/// Its raw bytes (little-endian), what the byte baselines carry.
pub fn raw_bytes(f: &[f64]) -> Vec<u8> {
    f.iter().flat_map(|x| x.to_le_bytes()).collect()
}

// ---------------------------------------------------------------------------------------
// Streaming

/// The child of `stream/shmval`: `THREADS` consumers dequeue from `items` in batches of
/// up to [`BATCH`] (`dequeue_batch`: one lock per batch), read each value (a table in
/// place, by one lookup; anything else by `to_val`) and drop it, and
/// acknowledge each [`END`] they meet through `ack`; until `items` closes.
pub fn shm_sink() {
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
                let mut batch = Vec::with_capacity(BATCH);
                loop {
                    match items.pipe().dequeue_batch(&mut batch, BATCH, CHILD_IDLE) {
                        Ok(_) => {}
                        Err(RecvTimeoutError::Closed | RecvTimeoutError::Disconnected) => return,
                        Err(e) => panic!("dequeue_batch: {e}"),
                    }
                    for v in batch.drain(..) {
                        if v.tag() == Tag::Tab {
                            // A table is read in place, as a consumer would: one lookup.
                            let t = v.as_tab().expect("a table");
                            black_box(t.get("a").expect("read an item"));
                            continue;
                        }
                        let n = v.to_val().expect("read an item");
                        drop(v);
                        if n == Val::I64(END) {
                            let token = ack.pool().share(&Val::I64(0)).expect("share");
                            send(ack.pipe(), token, false);
                        }
                    }
                }
            });
        }
    });
}

/// How many of `iters` items producer `p` of `n` sends.
pub fn share_of(iters: u64, n: usize, p: usize) -> u64 {
    iters / n as u64 + u64::from((p as u64) < iters % n as u64)
}

/// Runs `f(p)` for each producer `p` of `n`: on this thread if there is one, else on
/// scoped threads (which inherit this thread's CPU).
pub fn producers(n: usize, f: impl Fn(usize) + Sync) {
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

// ---------------------------------------------------------------------------------------
// Figures shared by the criterion benches (`pipe`, `peers`)

/// `floor/<kind>/<cores>`: the cache-line and futex ping-pong floors (see
/// `common/floor.rs`), in both placements; the cache line only across CPUs (two spinners
/// on one CPU measure the scheduler's time slice).
pub fn floor_figures(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus) {
    for kind in [floor::Kind::Cacheline, floor::Kind::Futex] {
        for (cores, peer_cpu) in cpus.placements() {
            if kind == floor::Kind::Cacheline && cores == "same-core" {
                continue;
            }
            let mut rig = rigs::FloorRig::start(kind, peer_cpu);
            rig.round_trips(100);
            g.bench_function(format!("floor/{}/{cores}", kind.name()), |bn| {
                bn.iter_custom(|iters| rig.round_trips(iters))
            });
            rig.finish();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Round trips

/// The table payload of about `bytes` bytes when serialized with bincode: `k<i>` keys to
/// `f64` values, as a plain map (what the byte baselines serialize) and as a `Val`.
pub fn table_payload(bytes: usize) -> (HashMap<String, f64>, Val) {
    let mut plain = HashMap::new();
    let mut i = 0usize;
    while bincode::serialized_size(&plain).expect("size") < bytes as u64 {
        plain.insert(format!("k{i}"), i as f64 * 0.5);
        i += 1;
    }
    let tab: Tab = plain
        .iter()
        .map(|(k, v)| (Val::from(k.as_str()), Val::from(*v)))
        .collect();
    (plain, Val::Tab(tab))
}

/// What a round trip carries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// An `f64` array of the payload's size.
    Floats,
    /// A `Tab` whose bincode form has about the payload's size ([`table_payload`]).
    Tab,
}

/// `roundtrip/shmval-{block,spin}/<cores>/<bytes>` for each of `payloads`: an `f64` array
/// shared once in the pool, its handle sent through pipe `a` to a `shm-echo` child, which
/// moves it into pipe `b` (see the `pipe` bench's doc comment).
pub fn roundtrip_shm(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus, payloads: &[usize]) {
    roundtrip_shm_of(g, cpus, payloads, Payload::Floats, &[false, true]);
}

/// As [`roundtrip_shm`], carrying `payload`, for the receiver modes in `spins`; a table
/// payload is named `shmval-{block,spin}-tab`.
pub fn roundtrip_shm_of(
    g: &mut BenchmarkGroup<'_, WallTime>,
    cpus: Cpus,
    payloads: &[usize],
    payload: Payload,
    spins: &[bool],
) {
    for &spin in spins {
        let transport = match (spin, payload) {
            (false, Payload::Floats) => "shmval-block",
            (true, Payload::Floats) => "shmval-spin",
            (false, Payload::Tab) => "shmval-block-tab",
            (true, Payload::Tab) => "shmval-spin-tab",
        };
        for (cores, peer_cpu) in cpus.placements() {
            for &size in payloads {
                let mut rig = rigs::ShmRig::start_with(spin, peer_cpu, size, payload);
                g.bench_function(format!("roundtrip/{transport}/{cores}/{size}"), |bn| {
                    bn.iter_custom(|iters| rig.round_trips(iters))
                });
                rig.finish();
            }
        }
    }
}
