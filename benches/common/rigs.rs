//! Measuring rigs shared by the gate and the peers bench: each sets up one hand-off (its
//! child process or thread and what travels) and hands out a [`Timed`] run; [`in_turn`]
//! measures several of them run by run, so that ratios between them compare runs taken
//! seconds apart (the host moves a virtual machine's vCPUs every minute or so, and every
//! cross-CPU figure with them).

use std::collections::HashMap;
use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use shmval::sides::{ServerSide, ShmMain};
use shmval::{PoolExt, ShmVal};

use super::floor::{self, Floor};
use super::*;

/// One figure: the per-run values of a quantity (ns per round trip, per item or per pair).
pub struct Figure {
    pub runs: Vec<f64>,
    pub unit: &'static str,
    pub conditions: String,
}

impl Figure {
    pub fn median(&self) -> f64 {
        median(&self.runs)
    }
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Measures `figs` in turn, `repeats` runs each (figure 1, figure 2, ..., figure 1, ...),
/// after one untimed run each; each timed run follows one untimed operation, which wakes
/// a peer that napped while it waited its turn. A run planned to take longer than `budget` seconds (a
/// slowdown far beyond any tolerance) is cut short, so that a regressed build fails in
/// seconds instead of running for an hour. Returns each figure's name and per-run values
/// in ns per operation.
pub fn in_turn(mut figs: Vec<Timed<'_>>, repeats: usize, budget: f64) -> Vec<(String, Figure)> {
    for f in &mut figs {
        let warm = (f.iters / 10).max(1);
        let per_op = (f.run)(warm).as_secs_f64() / warm as f64;
        if per_op * f.iters as f64 > budget {
            f.iters = ((budget / per_op) as u64).clamp(10, f.iters);
        }
    }
    let mut runs = vec![Vec::with_capacity(repeats); figs.len()];
    for _ in 0..repeats {
        for (f, r) in figs.iter_mut().zip(&mut runs) {
            // One operation untimed first: a peer that napped while the others ran (see
            // `Patience`) is awake and spinning again when the timed run starts.
            (f.run)(1);
            r.push((f.run)(f.iters).as_nanos() as f64 / f.iters as f64);
        }
    }
    figs.into_iter()
        .zip(runs)
        .map(|(t, runs)| {
            (
                t.name,
                Figure {
                    runs,
                    unit: t.unit,
                    conditions: t.conditions,
                },
            )
        })
        .collect()
}

/// A figure to measure: its name, conditions, unit, planned iterations, and the run that
/// times that many operations.
pub struct Timed<'a> {
    pub name: String,
    pub conditions: String,
    pub unit: &'static str,
    pub iters: u64,
    pub run: Box<dyn FnMut(u64) -> Duration + 'a>,
}

impl<'a> Timed<'a> {
    pub fn new(
        name: &str,
        conditions: String,
        unit: &'static str,
        iters: u64,
        run: impl FnMut(u64) -> Duration + 'a,
    ) -> Timed<'a> {
        Timed {
            name: name.to_string(),
            conditions,
            unit,
            iters,
            run: Box::new(run),
        }
    }
}

/// A floor ping-pong with its child process (see `common/floor.rs`).
pub struct FloorRig {
    kind: floor::Kind,
    floor: Floor,
    child: Peer,
}

impl FloorRig {
    pub fn start(kind: floor::Kind, cpu: usize) -> FloorRig {
        let floor = Floor::new(kind);
        let child = Peer::spawn(
            "floor",
            cpu,
            &[(MODE, kind.name().into())],
            Stdio::from(floor.fd()),
            Stdio::null(),
        );
        FloorRig { kind, floor, child }
    }

    pub fn timed(&mut self, cores: &str, iters: u64) -> Timed<'_> {
        let receiver = if self.kind == floor::Kind::Futex {
            "sleeps (futex)"
        } else {
            "spins"
        };
        Timed::new(
            &format!("floor_{}_{cores}", self.kind.name()),
            format!("{cores}-core, receiver {receiver}"),
            "ns/rt",
            iters,
            |n| self.round_trips(n),
        )
    }

    /// Times `n` round trips.
    pub fn round_trips(&mut self, n: u64) -> Duration {
        self.floor.round_trips(n)
    }

    pub fn finish(self) {
        self.floor.stop();
        self.child.finish();
    }
}

/// The spinning hand-off of a well-tuned in-process queue across the same two CPUs:
/// crossbeam-channel between two pinned threads, an 8-word box each way, both busy-polling
/// `try_recv`. Its cost is cache-line transfers, like ours, so the ratio to it moves little
/// with where the host puts the two vCPUs.
pub struct CrossbeamRig {
    to_peer: crossbeam_channel::Sender<Box<[f64; 8]>>,
    from_peer: crossbeam_channel::Receiver<Box<[f64; 8]>>,
    echo: std::thread::JoinHandle<()>,
    held: Option<Box<[f64; 8]>>,
}

