//! The ipc-channel round trips, `roundtrip/ipc-{bytes,shmem}-{block,spin}` (see the doc
//! comment of the `peers` bench).
//!
//! The child makes both channels, `a` (to it) and `b` (back), and hands the parent `a`'s
//! sender and `b`'s receiver through an `IpcOneShotServer` whose name it gets in
//! [`SERVER`]. ipc-channel's sockets are close-on-exec and the one-shot server's temporary
//! directory goes when the server does (right after the child has connected), so nothing
//! is left in `/tmp` or `/dev/shm`.

use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;
use ipc_channel::ipc::{self, IpcOneShotServer, IpcReceiver, IpcSender, IpcSharedMemory};
use ipc_channel::{IpcError, TryRecvError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_bytes::ByteBuf;

use crate::common::*;

/// The one-shot server's name, for the child.
const SERVER: &str = "SHMVAL_BENCH_IPC_SERVER";
/// Which message: `bytes` or `shmem`.
const KIND: &str = "SHMVAL_BENCH_IPC_KIND";

/// What the child hands the parent: the sender of channel `a`, the receiver of channel `b`.
type Boot<M> = (IpcSender<M>, IpcReceiver<M>);

/// A message of a round trip: made once from the payload's bytes, then moved back and forth.
trait Message: Serialize + DeserializeOwned + Send + 'static {
    /// Its name in the figures.
    const KIND: &'static str;
    fn make(bytes: &[u8]) -> Self;
    fn bytes(&self) -> &[u8];
}

/// The bytes themselves, serialized as one byte string (`serde_bytes`): each send copies
/// them into the message, the kernel copies them across, the receiver copies them out.
impl Message for ByteBuf {
    const KIND: &'static str = "bytes";
    fn make(bytes: &[u8]) -> Self {
        ByteBuf::from(bytes.to_vec())
    }
    fn bytes(&self) -> &[u8] {
        self.as_slice()
    }
}

/// A shared memory region (a memfd), filled once: each send passes its descriptor, each
/// receive maps it.
impl Message for IpcSharedMemory {
    const KIND: &'static str = "shmem";
    fn make(bytes: &[u8]) -> Self {
        IpcSharedMemory::from_bytes(bytes)
    }
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// `roundtrip/ipc-{bytes,shmem}-{block,spin}/<cores>/<bytes>` for each of `payloads`.
pub fn roundtrips(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus, payloads: &[usize]) {
    roundtrip::<ByteBuf>(g, cpus, payloads);
    roundtrip::<IpcSharedMemory>(g, cpus, payloads);
}

fn roundtrip<M: Message>(g: &mut BenchmarkGroup<'_, WallTime>, cpus: Cpus, payloads: &[usize]) {
    for spin in [false, true] {
        let mode = if spin { "spin" } else { "block" };
        for (cores, peer_cpu) in cpus.placements() {
            for &size in payloads {
                let (server, name) = IpcOneShotServer::<Boot<M>>::new().expect("one-shot server");
                let child = Peer::spawn(
                    "ipc-echo",
                    peer_cpu,
                    &[
                        (SERVER, name.clone()),
                        (KIND, M::KIND.into()),
                        (MODE, mode.into()),
                    ],
                    Stdio::null(),
                    Stdio::null(),
                );
                let (tx, rx) = accept(server, &name);
                let payload = raw_bytes(&floats(size));
                // One round trip untimed.
                tx.send(M::make(&payload)).expect("send");
                let mut held = Some(recv(&rx, spin, WAIT).expect("the first echo"));
                let transport = format!("ipc-{}-{mode}", M::KIND);
                g.bench_function(format!("roundtrip/{transport}/{cores}/{size}"), |bn| {
                    bn.iter_custom(|iters| {
                        let mut m = held.take().expect("the message is home");
                        let start = Instant::now();
                        for _ in 0..iters {
                            tx.send(m).expect("send");
                            m = recv(&rx, spin, WAIT).expect("echo");
                        }
                        let t = start.elapsed();
                        held = Some(m);
                        t
                    })
                });
                let back = held.take().expect("the message is home");
                assert!(back.bytes() == &payload[..], "the bytes came back");
                // The child's receive fails once `a` has no sender: it returns.
                drop((tx, rx));
                child.finish();
            }
        }
    }
}

/// Accepts the child's connection within [`WAIT`]. `accept` itself has no deadline: past
/// it, this process connects to the server itself (so that `accept` returns and the server's
/// temporary directory is removed) and panics.
fn accept<M: Message>(server: IpcOneShotServer<Boot<M>>, name: &str) -> Boot<M> {
    let (done, got) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let boot = server.accept().map(|(_, boot)| boot);
        let _ = done.send(boot.map_err(|e| e.to_string()));
    });
    match got.recv_timeout(WAIT) {
        Ok(boot) => {
            waiter.join().expect("the accepting thread");
            boot.expect("the child's channels")
        }
        Err(_) => {
            if let Ok(tx) = IpcSender::<Boot<M>>::connect(name.to_string()) {
                let (a, _) = ipc::channel::<M>().expect("channel");
                let (_, b) = ipc::channel::<M>().expect("channel");
                let _ = tx.send((a, b));
            }
            let _ = waiter.join();
            panic!("the ipc-channel child did not connect within {WAIT:?}");
        }
    }
}

/// Receives from `rx`: with `spin`, busy-polling `try_recv` (a system call each) until
/// `limit` has passed; otherwise with the blocking `recv`, whose only deadline is the child
/// watchdog (see the doc comment of the bench). `Err` once every sender is gone.
fn recv<M: Message>(rx: &IpcReceiver<M>, spin: bool, limit: Duration) -> Result<M, ()> {
    if !spin {
        return match rx.recv() {
            Ok(m) => Ok(m),
            Err(IpcError::Disconnected) => Err(()),
            Err(e) => panic!("recv: {e}"),
        };
    }
    let mut patience = Patience::new(limit);
    loop {
        match rx.try_recv() {
            Ok(m) => return Ok(m),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::IpcError(IpcError::Disconnected)) => return Err(()),
            Err(e) => panic!("try_recv: {e}"),
        }
        if patience.exhausted() {
            panic!("nothing arrived within {limit:?}");
        }
        std::hint::spin_loop();
    }
}

/// The child of `roundtrip/ipc-*`: makes the channels, hands them over, and echoes every
/// message from `a` into `b` until `a` has no sender.
pub fn echo() {
    match env_var(KIND).as_str() {
        "bytes" => echo_as::<ByteBuf>(),
        "shmem" => echo_as::<IpcSharedMemory>(),
        kind => panic!("unknown message kind {kind}"),
    }
}

fn echo_as<M: Message>() {
    let spin = env_var(MODE) == "spin";
    let (a_tx, a_rx) = ipc::channel::<M>().expect("channel a");
    let (b_tx, b_rx) = ipc::channel::<M>().expect("channel b");
    IpcSender::<Boot<M>>::connect(env_var(SERVER))
        .expect("connect to the one-shot server")
        .send((a_tx, b_rx))
        .expect("hand over the channels");
    while let Ok(m) = recv(&a_rx, spin, CHILD_IDLE) {
        b_tx.send(m).expect("send back");
    }
}
