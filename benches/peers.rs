//! Peer benchmarks, group `peers`: our handle round trip beside the same ping-pong over
//! two other IPC libraries, ipc-channel (Servo's channels over Unix sockets) and iceoryx2
//! (zero-copy publish-subscribe in shared memory), with the floors, in one run, so that the
//! ratios are read directly. The libraries are built only with the `peers` feature
//! (`cargo bench --features peers --bench peers`); without it this bench says so and exits.
//!
//! - `floor/<kind>/<cores>`: the cache-line and futex floors, as in the `pipe` bench (see
//!   `common/floor.rs`).
//! - `roundtrip/<transport>/<cores>/<bytes>`: one ping-pong. This process sends a payload
//!   of `bytes` bytes (an `f64` array) to a child process, which sends it back.
//!   - `shmval-block`, `shmval-spin`: as in the `pipe` bench. The array is shared once
//!     (`pool.array_from`); its handle goes through pipe `a`, the child moves it into pipe
//!     `b`; the receivers block (`dequeue`) or busy-poll (`try_dequeue`). No copy.
//!   - `ipc-bytes-block`, `ipc-bytes-spin`: ipc-channel, the way a serde user sends a
//!     buffer: an `IpcSender<serde_bytes::ByteBuf>` holding the array's raw bytes (its
//!     encoding is not charged). The child makes both channels and hands them over through
//!     an `IpcOneShotServer` named in an environment variable; it sends every message back
//!     as it came. Each hop copies the bytes four times (into the serialized message, into
//!     and out of the kernel, out of the message into a new `ByteBuf`); a message beyond
//!     the socket buffer goes in fragments, the rest over a socket made for it. The
//!     receivers block in `recv` or busy-poll `try_recv` (which is a system call).
//!   - `ipc-shmem-block`, `ipc-shmem-spin`: ipc-channel's zero-copy way, an
//!     `IpcSender<IpcSharedMemory>`: the array's bytes are put once into a shared memory
//!     region (a memfd), and the same region goes back and forth; each hop passes its
//!     descriptor through the socket and maps it on arrival.
//!   - `iox2-spin`: iceoryx2 publish-subscribe of `[f64]` slices on two services, `ping`
//!     (this process publishes, the child subscribes) and `pong` (the other way). The
//!     payload is written once per hop, as a user would, into a sample loaned from the
//!     publisher (`loan_slice_uninit` + `write_from_slice`): this process writes the array,
//!     the child copies the received sample into its reply (iceoryx2 cannot send a
//!     received sample on; a sample belongs to its publisher's memory). Receivers
//!     busy-poll `receive`.
//!   - `iox2-block`: the same, with iceoryx2's events for wake-ups: after each send the
//!     sender notifies on an event service of its own (`ping-event`, `pong-event`), and a
//!     receiver that finds nothing waits on its listener (`timed_wait`; on Linux a Unix
//!     datagram socket) and polls again. A `WaitSet` would only put the same listener
//!     under `epoll`, for several sources; one listener waits without it.
//!
//! `<cores>`: `diff-core` pins this process to one CPU and the child to another;
//! `same-core` pins both to the first CPU. As in the `pipe` bench, the `-spin` variants on
//! `same-core` measure the scheduler (a poller holds the only CPU until its time slice
//! ends or it naps, idle, after 65536 polls), and are kept so that every figure has its
//! twin.
//!
//! `--in-turn [--figures FILE]` skips criterion and measures the spinning round trips
//! across the CPUs (the floor, crossbeam-channel, ours and iceoryx2's at each size) in
//! turn, run by run, so that their ratios compare runs seconds apart: on a virtual machine
//! the host moves the two vCPUs every minute or so, and each placement changes every
//! cross-CPU figure threefold. Its JSON feeds the README's plot.
//!
//! Every child is this bench binary run again with `SHMVAL_BENCH_ROLE` set: it dies with
//! this process, and a watchdog kills it if a benchmark overruns. Every wait has a
//! deadline, except ipc-channel's blocking `recv` and the one-shot server's `accept`,
//! which have none: `recv` fails once the watchdog has killed the child (as the `pipe2`
//! read in the `pipe` bench), and `accept` is given up after a while by connecting to it
//! from this process. ipc-channel leaves nothing in `/tmp` or `/dev/shm`; iceoryx2 gets a
//! root directory and a `/dev/shm` prefix of its own for every benchmark (pid and counter
//! in the name), removed afterwards even when a benchmark panics (see `peers/iox2.rs`);
//! only a kill of this process (SIGKILL) can leave them behind.
//!
//! Requirements: the `peers` feature needs Rust 1.89 (iceoryx2 0.10), and iceoryx2 builds
//! its POSIX bindings with bindgen, so libclang must be installed.
//!
//! Defaults keep the run to about four minutes on 2 CPUs; criterion's `--warm-up-time` and
//! `--measurement-time` override them.

// criterion_group! style functions without doc comments.
#![allow(missing_docs)]
// std atomics are fine here; the crate's loom shim is for library code.
#![allow(clippy::disallowed_types)]