impl CrossbeamRig {
    pub fn start(cpu: usize) -> CrossbeamRig {
        let (to_peer, peer_rx) = crossbeam_channel::bounded::<Box<[f64; 8]>>(4);
        let (peer_tx, from_peer) = crossbeam_channel::bounded::<Box<[f64; 8]>>(4);
        let echo = std::thread::spawn(move || {
            pin(cpu);
            while let Some(v) = spin_recv(&peer_rx) {
                peer_tx.send(v).expect("echo");
            }
        });
        CrossbeamRig {
            to_peer,
            from_peer,
            echo,
            held: Some(Box::new([0.5f64; 8])),
        }
    }

    pub fn timed(&mut self, iters: u64) -> Timed<'_> {
        Timed::new(
            "cb_spin_diff_64",
            "diff-core, two threads of one process, crossbeam-channel, 64 B box, receiver \
             spins (try_recv)"
                .into(),
            "ns/rt",
            iters,
            |n| {
                let mut v = self.held.take().expect("the box is home");
                let start = Instant::now();
                for _ in 0..n {
                    self.to_peer.send(v).expect("send");
                    v = spin_recv(&self.from_peer).expect("the echo");
                }
                let t = start.elapsed();
                self.held = Some(v);
                t
            },
        )
    }

    pub fn finish(self) {
        drop(self.to_peer);
        self.echo.join().expect("the echo thread");
    }
}

/// Our handle round trip: a region with pipes `a` and `b`, an echo child, and the f64
/// array whose handle travels.
pub struct ShmRig {
    spin: bool,
    size: usize,
    one_to_one: bool,
    // Owns the region (its name is unlinked once the child has attached).
    _main: ShmMain,
    a: ServerSide,
    b: ServerSide,
    child: Peer,
    held: Option<ShmVal>,
}

impl ShmRig {
    /// An f64 array of `size` bytes, receivers spinning or blocking, the child on `cpu`;
    /// returns after one untimed round trip.
    pub fn start(spin: bool, cpu: usize, size: usize) -> ShmRig {
        ShmRig::start_with(spin, cpu, size, Payload::Floats)
    }

    /// As [`start`](Self::start), carrying `payload`.
    pub fn start_with(spin: bool, cpu: usize, size: usize, payload: Payload) -> ShmRig {
        ShmRig::start_kind(spin, cpu, size, payload, false)
    }

    /// As [`start`](Self::start) with spinning receivers, over one-to-one pipes (lanes).
    pub fn start_one_to_one(cpu: usize, size: usize) -> ShmRig {
        ShmRig::start_kind(true, cpu, size, Payload::Floats, true)
    }

    fn start_kind(
        spin: bool,
        cpu: usize,
        size: usize,
        payload: Payload,
        one_to_one: bool,
    ) -> ShmRig {
        let name = region_name("rt");
        let main = ShmMain::new(name.as_str(), (size as u64 + (4 << 20)).max(16 << 20))
            .start()
            .expect("create the gate region");
        let a = ServerSide::new(name.as_str(), "a", 4)
            .one_to_one(one_to_one)
            .start()
            .expect("pipe a");
        // On a one-to-one pipe the side that counts as a sender holds the sending side:
        // here the child sends on b.
        let b = ServerSide::new(name.as_str(), "b", 4)
            .one_to_one(one_to_one)
            .sends(!one_to_one)
            .start()
            .expect("pipe b");
        let child = Peer::spawn(
            "shm-echo",
            cpu,
            &[
                (REGION, name.clone()),
                (MODE, if spin { "spin" } else { "block" }.into()),
            ],
            Stdio::null(),
            Stdio::null(),
        );
        let v = match payload {
            Payload::Floats => a.pool().array_from(&floats(size)[..]).expect("share"),
            Payload::Tab => a.pool().share(&table_payload(size).1).expect("share"),
        };
        send(a.pipe(), v, spin);
        let held = Some(recv(b.pipe(), spin, WAIT).expect("the first echo"));
        main.region().unlink();
        ShmRig {
            spin,
            size,
            one_to_one,
            _main: main,
            a,
            b,
            child,
            held,
        }
    }

