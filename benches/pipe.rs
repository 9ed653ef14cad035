//! Pipe benchmarks, group `pipe`: the floors (`floor/cacheline`, `floor/futex`, see
//! `common/floor.rs`), then handing a value from one process to another through a
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
//!   - `shmval-{spin,block}-tab`, `{pipe2,uds}-bincode-tab`: the same with a table for
//!     payload, `k<i>` keys to `f64` values, as many as make its bincode form about
//!     `bytes` long. Ours shares it once and moves its handle; the byte baselines
//!     serialize the equivalent `HashMap<String, f64>` with bincode for each trip, the
//!     child echoes the bytes, and this process deserializes them (one encode and one
//!     decode per round trip, the least a process that uses the table pays).
//!   - `crossbeam-block`, `crossbeam-spin`: two threads of this process move the
//!     `Vec<f64>` itself (a pointer, like a handle) through two bounded crossbeam channels,
//!     receiving with `recv` or busy-polling `try_recv`.
//! - `stream/<transport>/<cores>/<p>to<c>`: one-way throughput, in items per second, of
//!   small values: `p` producers each share a boxed integer and enqueue its handle, `c`
//!   consumers in the child process dequeue in batches (`dequeue_batch`, up to 64 per
//!   lock), read and drop each (so each item is also one allocation and one free in the
//!   pool). `crossbeam` does the same with `Box<i64>` between threads, one `recv` each.
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
//!   the only CPU until it gives up (its time slice ends, or after 65536 polls it naps
//!   for a millisecond, see `Patience`), so each hop waits for that. It is kept so
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

mod common;

use std::env;
use std::hint::black_box;
use std::time::{Duration, Instant};

use common::floor;
use common::*;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use shmval::{PoolExt, Val};

/// Child roles of this bench.
fn run_child(role: &str) {
    child_setup();
    match role {
        "shm-echo" => shm_echo(),
        "byte-echo" => byte_echo(),
        "shm-sink" => shm_sink(),
        "floor" => floor::echo(floor::Kind::parse(&env_var(MODE))),
        _ => panic!("unknown role {role}"),
    }
}

// ---------------------------------------------------------------------------------------
// Round trips

fn roundtrip_bytes(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus, payload: Payload) {
    for transport in ["pipe2", "uds"] {
        for (cores, peer_cpu) in cpus.placements() {
            for size in PAYLOADS {
                let mut rig = rigs::BytesRig::start(transport, peer_cpu, size, payload);
                let name = match payload {
                    Payload::Floats => format!("roundtrip/{transport}/{cores}/{size}"),
                    Payload::Tab => format!("roundtrip/{transport}-bincode-tab/{cores}/{size}"),
                };
                g.bench_function(name, |bn| bn.iter_custom(|iters| rig.round_trips(iters)));
                rig.finish();
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
    use crossbeam_channel::RecvTimeoutError;
    if spin {
        return rigs::spin_recv(rx).ok_or(());
    }
    match rx.recv_timeout(WAIT) {
        Ok(v) => Ok(v),
        Err(RecvTimeoutError::Disconnected) => Err(()),
        Err(RecvTimeoutError::Timeout) => panic!("nothing arrived within {WAIT:?}"),
    }
}

fn stream_shm(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus) {
    for (cores, peer_cpu) in cpus.placements() {
        for n in [1usize, 2] {
            let rig = ShmStream::start("st", peer_cpu, n);
            let (items, ack, pool) = (rig.items.pipe(), rig.ack.pipe(), rig.items.pool());
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
            rig.main.region().unlink();
            g.bench_function(format!("stream/shmval/{cores}/{n}to{n}"), |bn| {
                bn.iter_custom(batch)
            });
            rig.finish();
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
    floor_figures(&mut g, cpus);
    roundtrip_shm(&mut g, cpus, &PAYLOADS);
    roundtrip_bytes(&mut g, cpus, Payload::Floats);
    roundtrip_shm_of(&mut g, cpus, &PAYLOADS, Payload::Tab, &[true, false]);
    roundtrip_bytes(&mut g, cpus, Payload::Tab);
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