#[cfg(feature = "peers")]
mod common;
#[cfg(feature = "peers")]
#[path = "peers/iox2.rs"]
mod iox2;
#[cfg(feature = "peers")]
#[path = "peers/ipc.rs"]
mod ipc;

#[cfg(not(feature = "peers"))]
fn main() {
    println!(
        "peers: ipc-channel and iceoryx2 are not built (the `peers` feature is off); \
         run `cargo bench --features peers --bench peers`"
    );
}

#[cfg(feature = "peers")]
fn main() {
    use common::*;
    use criterion::Criterion;
    use std::time::Duration;

    /// Payload sizes of the round trips, in bytes.
    const PAYLOADS: [usize; 4] = [64, 4096, 64 << 10, 1 << 20];

    if let Ok(role) = std::env::var(ROLE) {
        child_setup();
        match role.as_str() {
            "shm-echo" => shm_echo(),
            "ipc-echo" => ipc::echo(),
            "iox2-echo" => iox2::echo(),
            "floor" => common::floor::echo(common::floor::Kind::parse(&env_var(MODE))),
            _ => panic!("unknown role {role}"),
        }
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--in-turn") {
        let out = args
            .iter()
            .position(|a| a == "--figures")
            .and_then(|i| args.get(i + 1));
        in_turn_figures(out.map(String::as_str));
        return;
    }
    // Defaults for the whole group; criterion's own flags override them.
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let cpus = Cpus::detect();
    let restore = Unpin::save();
    // This thread runs on the first CPU throughout.
    pin(cpus.first);
    let mut g = c.benchmark_group("peers");
    g.sample_size(20);
    floor_figures(&mut g, cpus);
    roundtrip_shm(&mut g, cpus, &PAYLOADS);
    ipc::roundtrips(&mut g, cpus, &PAYLOADS);
    iox2::roundtrips(&mut g, cpus, &PAYLOADS);
    g.finish();
    drop(restore);
    c.final_summary();
}

/// `--in-turn [--figures FILE]`: the spinning round trips across the two CPUs measured run
/// by run (the cache-line floor, crossbeam-channel between two threads, ours and
/// iceoryx2's at each payload size), 15 runs each, so that their ratios hold whatever the
/// host does with the vCPUs meanwhile; prints medians and ratios, and writes the figures
/// as JSON (the gate's format, for the plot) to FILE.
#[cfg(feature = "peers")]
fn in_turn_figures(out: Option<&str>) {
    use common::floor::Kind;
    use common::rigs::{in_turn, CrossbeamRig, FloorRig, ShmRig};
    use common::*;

    let cpus = Cpus::detect();
    let Some(other) = cpus.second else {
        println!("peers: one CPU only, no cross-CPU figures");
        return;
    };
    let _restore = Unpin::save();
    pin(cpus.first);
    let mut floor = FloorRig::start(Kind::Cacheline, other);
    let mut cb = CrossbeamRig::start(other);
    const SIZES: [usize; 4] = [64, 4096, 64 << 10, 1 << 20];
    let mut shm: Vec<ShmRig> = SIZES
        .into_iter()
        .map(|size| ShmRig::start(true, other, size))
        .collect();
    let mut iox: Vec<iox2::IoxRig> = SIZES
        .into_iter()
        .map(|size| iox2::IoxRig::start(false, other, size))
        .collect();
    let mut figs = vec![floor.timed("diff", 100_000), cb.timed(100_000)];
    figs.extend(shm.iter_mut().map(|r| r.timed("diff", 100_000)));
    figs.extend(iox.iter_mut().map(|r| r.timed("diff", 20_000)));
    let figures = in_turn(figs, 15, 1.0);
    let median = |name: &str| {
        figures
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| f.median())
            .expect("a measured figure")
    };
    for (name, f) in &figures {
        println!(
            "  {name:<24} {:>10.1} {}   ({})",
            f.median(),
            f.unit,
            f.conditions
        );
    }
    let floor_ns = median("floor_cacheline_diff");
    for name in [
        "shm_spin_diff_64",
        "shm_spin_diff_1048576",
        "iox2_spin_diff_64",
        "iox2_spin_diff_1048576",
        "cb_spin_diff_64",
    ] {
        println!(
            "  {name:<24} {:>6.2}x the cache-line floor",
            median(name) / floor_ns
        );
    }
    for size in [64, 1 << 20] {
        println!(
            "  ours / iceoryx2 at {size} B: {:.3}",
            median(&format!("shm_spin_diff_{size}")) / median(&format!("iox2_spin_diff_{size}"))
        );
    }
    if let Some(path) = out {
        let figs: serde_json::Map<String, serde_json::Value> = figures
            .iter()
            .map(|(name, f)| {
                (
                    name.clone(),
                    serde_json::json!({"median": f.median(), "unit": f.unit,
                                       "conditions": f.conditions}),
                )
            })
            .collect();
        std::fs::write(
            path,
            serde_json::to_string_pretty(&serde_json::Value::Object(figs)).expect("json"),
        )
        .expect("write the figures");
        println!("peers: figures written to {path}");
    }
    floor.finish();
    cb.finish();
    for r in shm {
        r.finish();
    }
    for r in iox {
        r.finish();
    }
}