    pub fn timed(&mut self, cores: &str, iters: u64) -> Timed<'_> {
        let (mode, receiver) = if self.spin {
            ("spin", "spins (try_dequeue)")
        } else {
            ("block", "blocks (dequeue: short spin, then futex)")
        };
        let size = self.size;
        let (prefix, pipes) = if self.one_to_one {
            ("o2o", ", one-to-one pipes")
        } else {
            ("shm", "")
        };
        Timed::new(
            &format!("{prefix}_{mode}_{cores}_{size}"),
            format!("{cores}-core, f64 array of {size} B by handle{pipes}, receiver {receiver}"),
            "ns/rt",
            iters,
            |n| self.round_trips(n),
        )
    }

    /// Times `n` round trips of the handle.
    pub fn round_trips(&mut self, n: u64) -> Duration {
        let (a, b, spin) = (self.a.pipe(), self.b.pipe(), self.spin);
        let mut v = self.held.take().expect("the handle is home");
        let at = v.offset();
        let start = Instant::now();
        for _ in 0..n {
            send(a, v, spin);
            v = recv(b, spin, WAIT).expect("echo");
        }
        let t = start.elapsed();
        assert_eq!(v.offset(), at, "the same handle came back");
        self.held = Some(v);
        t
    }

    pub fn finish(mut self) {
        drop(self.held.take());
        self.a.pipe().close().expect("close pipe a");
        self.child.finish();
    }
}

/// A bare protocol's spinning hand-off across the two CPUs: the ring or the lane on the
/// heap, between two pinned threads bouncing a 64-bit item (see `shmval::queue::hop`).
pub struct HopRig {
    rig: shmval::queue::hop::HopRig,
    kind: shmval::queue::hop::HopKind,
}

impl HopRig {
    pub fn start(kind: shmval::queue::hop::HopKind, cpu: usize) -> HopRig {
        HopRig {
            rig: shmval::queue::hop::HopRig::start(kind, move || pin(cpu)),
            kind,
        }
    }

    pub fn timed(&mut self, iters: u64) -> Timed<'_> {
        let (name, what) = match self.kind {
            shmval::queue::hop::HopKind::Ring => ("ring_hop_diff", "the ring (one lock)"),
            shmval::queue::hop::HopKind::Lane => ("lane_hop_diff", "the lane (lock-free)"),
        };
        let rig = &self.rig;
        Timed::new(
            name,
            format!(
                "diff-core, two threads of one process, {what} on the heap, a 64-bit item, \
                 receiver spins"
            ),
            "ns/rt",
            iters,
            move |n| rig.round_trips(n),
        )
    }
}

/// Busy-polls `rx` until a message arrives (`Some`) or every sender is gone (`None`);
/// panics past [`WAIT`].
pub fn spin_recv<T>(rx: &crossbeam_channel::Receiver<T>) -> Option<T> {
    let mut patience = Patience::new(WAIT);
    loop {
        match rx.try_recv() {
            Ok(v) => return Some(v),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) => {}
        }
        if patience.exhausted() {
            panic!("nothing arrived within {WAIT:?}");
        }
        std::hint::spin_loop();
    }
}

/// The byte baseline: a `pipe(2)` pair or a Unix socket to a `byte-echo` child, carrying
/// the payload's bytes each way: an f64 array's raw bytes as they are, or a table
/// serialized with bincode for each trip and deserialized on return.
pub struct BytesRig {
    payload: Payload,
    plain: HashMap<String, f64>,
    bytes: Vec<u8>,
    back: Vec<u8>,
    tx: File,
    rx: File,
    child: Peer,
}

impl BytesRig {
    /// `transport` is `pipe2` or `uds`; the child runs on `cpu`. Returns after one
    /// untimed round trip.
    pub fn start(transport: &str, cpu: usize, size: usize, payload: Payload) -> BytesRig {
        let (mut tx, mut rx, child_in, child_out) = byte_channel(transport);
        let (plain, bytes) = match payload {
            Payload::Floats => (HashMap::new(), raw_bytes(&floats(size))),
            Payload::Tab => {
                let plain = table_payload(size).0;
                let bytes = bincode::serialize(&plain).expect("serialize");
                (plain, bytes)
            }
        };
        let child = Peer::spawn(
            "byte-echo",
            cpu,
            &[(SIZE, bytes.len().to_string())],
            Stdio::from(child_in),
            Stdio::from(child_out),
        );
        let mut back = vec![0u8; bytes.len()];
        tx.write_all(&bytes).expect("write");
        rx.read_exact(&mut back).expect("the first echo");
        BytesRig {
            payload,
            plain,
            bytes,
            back,
            tx,
            rx,
            child,
        }
    }

    /// Times `n` round trips.
    pub fn round_trips(&mut self, n: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            if self.payload == Payload::Floats {
                self.tx.write_all(black_box(&self.bytes)).expect("write");
                self.rx.read_exact(&mut self.back).expect("echo");
                continue;
            }
            // The table is encoded for the trip and decoded on return.
            let out = bincode::serialize(black_box(&self.plain)).expect("serialize");
            self.tx.write_all(&out).expect("write");
            self.rx.read_exact(&mut self.back).expect("echo");
            let got: HashMap<String, f64> = bincode::deserialize(&self.back).expect("deserialize");
            black_box(got);
        }
        start.elapsed()
    }

    /// Checks the bytes survived, closes the channel and waits for the child.
    pub fn finish(self) {
        assert_eq!(self.back, self.bytes, "the bytes came back");
        drop((self.tx, self.rx));
        self.child.finish();
    }
}
