//! The iceoryx2 round trips, `roundtrip/iox2-{block,spin}` (see the doc comment of the
//! `peers` bench).
//!
//! Every benchmark gets an iceoryx2 configuration of its own: a root directory
//! `$TMPDIR/shmval-bench-iox2-<pid>-<n>/` (instead of the shared `/tmp/iceoryx2/`) and a
//! file prefix `shmval-bench-iox2-<pid>-<n>_` for its shared memory in `/dev/shm`. iceoryx2
//! removes its files as its nodes and services go; [`Files`] then removes the directory
//! and anything in `/dev/shm` with the prefix, also while a panic unwinds.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::sample::Sample;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

use crate::common::rigs::Timed;
use crate::common::*;

/// The configuration's root directory and file prefix, for the child.
const ROOT: &str = "SHMVAL_BENCH_IOX2_ROOT";
const PREFIX: &str = "SHMVAL_BENCH_IOX2_PREFIX";
/// The services' common name, for the child.
const SERVICES: &str = "SHMVAL_BENCH_IOX2_SERVICES";

type Service = ipc::Service;

/// The files of one benchmark's iceoryx2 configuration, removed when dropped.
struct Files {
    root: PathBuf,
    prefix: String,
}

impl Files {
    fn new() -> Files {
        let name = region_name("iox2");
        Files {
            root: std::env::temp_dir().join(&name),
            prefix: format!("{name}_"),
        }
    }

    fn config(root: &str, prefix: &str) -> Config {
        let mut config = Config::default();
        let root = format!("{}/", root.trim_end_matches('/'));
        config
            .global
            .set_root_path(&Path::try_from(root.as_str()).expect("an iceoryx2 root path"));
        config.global.prefix = FileName::try_from(prefix).expect("an iceoryx2 file prefix");
        config
    }

    fn root(&self) -> &str {
        self.root.to_str().expect("a UTF-8 temporary directory")
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        if let Ok(dir) = std::fs::read_dir("/dev/shm") {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

fn node(config: &Config) -> Node<Service> {
    NodeBuilder::new()
        .config(config)
        // Leave SIGINT and SIGTERM to their defaults, as in the other benches.
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<Service>()
        .expect("an iceoryx2 node")
}

/// The publish-subscribe service `name` of `f64` slices, sized for a ping-pong (one
/// publisher, one subscriber, one sample in flight): created by the parent, opened by the
/// child.
fn pubsub(node: &Node<Service>, name: &str, create: bool) -> PortFactory<Service, [f64], ()> {
    let b = node
        .service_builder(&ServiceName::new(name).expect("a service name"))
        .publish_subscribe::<[f64]>()
        .max_publishers(1)
        .max_subscribers(1)
        .max_nodes(2)
        .history_size(0)
        .subscriber_max_buffer_size(1)
        .subscriber_max_borrowed_samples(1);
    if create {
        b.create().expect("create a publish-subscribe service")
    } else {
        b.open().expect("open a publish-subscribe service")
    }
}

/// The event service `name`: created by the parent, opened by the child.
fn event(
    node: &Node<Service>,
    name: &str,
    create: bool,
) -> iceoryx2::service::port_factory::event::PortFactory<Service> {
    let b = node
        .service_builder(&ServiceName::new(name).expect("a service name"))
        .event()
        .max_notifiers(1)
        .max_listeners(1)
        .max_nodes(2);
    if create {
        b.create().expect("create an event service")
    } else {
        b.open().expect("open an event service")
    }
}

/// One side's wake-ups for the blocking variant: it notifies on its outgoing event service
/// after each send and waits on its incoming one.
struct Wake {
    notifier: Notifier<Service>,
    listener: Listener<Service>,
}

/// Loans a slice, writes `payload` into it, sends it, and notifies (if blocking); the
/// number of subscribers it reached.
fn send(p: &Publisher<Service, [f64], ()>, payload: &[f64], wake: Option<&Wake>) -> usize {
    let sample = p
        .loan_slice_uninit(payload.len())
        .expect("loan")
        .write_from_slice(payload);
    let reached = sample.send().expect("send");
    if let Some(w) = wake {
        w.notifier.notify().expect("notify");
    }
    reached
}

/// The next sample: busy-polling `receive`, or (with `wake`) waiting on the listener
/// between polls; panics past `limit`.
fn receive(
    s: &Subscriber<Service, [f64], ()>,
    wake: Option<&Wake>,
    limit: Duration,
) -> Sample<Service, [f64], ()> {
    let start = wake.map(|_| Instant::now());
    let mut patience = Patience::new(limit);
    loop {
        if let Some(sample) = s.receive().expect("receive") {
            return sample;
        }
        match (wake, start) {
            (Some(w), Some(start)) => {
                let left = limit
                    .checked_sub(start.elapsed())
                    .unwrap_or_else(|| panic!("nothing arrived within {limit:?}"));
                w.listener
                    .timed_wait(|_| {}, left)
                    .expect("wait for an event");
            }
            _ => {
                if patience.exhausted() {
                    panic!("nothing arrived within {limit:?}");
                }
                std::hint::spin_loop();
            }
        }
    }
}

/// `roundtrip/iox2-{block,spin}/<cores>/<bytes>` for each of `payloads`.
pub fn roundtrips(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus, payloads: &[usize]) {
    for block in [true, false] {
        let mode = if block { "block" } else { "spin" };
        for (cores, peer_cpu) in cpus.placements() {
            for &size in payloads {
                let mut rig = IoxRig::start(block, peer_cpu, size);
                g.bench_function(format!("roundtrip/iox2-{mode}/{cores}/{size}"), |bn| {
                    bn.iter_custom(|iters| rig.round_trips(iters))
                });
                rig.finish();
            }
        }
    }
}

/// An iceoryx2 ping-pong: the services, this side's ports, the echo child, and the
/// payload written per hop.
pub struct IoxRig {
    size: usize,
    block: bool,
    payload: Vec<f64>,
    publisher: Publisher<Service, [f64], ()>,
    subscriber: Subscriber<Service, [f64], ()>,
    wake: Option<Wake>,
    child: Option<Peer>,
    // Dropped last: the files go after everything else.
    _node: Node<Service>,
    _files: Files,
}

impl IoxRig {
    /// Creates the services and starts the echo child on `cpu`; returns after one
    /// untimed round trip.
    pub fn start(block: bool, cpu: usize, size: usize) -> IoxRig {
        let mode = if block { "block" } else { "spin" };
        let files = Files::new();
        let config = Files::config(files.root(), &files.prefix);
        let services = format!("shmval-bench/{}", files.prefix.trim_end_matches('_'));
        let node = node(&config);
        let ping = pubsub(&node, &format!("{services}/ping"), true);
        let pong = pubsub(&node, &format!("{services}/pong"), true);
        let events = block.then(|| {
            (
                event(&node, &format!("{services}/ping-event"), true),
                event(&node, &format!("{services}/pong-event"), true),
            )
        });
        let publisher = ping
            .publisher_builder()
            .initial_max_slice_len(size / 8)
            .max_loaned_samples(1)
            .create()
            .expect("publisher");
        let subscriber = pong.subscriber_builder().create().expect("subscriber");
        let wake = events.as_ref().map(|(ping_ev, pong_ev)| Wake {
            notifier: ping_ev.notifier_builder().create().expect("notifier"),
            listener: pong_ev.listener_builder().create().expect("listener"),
        });
        let child = Some(Peer::spawn(
            "iox2-echo",
            cpu,
            &[
                (ROOT, files.root().into()),
                (PREFIX, files.prefix.clone()),
                (SERVICES, services.clone()),
                (MODE, mode.into()),
                (SIZE, (size / 8).to_string()),
            ],
            Stdio::null(),
            Stdio::null(),
        ));
        let payload = floats(size);
        // The first ping, repeated until the child's subscriber is there, untimed.
        let start = Instant::now();
        while send(&publisher, &payload, wake.as_ref()) == 0 {
            assert!(
                start.elapsed() < WAIT,
                "the iceoryx2 child did not subscribe within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(receive(&subscriber, wake.as_ref(), WAIT));
        IoxRig {
            size,
            block,
            payload,
            publisher,
            subscriber,
            wake,
            child,
            _node: node,
            _files: files,
        }
    }

    /// Times `iters` round trips.
    pub fn round_trips(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            send(&self.publisher, &self.payload, self.wake.as_ref());
            let back = receive(&self.subscriber, self.wake.as_ref(), WAIT);
            assert_eq!(back.payload().len(), self.payload.len(), "the echo");
        }
        start.elapsed()
    }

    /// The round trip as a figure for [`in_turn`](crate::common::rigs::in_turn).
    pub fn timed(&mut self, cores: &str, iters: u64) -> Timed<'_> {
        let (mode, receiver) = if self.block {
            ("block", "waits on its listener")
        } else {
            ("spin", "spins (receive)")
        };
        Timed::new(
            &format!("iox2_{mode}_{cores}_{}", self.size),
            format!(
                "{cores}-core, iceoryx2 [f64] of {} B written per hop, receiver {receiver}",
                self.size
            ),
            "ns/rt",
            iters,
            |n| self.round_trips(n),
        )
    }

    /// Checks the payload survives, ends the child, removes the files.
    pub fn finish(mut self) {
        send(&self.publisher, &self.payload, self.wake.as_ref());
        let back = receive(&self.subscriber, self.wake.as_ref(), WAIT);
        assert!(back.payload() == &self.payload[..], "the floats came back");
        drop(back);
        // An empty slice ends the child.
        send(&self.publisher, &[], self.wake.as_ref());
        self.child.take().expect("the child").finish();
    }
}

/// The child of `roundtrip/iox2-*`: copies every sample on `ping` into a new one on
/// `pong`, until an empty one.
pub fn echo() {
    let config = Files::config(&env_var(ROOT), &env_var(PREFIX));
    let services = env_var(SERVICES);
    let block = env_var(MODE) == "block";
    let len: usize = env_var(SIZE).parse().expect("a slice length");
    let node = node(&config);
    let ping = pubsub(&node, &format!("{services}/ping"), false);
    let pong = pubsub(&node, &format!("{services}/pong"), false);
    // The listener and the publisher exist before the subscriber: once the parent reaches
    // the subscriber, its notification and the reply can be delivered.
    let wake = block.then(|| Wake {
        notifier: event(&node, &format!("{services}/pong-event"), false)
            .notifier_builder()
            .create()
            .expect("notifier"),
        listener: event(&node, &format!("{services}/ping-event"), false)
            .listener_builder()
            .create()
            .expect("listener"),
    });
    let publisher = pong
        .publisher_builder()
        .initial_max_slice_len(len)
        .max_loaned_samples(1)
        .create()
        .expect("publisher");
    let subscriber = ping.subscriber_builder().create().expect("subscriber");
    loop {
        let sample = receive(&subscriber, wake.as_ref(), CHILD_IDLE);
        if sample.payload().is_empty() {
            return;
        }
        let reply = publisher
            .loan_slice_uninit(sample.payload().len())
            .expect("loan")
            .write_from_slice(sample.payload());
        drop(sample);
        reply.send().expect("send back");
        if let Some(w) = &wake {
            w.notifier.notify().expect("notify");
        }
    }
}
