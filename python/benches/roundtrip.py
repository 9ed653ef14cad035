#!/usr/bin/env python3
"""Round trips and shared-counter updates between Python processes, per transport.

What it measures, for every transport below that imports (the others are skipped, with
the reason printed):

1. Round trip between two processes: the parent sends a payload, a child process
   receives it and sends what it received back, the parent receives that. Payloads: a
   10-entry and a 1000-entry dict (str keys to small ints, floats and strs) and 1-D NumPy
   float64 and uint8 arrays of 64 B, 4 KiB, 64 KiB, 1 MiB, 16 MiB and 64 MiB. Each cell
   (payload x transport) checks the echo against what was sent, warms up, then times as
   many round trips as fit in its time budget (at least a few); the median is reported.
2. Updates per second on one shared counter: ``d["n"] += 1`` under the transport's own
   lock, from 1, 2 and 4 worker processes at once, each doing a fixed number of updates.
   The final count must be exact; the rate is all updates over the time from the first
   worker's start to the last one's end.

Transports (columns):

  mp_queue       multiprocessing.Queue, one each way.
                 Counter: a Manager().dict() under a multiprocessing.Lock.
  shm_pickle     one multiprocessing.shared_memory block, sized for the largest payload,
                 used by both directions in turn; pickle protocol 5 with the arrays'
                 bytes out of band (copied once into the block, once out of it); a
                 multiprocessing.Semaphore per direction says a message is there.
                 Counter: a pickled dict in a block under a multiprocessing.Lock.
  faster_fifo    faster_fifo.Queue, one each way, big enough for the largest payload.
  ultradict      one UltraDict: the parent writes key "ping", the child answers under
                 "pong"; each side polls for the other's next message (UltraDict has no
                 wake-up of its own). Counter: the UltraDict's shared lock.
  iceoryx2       publish-subscribe of byte slices, one service each way, each message
                 followed by an iceoryx2 event that the receiver's listener waits for.
                 Arrays only: it carries bytes and fixed-layout structs, not dicts.
  shmval         this project: two pipes in a shmval region; the parent enqueues the
                 plain value, so it is copied into the pool on every send; the child
                 sends what it dequeued back by handle. Values come out as read-only
                 views over shared memory (no copy). Counter: a shmval.Locked table.
  shmval_shared  the same, but the parent shares the value into the pool once before
                 the timing loop and sends that handle each time.

Placement: with two or more usable CPUs the parent is pinned to the first and the
echoing child to the second; counter workers go round-robin over the usable CPUs.
Processes are started with multiprocessing's 'spawn' method. Every wait has a timeout:
a cell that fails or times out is reported as failed and the run goes on.

Run from the python/ directory of the repository:

    python benches/roundtrip.py                 # the whole run, a few minutes
    python benches/roundtrip.py --quick         # short budgets, well under a minute
    python benches/roundtrip.py --only mp_queue,shmval --json out.json --plot rt.png

Only NumPy is required; ``pip install -r benches/requirements.txt`` adds the other
transports and matplotlib (for --plot).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import json
import multiprocessing as mp
import os
import pickle
import platform
import queue
import signal
import statistics
import struct
import sys
import time
import traceback
from importlib import metadata

import numpy as np

KIB = 1 << 10
MIB = 1 << 20
ARRAY_SIZES = (64, 4 * KIB, 64 * KIB, MIB, 16 * MIB, 64 * MIB)
COUNTER_PROCS = (1, 2, 4)

CTX = mp.get_context("spawn")

START_TIMEOUT = 60.0  # a child starting up and attaching (imports included)
CHILD_IDLE_TIMEOUT = 300.0  # an echoing child waiting for the parent's next message
LOCK_TIMEOUT = 10.0  # one counter update waiting for the lock
WATCH_S = 1.0  # a reply later than this: check the child is still there while waiting
PIPE_CAPACITY = 2  # slots of each shmval pipe


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long to measure each cell, and how many updates each counter worker does."""

    cell_s: float
    min_reps: int
    max_reps: int
    warmup_s: float
    warmup_min: int
    warmup_max: int
    counter_updates: int
    counter_timeout_s: float


FULL = Budget(cell_s=1.0, min_reps=5, max_reps=20000, warmup_s=0.2, warmup_min=2,
              warmup_max=200, counter_updates=5000, counter_timeout_s=300.0)
QUICK = Budget(cell_s=0.1, min_reps=3, max_reps=2000, warmup_s=0.02, warmup_min=1,
               warmup_max=20, counter_updates=300, counter_timeout_s=60.0)


def op_timeout(nbytes: int) -> float:
    """The timeout of one send or receive of a payload of nbytes bytes."""
    return 10.0 + nbytes / (4 * MIB)


# --------------------------------------------------------------------------- payloads

def make_dict(entries: int) -> dict:
    """A dict of str keys to small ints, floats and strs, in turn."""
    d = {}
    for i in range(entries):
        kind = i % 3
        d[f"key{i:04d}"] = i if kind == 0 else (i + 0.25 if kind == 1 else f"v{i}")
    return d


def human_size(n: int) -> str:
    for unit, size in (("MiB", MIB), ("KiB", KIB)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}B"


@dataclasses.dataclass(frozen=True)
class Payload:
    """One row of the round-trip table: a dict of `entries` entries, or an array."""

    name: str
    nbytes: int  # an array's bytes; a dict's pickled size
    dtype: str | None = None  # "float64" / "uint8"; None for a dict
    entries: int = 0

    @property
    def is_array(self) -> bool:
        return self.dtype is not None

    def build(self):
        if not self.is_array:
            return make_dict(self.entries)
        dtype = np.dtype(self.dtype)
        n = self.nbytes // dtype.itemsize
        if dtype == np.uint8:
            return np.resize(np.arange(251, dtype=np.uint8), n)
        return np.arange(n, dtype=np.float64) * 0.5


def all_payloads() -> list[Payload]:
    rows = [Payload(f"dict{n}", len(pickle.dumps(make_dict(n), protocol=5)), entries=n)
            for n in (10, 1000)]
    for size in ARRAY_SIZES:
        for tag, dtype in (("f64", "float64"), ("u8", "uint8")):
            rows.append(Payload(f"{tag} {human_size(size)}", size, dtype))
    return rows


def same(got, sent) -> bool:
    """Whether what came back equals what was sent (a view is compared by its values)."""
    if isinstance(sent, np.ndarray):
        got = np.asarray(got)
        return got.dtype == sent.dtype and got.shape == sent.shape and bool(
            np.array_equal(got, sent))
    if hasattr(got, "to_python"):
        got = got.to_python()
    return dict(got) == sent


# ------------------------------------------------------------------ process helpers

def usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return []


def pin(cpu: int | None) -> None:
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass


def create_segment(name: str, size: int):
    """A new SharedMemory block that CPython's resource tracker leaves alone: the
    benchmark unlinks it itself (remove_segment), also on failure."""
    from multiprocessing import resource_tracker, shared_memory

    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name, create=True, size=size, track=False)
    shm = shared_memory.SharedMemory(name, create=True, size=size)
    resource_tracker.unregister(shm._name, "shared_memory")
    return shm


def attach_segment(name: str):
    """Attaches to a block without letting the resource tracker unlink it at exit."""
    from multiprocessing import resource_tracker, shared_memory

    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name, track=False)
    shm = shared_memory.SharedMemory(name)
    resource_tracker.unregister(shm._name, "shared_memory")
    return shm


def close_segment(shm) -> None:
    try:
        shm.close()
    except BufferError:  # a view still exported; the mapping goes with the process
        pass


def remove_segment(shm) -> None:
    """Closes and unlinks a block made by create_segment."""
    from multiprocessing import resource_tracker

    close_segment(shm)
    if sys.version_info < (3, 13):
        # SharedMemory.unlink() unregisters on 3.11/3.12: register first to stay balanced.
        resource_tracker.register(shm._name, "shared_memory")
    try:
        shm.unlink()
    except FileNotFoundError:
        pass


def expect(conn, proc, what: str, timeout: float):
    """Waits for message `what` from a child; returns its payload or raises."""
    if not conn.poll(timeout):
        state = "alive" if proc.is_alive() else f"exited with code {proc.exitcode}"
        raise TimeoutError(f"child sent no {what!r} within {timeout:.0f} s ({state})")
    try:
        kind, data = conn.recv()
    except EOFError:
        proc.join(1.0)
        raise RuntimeError(f"child exited with code {proc.exitcode} before {what!r}") from None
    if kind == "error":
        raise RuntimeError("child failed: " + data.strip().splitlines()[-1])
    if kind != what:
        raise RuntimeError(f"child sent {kind!r}, expected {what!r}")
    return data


def stop_process(proc, timeout: float = 5.0) -> None:
    """Ends a child that still runs (SIGTERM, then SIGKILL) and reaps it."""
    if proc is None:
        return
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout)
    if proc.is_alive():
        proc.kill()
    proc.join(timeout)


def short_error(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


# ----------------------------------------------------------------------- transports

class End:
    """One process's end of a two-way link. Timeouts are in seconds."""

    def prepare(self, obj):
        """What to send for `obj` (once per cell, before timing)."""
        return obj

    def send(self, obj, timeout: float) -> None:
        raise NotImplementedError

    def recv(self, timeout: float):
        raise NotImplementedError

    def send_stop(self, timeout: float) -> None:
        self.send(None, timeout)

    def is_stop(self, obj) -> bool:
        return obj is None

    def close(self) -> None:
        pass


class Transport:
    """A transport between a parent and one echoing child.

    The parent constructs it (creating whatever must exist before the child starts),
    hands child_args() to the child process, which opens its end with child_end();
    then the parent opens its own with parent_end(). close() releases what the parent
    created. `counter` is the class of its shared counter, or None (`counter_na` says why).
    """

    key = ""
    counter = None
    counter_na = ""
    in_counter_table = True

    @staticmethod
    def load() -> None:
        """Imports what the transport needs; raises if it cannot."""

    @classmethod
    def payload_na(cls, payload: Payload) -> str | None:
        return None

    def __init__(self, max_bytes: int, tag: str):
        raise NotImplementedError

    def child_args(self):
        raise NotImplementedError

    def parent_end(self, timeout: float) -> End:
        raise NotImplementedError

    @classmethod
    def child_end(cls, args, timeout: float) -> End:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Counter:
    """A shared dict {"n": int}: the parent creates it, workers attach and increment."""

    mechanism = ""

    @classmethod
    def create(cls, tag: str) -> "Counter":
        raise NotImplementedError

    def args(self):
        raise NotImplementedError

    @classmethod
    def attach(cls, args, timeout: float) -> "Counter":
        raise NotImplementedError

    def increment(self, timeout: float) -> None:
        raise NotImplementedError

    def read(self, timeout: float) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


# ---- multiprocessing.Queue

class QueueEnd(End):
    """Any queue with put(obj, timeout=) and get(timeout=) raising queue.Empty."""

    def __init__(self, out_q, in_q):
        self.out_q = out_q
        self.in_q = in_q

    def send(self, obj, timeout):
        self.out_q.put(obj, timeout=timeout)

    def recv(self, timeout):
        try:
            return self.in_q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"nothing received within {timeout:.0f} s") from None


class MpCounter(Counter):
    mechanism = "Manager().dict() under a multiprocessing.Lock"

    def __init__(self, d, lock, manager=None):
        self.d = d
        self.lock = lock
        self.manager = manager

    @classmethod
    def create(cls, tag):
        manager = CTX.Manager()
        try:
            return cls(manager.dict({"n": 0}), CTX.Lock(), manager)
        except BaseException:
            manager.shutdown()
            raise

    def args(self):
        return (self.d, self.lock)

    @classmethod
    def attach(cls, args, timeout):
        return cls(*args)

    def increment(self, timeout):
        if not self.lock.acquire(timeout=timeout):
            raise TimeoutError(f"lock not acquired within {timeout:.0f} s")
        try:
            self.d["n"] += 1
        finally:
            self.lock.release()

    def read(self, timeout):
        return int(self.d["n"])

    def close(self):
        if self.manager is not None:
            self.manager.shutdown()


class TwoQueues(Transport):
    """A transport of two queues, `there` and `back`, each carrying (seq, value) one way."""

    def child_args(self):
        return (self.there, self.back)

    def parent_end(self, timeout):
        return QueueEnd(self.there, self.back)

    @classmethod
    def child_end(cls, args, timeout):
        there, back = args
        return QueueEnd(back, there)


class MpQueue(TwoQueues):
    key = "mp_queue"
    counter = MpCounter

    def __init__(self, max_bytes, tag):
        self.there = CTX.Queue()
        self.back = CTX.Queue()

    def close(self):
        for q in (self.there, self.back):
            q.cancel_join_thread()  # nothing left to deliver matters once we close
            q.close()


# ---- SharedMemory + pickle

HEADER = struct.Struct("<QQ")  # pickle stream length, number of out-of-band buffers
LENGTH = struct.Struct("<Q")


def write_pickled(buf: memoryview, obj) -> None:
    """Pickles obj into buf: the pickle stream, then the out-of-band buffers (an
    array's data), each copied straight from the array into the block, once."""
    buffers = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    try:
        off = HEADER.size + LENGTH.size * len(raws)
        need = off + len(data) + sum(r.nbytes for r in raws)
        if need > len(buf):
            raise ValueError(f"message of {need} bytes does not fit the {len(buf)}-byte block")
        HEADER.pack_into(buf, 0, len(data), len(raws))
        for i, r in enumerate(raws):
            LENGTH.pack_into(buf, HEADER.size + LENGTH.size * i, r.nbytes)
        buf[off:off + len(data)] = data
        off += len(data)
        for r in raws:
            buf[off:off + r.nbytes] = r
            off += r.nbytes
    finally:
        for r in raws:
            r.release()


def read_pickled(buf: memoryview):
    """Unpickles what write_pickled left in buf; out-of-band buffers are copied out once
    (the block is reused by the next message)."""
    length, count = HEADER.unpack_from(buf, 0)
    off = HEADER.size + LENGTH.size * count
    sizes = [LENGTH.unpack_from(buf, HEADER.size + LENGTH.size * i)[0] for i in range(count)]
    stream = buf[off:off + length]
    off += length
    buffers = []
    for n in sizes:
        buffers.append(bytearray(buf[off:off + n]))
        off += n
    try:
        return pickle.loads(stream, buffers=buffers)
    finally:
        stream.release()


class ShmPickleEnd(End):
    def __init__(self, shm, ready_out, ready_in, owns_shm: bool):
        self.shm = shm
        self.ready_out = ready_out
        self.ready_in = ready_in
        self.owns_shm = owns_shm

    def send(self, obj, timeout):
        # One message in flight at a time: the other side has read the block before it
        # answers, so writing here never overwrites what it is reading.
        write_pickled(self.shm.buf, obj)
        self.ready_out.release()

    def recv(self, timeout):
        if not self.ready_in.acquire(timeout=timeout):
            raise TimeoutError(f"nothing received within {timeout:.0f} s")
        return read_pickled(self.shm.buf)

    def close(self):
        if self.owns_shm:
            close_segment(self.shm)


class ShmPickleCounter(Counter):
    mechanism = "pickled dict in a SharedMemory block under a multiprocessing.Lock"
    SIZE = 64 * KIB

    def __init__(self, shm, lock, owner: bool):
        self.shm = shm
        self.lock = lock
        self.owner = owner

    @classmethod
    def create(cls, tag):
        shm = create_segment(f"rtb{os.getpid()}{tag}pc", cls.SIZE)
        try:
            write_pickled(shm.buf, {"n": 0})
            return cls(shm, CTX.Lock(), owner=True)
        except BaseException:
            remove_segment(shm)
            raise

    def args(self):
        return (self.shm.name, self.lock)

    @classmethod
    def attach(cls, args, timeout):
        name, lock = args
        return cls(attach_segment(name), lock, owner=False)

    def increment(self, timeout):
        if not self.lock.acquire(timeout=timeout):
            raise TimeoutError(f"lock not acquired within {timeout:.0f} s")
        try:
            d = read_pickled(self.shm.buf)
            d["n"] += 1
            write_pickled(self.shm.buf, d)
        finally:
            self.lock.release()

    def read(self, timeout):
        if not self.lock.acquire(timeout=timeout):
            raise TimeoutError(f"lock not acquired within {timeout:.0f} s")
        try:
            return int(read_pickled(self.shm.buf)["n"])
        finally:
            self.lock.release()

    def close(self):
        if self.owner:
            remove_segment(self.shm)
        else:
            close_segment(self.shm)


class ShmPickle(Transport):
    key = "shm_pickle"
    counter = ShmPickleCounter

    def __init__(self, max_bytes, tag):
        self.shm = create_segment(f"rtb{os.getpid()}{tag}pk", max_bytes + MIB)
        try:
            self.to_child = CTX.Semaphore(0)
            self.to_parent = CTX.Semaphore(0)
        except BaseException:
            remove_segment(self.shm)
            raise

    def child_args(self):
        return (self.shm.name, self.to_child, self.to_parent)

    def parent_end(self, timeout):
        return ShmPickleEnd(self.shm, self.to_child, self.to_parent, owns_shm=False)

    @classmethod
    def child_end(cls, args, timeout):
        name, to_child, to_parent = args
        return ShmPickleEnd(attach_segment(name), to_parent, to_child, owns_shm=True)

    def close(self):
        remove_segment(self.shm)


# ---- faster-fifo

class FasterFifo(TwoQueues):
    key = "faster_fifo"
    counter_na = "n/a: a FIFO queue only, no shared dict or lock"

    @staticmethod
    def load():
        import faster_fifo  # noqa: F401
        import faster_fifo_reduction  # noqa: F401  (lets a Queue go to a spawned child)

    def __init__(self, max_bytes, tag):
        from faster_fifo import Queue

        # Room for the largest pickled payload plus the queue's own framing.
        size = max_bytes + MIB
        self.there = Queue(max_size_bytes=size)
        self.back = Queue(max_size_bytes=size)


# ---- UltraDict

class UltraDictEnd(End):
    """Writes (seq, value) under its own key; polls the other side's key for a new seq."""

    def __init__(self, d, out_key, in_key, owns_dict: bool):
        self.d = d
        self.out_key = out_key
        self.in_key = in_key
        self.owns_dict = owns_dict
        self.sent = 0
        self.seen = 0

    def send(self, obj, timeout):
        # The write takes the shared lock inside; taking it first (it is reentrant)
        # bounds that wait.
        self.sent += 1
        lock = self.d.lock
        lock.acquire(timeout=timeout)
        try:
            self.d[self.out_key] = (self.sent, obj)
        finally:
            lock.release()

    def recv(self, timeout):
        deadline = time.monotonic() + timeout
        d, key = self.d, self.in_key
        while True:
            item = d.get(key)
            if item is not None and item[0] != self.seen:
                self.seen = item[0]
                return item[1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing received within {timeout:.0f} s")

    def close(self):
        if self.owns_dict:
            self.d.close()


class UltraDictCounter(Counter):
    mechanism = "UltraDict(shared_lock=True), d.lock.acquire(timeout=...)"

    def __init__(self, d, owner: bool):
        self.d = d
        self.owner = owner

    @classmethod
    def create(cls, tag):
        from UltraDict import UltraDict

        d = UltraDict(name=f"rtb{os.getpid()}{tag}uc", create=True, buffer_size=MIB,
                      full_dump_size=MIB, shared_lock=True, auto_unlink=False)
        try:
            d["n"] = 0
        except BaseException:
            d.close(unlink=True)
            raise
        return cls(d, owner=True)

    def args(self):
        return self.d.name

    @classmethod
    def attach(cls, args, timeout):
        from UltraDict import UltraDict

        return cls(UltraDict(name=args, create=False), owner=False)

    def increment(self, timeout):
        # `with d.lock(timeout=t):` hands its arguments to acquire() in the wrong order
        # in UltraDict 0.0.6: a waiter sleeps t seconds once, then gives up. So acquire
        # is called with keywords; it polls the lock as `with d.lock:` does.
        lock = self.d.lock
        lock.acquire(timeout=timeout)
        try:
            self.d["n"] += 1
        finally:
            lock.release()

    def read(self, timeout):
        lock = self.d.lock
        lock.acquire(timeout=timeout)
        try:
            return int(self.d["n"])
        finally:
            lock.release()

    def close(self):
        self.d.close(unlink=self.owner)


class UltraDictTransport(Transport):
    key = "ultradict"
    counter = UltraDictCounter

    @staticmethod
    def load():
        import atomics  # noqa: F401  (UltraDict's shared lock needs it)
        from UltraDict import UltraDict  # noqa: F401

    def __init__(self, max_bytes, tag):
        from UltraDict import UltraDict

        # The update stream must hold at least one message; a full dump holds both keys.
        size = 2 * max_bytes + MIB
        self.d = UltraDict(name=f"rtb{os.getpid()}{tag}ud", create=True, buffer_size=size,
                           full_dump_size=size, shared_lock=True, auto_unlink=False)

    def child_args(self):
        return self.d.name

    def parent_end(self, timeout):
        return UltraDictEnd(self.d, "ping", "pong", owns_dict=False)

    @classmethod
    def child_end(cls, args, timeout):
        from UltraDict import UltraDict

        return UltraDictEnd(UltraDict(name=args, create=False), "pong", "ping", owns_dict=True)

    def close(self):
        self.d.close(unlink=True)


# ---- iceoryx2

STOP_LEN = 1  # a one-byte message tells the child to stop (no payload is one byte)


def load_iceoryx2():
    import iceoryx2

    iceoryx2.set_log_level_from_env_or(iceoryx2.LogLevel.Error)
    return iceoryx2


class IceoryxEnd(End):
    """Publishes byte slices on one service, subscribes to the other; each send is
    followed by an event, and a receiver with nothing waits on its listener."""

    def __init__(self, base: str, out_name: str, in_name: str, as_arrays: bool):
        iox = self.iox = load_iceoryx2()
        self.node = (iox.NodeBuilder.new()
                     .signal_handling_mode(iox.SignalHandlingMode.Disabled)
                     .create(iox.ServiceType.Ipc))
        out_ps, out_ev = self._services(base + out_name)
        in_ps, in_ev = self._services(base + in_name)
        self.sub = in_ps.subscriber_builder().create()
        self.listener = in_ev.listener_builder().create()
        self.pub = (out_ps.publisher_builder()
                    .initial_max_slice_len(4 * KIB)
                    .allocation_strategy(iox.AllocationStrategy.PowerOfTwo)
                    .create())
        self.notifier = out_ev.notifier_builder().create()
        self.as_arrays = as_arrays
        self.dtype = None

    def _services(self, name):
        iox = self.iox
        ps = (self.node.service_builder(iox.ServiceName.new(name))
              .publish_subscribe(iox.Slice[ctypes.c_uint8]).open_or_create())
        ev = self.node.service_builder(iox.ServiceName.new(name + ".ev")).event().open_or_create()
        return ps, ev

    def _publish(self, src: int | None, n: int) -> None:
        sample = self.pub.loan_slice_uninit(n)
        if src is None:
            ctypes.memset(sample.payload_ptr, 0, n)
        else:
            ctypes.memmove(sample.payload_ptr, src, n)
        sample.assume_init().send()
        self.notifier.notify()

    def send(self, obj, timeout):
        if isinstance(obj, np.ndarray):
            self.dtype = obj.dtype
            self._publish(obj.ctypes.data, obj.nbytes)
        else:  # a received sample, sent on as it is
            self._publish(obj.payload_ptr, obj.payload().len())

    def send_stop(self, timeout):
        self._publish(None, STOP_LEN)

    def is_stop(self, obj):
        return obj.payload().len() == STOP_LEN

    def recv(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            sample = self.sub.receive()
            if sample is not None:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"nothing received within {timeout:.0f} s")
            self.listener.timed_wait(self.iox.Duration.from_secs_f64(left))
        if not self.as_arrays:
            return sample
        # A read-only array over the sample's memory; the sample lives as long as it.
        n = sample.payload().len()
        raw = (ctypes.c_uint8 * n).from_address(sample.payload_ptr)
        raw.sample = sample
        array = np.frombuffer(raw, dtype=self.dtype)
        array.flags.writeable = False
        return array

    def update_connections(self):
        self.pub.update_connections()

    def close(self):
        if self.node is None:
            return
        for port in (self.pub, self.sub, self.notifier, self.listener):
            try:
                port.delete()
            except Exception:
                pass
        try:
            self.node.try_cleanup_dead_nodes()  # what a killed child left behind
        except Exception:
            pass
        self.pub = self.sub = self.notifier = self.listener = self.node = None
        gc.collect()


class Iceoryx2(Transport):
    key = "iceoryx2"
    counter_na = "n/a: no lock across processes (its blackboard has a single writer)"

    @staticmethod
    def load():
        load_iceoryx2()

    @classmethod
    def payload_na(cls, payload):
        return None if payload.is_array else "n/a: carries bytes and fixed-layout structs only"

    def __init__(self, max_bytes, tag):
        self.base = f"rtb{os.getpid()}{tag}"
        self.end = IceoryxEnd(self.base, "/ping", "/pong", as_arrays=True)

    def child_args(self):
        return self.base

    def parent_end(self, timeout):
        self.end.update_connections()  # the child's subscriber appeared meanwhile
        return self.end

    @classmethod
    def child_end(cls, args, timeout):
        return IceoryxEnd(args, "/pong", "/ping", as_arrays=False)

    def close(self):
        self.end.close()


# ---- shmval

class ShmvalEnd(End):
    def __init__(self, sides, out_side, in_side, share: bool):
        import shmval

        self.timeout_error = shmval.Timeout
        self.sides = sides
        self.out_pipe = out_side.pipe
        self.in_pipe = in_side.pipe
        self.pool = out_side.pool
        self.share = share

    def prepare(self, obj):
        return self.pool.share(obj) if self.share else obj

    def send(self, obj, timeout):
        self.out_pipe.enqueue(obj, timeout)

    def recv(self, timeout):
        try:
            return self.in_pipe.dequeue(timeout)
        except self.timeout_error:
            raise TimeoutError(f"nothing received within {timeout:.0f} s") from None

    def close(self):
        self.out_pipe = self.in_pipe = self.pool = None
        for side in self.sides:
            side.close()


class ShmvalCounter(Counter):
    mechanism = "shmval.Locked table, with t.lock(timeout=...) as g"

    def __init__(self, table, sides, main=None):
        self.table = table
        self.sides = sides
        self.main = main

    @classmethod
    def create(cls, tag):
        import shmval

        region = f"bench{os.getpid()}{tag}"
        main = shmval.ShmMain(region, 4 * MIB)
        srv = None
        try:
            srv = shmval.ServerSide(region, "ctl", 1)
            table = shmval.Locked(srv.pool, {"n": 0})
            srv.names().publish("counter", table)
            return cls(table, [srv], main)
        except BaseException:
            if srv is not None:
                srv.close()
            main.close()
            raise

    def args(self):
        return self.main.name

    @classmethod
    def attach(cls, args, timeout):
        import shmval

        cli = shmval.ClientSide(args, "ctl", timeout=timeout)
        try:
            return cls(cli.names().lookup("counter", timeout), [cli])
        except BaseException:
            cli.close()
            raise

    def increment(self, timeout):
        with self.table.lock(timeout=timeout) as g:
            g["n"] += 1

    def read(self, timeout):
        with self.table.lock(timeout=timeout) as g:
            return int(g["n"])

    def close(self):
        self.table = None
        for side in self.sides:
            side.close()
        if self.main is not None:
            self.main.close()


class Shmval(Transport):
    key = "shmval"
    counter = ShmvalCounter
    share = False

    @staticmethod
    def load():
        import shmval  # noqa: F401

    def __init__(self, max_bytes, tag):
        import shmval

        self.region = f"bench{os.getpid()}{tag}"
        # Room for a copy in flight each way and the one the parent still holds.
        size = 3 * max_bytes + 16 * MIB
        self.main = shmval.ShmMain(self.region, size, max_bytes=2 * size)
        try:
            self.there = shmval.ServerSide(self.region, "there", PIPE_CAPACITY)
        except BaseException:
            self.main.close()
            raise
        self.back = None

    def child_args(self):
        return self.region

    def parent_end(self, timeout):
        import shmval

        self.back = shmval.ClientSide(self.region, "back", timeout=timeout)
        return ShmvalEnd([self.there, self.back], self.there, self.back, self.share)

    @classmethod
    def child_end(cls, args, timeout):
        import shmval

        there = shmval.ClientSide(args, "there", timeout=timeout)
        try:
            back = shmval.ServerSide(args, "back", PIPE_CAPACITY, timeout=timeout)
        except BaseException:
            there.close()
            raise
        return ShmvalEnd([back, there], back, there, share=False)

    def close(self):
        for side in (self.there, self.back):
            if side is not None:
                side.close()
        self.main.close()


class ShmvalShared(Shmval):
    key = "shmval_shared"
    counter = None
    in_counter_table = False
    share = True


TRANSPORTS = {cls.key: cls for cls in (MpQueue, ShmPickle, FasterFifo, UltraDictTransport,
                                       Iceoryx2, Shmval, ShmvalShared)}


# --------------------------------------------------------------------- child entries

def echo_child(key, args, conn, cpu, idle_timeout):
    """Child process: receives and sends back until told to stop."""
    pin(cpu)
    end = None
    try:
        end = TRANSPORTS[key].child_end(args, START_TIMEOUT)
        conn.send(("ready", os.getpid()))
        while True:
            obj = end.recv(idle_timeout)
            if end.is_stop(obj):
                break
            end.send(obj, idle_timeout)
            del obj  # give back what it holds (a sample, a pool handle) before waiting
        del obj
        conn.send(("done", None))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        if end is not None:
            end.close()


def counter_worker(key, args, updates, cpu, conn, start, timeout):
    """Counter worker process: attaches, waits for the start, does its updates."""
    pin(cpu)
    counter = None
    try:
        counter = TRANSPORTS[key].counter.attach(args, START_TIMEOUT)
        conn.send(("ready", None))
        if not start.wait(timeout):
            raise TimeoutError("no start signal")
        t0 = time.perf_counter()
        for _ in range(updates):
            counter.increment(LOCK_TIMEOUT)
        t1 = time.perf_counter()
        conn.send(("done", (t0, t1)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        if counter is not None:
            counter.close()


# --------------------------------------------------------------------------- harness

class Progress:
    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", file=sys.stderr, flush=True)


class Results:
    def __init__(self):
        self.round_trip: dict[str, dict[str, dict]] = {}
        self.updates: dict[str, dict[str, float]] = {}
        self.na: dict[str, dict[str, str]] = {}
        self.failed: dict[str, dict[str, str]] = {}
        self.skipped: dict[str, str] = {}
        self.mechanisms: dict[str, str] = {}

    def note(self, table: dict, key: str, cell: str, value) -> None:
        table.setdefault(key, {})[cell] = value


class EchoSession:
    """A transport and its echoing child, from start to stop."""

    def __init__(self, cls, max_bytes: int, tag: str, child_cpu: int | None):
        self.transport = self.proc = self.end = self.conn = None
        try:
            self.transport = cls(max_bytes, tag)
            self.conn, child_conn = CTX.Pipe(duplex=False)
            self.proc = CTX.Process(
                target=echo_child, name=f"echo-{cls.key}", daemon=True,
                args=(cls.key, self.transport.child_args(), child_conn, child_cpu,
                      CHILD_IDLE_TIMEOUT))
            self.proc.start()
            child_conn.close()
            expect(self.conn, self.proc, "ready", START_TIMEOUT)
            self.end = self.transport.parent_end(START_TIMEOUT)
        except BaseException:
            self.abort()
            raise

    def wait_reply(self, timeout: float, waited: float):
        """After a first receive timed out: goes on waiting, in slices, while the child
        is there and has reported no error."""
        deadline = time.monotonic() + timeout - waited
        while True:
            if self.conn.poll(0):
                raise RuntimeError(f"child failed: {self.child_error()}")
            if not self.proc.is_alive():
                raise RuntimeError(f"child exited with code {self.proc.exitcode}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"nothing received within {timeout:.0f} s")
            try:
                return self.end.recv(min(WATCH_S, left))
            except TimeoutError:
                pass

    def child_error(self) -> str | None:
        """The child's own error, if it reported one."""
        try:
            if self.conn is not None and self.conn.poll(0.5):
                kind, data = self.conn.recv()
                if kind == "error":
                    return data.strip().splitlines()[-1]
        except (EOFError, OSError):
            pass
        return None

    def close(self) -> None:
        try:
            self.end.send_stop(START_TIMEOUT)
            expect(self.conn, self.proc, "done", START_TIMEOUT)
            self.proc.join(START_TIMEOUT)
        finally:
            self.abort()

    def abort(self) -> None:
        stop_process(self.proc)
        for release in (getattr(self.end, "close", None), getattr(self.transport, "close", None)):
            if release is None:
                continue
            try:
                release()
            except Exception as e:
                print(f"  cleanup: {short_error(e)}", file=sys.stderr)
        self.end = self.transport = self.proc = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def measure(session: EchoSession, payload: Payload, budget: Budget) -> list[int]:
    """Round-trip times in ns for one cell: checked, warmed up, then timed."""
    end = session.end
    original = payload.build()
    timeout = op_timeout(payload.nbytes)
    first = min(WATCH_S, timeout)
    sent = end.prepare(original)

    def round_trip():
        end.send(sent, timeout)
        try:
            return end.recv(first)
        except TimeoutError:
            return session.wait_reply(timeout, first)

    if not same(round_trip(), original):
        raise AssertionError("the echo differs from what was sent")
    warm_until = time.perf_counter() + budget.warmup_s
    done = 1
    while done < budget.warmup_min or (
            done < budget.warmup_max and time.perf_counter() < warm_until):
        round_trip()
        done += 1

    times = []
    gc.collect()
    gc.disable()
    try:
        stop_at = time.perf_counter() + budget.cell_s
        while len(times) < budget.min_reps or (
                len(times) < budget.max_reps and time.perf_counter() < stop_at):
            t0 = time.perf_counter_ns()
            end.send(sent, timeout)
            try:
                got = end.recv(first)
            except TimeoutError:  # slow, or the child is gone: the rare path
                got = session.wait_reply(timeout, first)
            times.append(time.perf_counter_ns() - t0)
    finally:
        gc.enable()
    if not same(got, original):
        raise AssertionError("the last echo differs from what was sent")
    return times


def summarize(times_ns: list[int]) -> dict:
    us = sorted(t / 1000 for t in times_ns)
    q = statistics.quantiles(us, n=10) if len(us) >= 2 else [us[0]] * 9
    return {"median_us": statistics.median(us), "p10_us": q[0], "p90_us": q[-1],
            "reps": len(us)}


def run_round_trips(cls, payloads, budget, results, progress, child_cpu, tags):
    cells = [p for p in payloads if not cls.payload_na(p)]
    for p in payloads:
        reason = cls.payload_na(p)
        if reason:
            results.note(results.na, cls.key, p.name, reason)
    if not cells:
        return
    max_bytes = max(p.nbytes for p in cells)
    session = None
    try:
        for p in cells:
            if session is None:
                try:
                    session = EchoSession(cls, max_bytes, next(tags), child_cpu)
                except Exception as e:
                    why = f"failed: could not start: {short_error(e)}"
                    progress(f"{cls.key:<13} {why}")
                    for rest in cells[cells.index(p):]:
                        results.note(results.failed, cls.key, rest.name, why)
                    return
            try:
                stats = summarize(measure(session, p, budget))
            except Exception as e:
                why = short_error(e)
                child = session.child_error()
                if child:
                    why += f" (child: {child})"
                results.note(results.failed, cls.key, p.name, f"failed: {why}")
                progress(f"{cls.key:<13} {p.name:<10} FAILED: {why}")
                session.abort()
                session = None
                continue
            results.note(results.round_trip, cls.key, p.name, stats)
            progress(f"{cls.key:<13} {p.name:<10} {fmt_us(stats['median_us']):>9} us "
                     f"median  ({stats['reps']} round trips)")
    except BaseException:  # interrupted: no goodbyes, just clean up
        if session is not None:
            session.abort()
        raise
    if session is not None:
        try:
            session.close()
        except Exception as e:
            progress(f"{cls.key:<13} stopping the child: {short_error(e)}")


def run_counter(cls, procs: int, budget: Budget, cpus: list[int], tag: str) -> float:
    """Updates per second from `procs` workers; raises if the count is not exact."""
    counter = cls.counter.create(tag)
    workers, conns = [], []
    start = CTX.Event()
    try:
        for i in range(procs):
            reader, writer = CTX.Pipe(duplex=False)
            cpu = cpus[i % len(cpus)] if len(cpus) >= 2 else None
            proc = CTX.Process(target=counter_worker, name=f"counter-{cls.key}-{i}",
                               daemon=True,
                               args=(cls.key, counter.args(), budget.counter_updates, cpu,
                                     writer, start, budget.counter_timeout_s))
            proc.start()
            writer.close()
            workers.append(proc)
            conns.append(reader)
        for conn, proc in zip(conns, workers):
            expect(conn, proc, "ready", START_TIMEOUT)
        start.set()
        deadline = time.monotonic() + budget.counter_timeout_s
        spans = [expect(conn, proc, "done", max(0.0, deadline - time.monotonic()))
                 for conn, proc in zip(conns, workers)]
        for proc in workers:
            proc.join(START_TIMEOUT)
        total = procs * budget.counter_updates
        final = counter.read(LOCK_TIMEOUT)
        if final != total:
            raise AssertionError(f"final count {final}, expected {total}")
        return total / (max(s[1] for s in spans) - min(s[0] for s in spans))
    finally:
        for proc in workers:
            stop_process(proc)
        for conn in conns:
            conn.close()
        counter.close()


def run_counters(cls, budget, results, progress, cpus, tags):
    results.mechanisms[cls.key] = cls.counter.mechanism
    for procs in COUNTER_PROCS:
        try:
            rate = run_counter(cls, procs, budget, cpus, next(tags))
        except Exception as e:
            why = short_error(e)
            results.note(results.failed, cls.key, f"counter x{procs}", f"failed: {why}")
            progress(f"{cls.key:<13} counter x{procs} FAILED: {why}")
            continue
        results.note(results.updates, cls.key, str(procs), rate)
        progress(f"{cls.key:<13} counter x{procs}: {rate:,.0f} updates/s")


# --------------------------------------------------------------------------- output

def fmt_us(v: float) -> str:
    if v < 10:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def cell_text(results: Results, key: str, payload: str) -> str:
    if payload in results.round_trip.get(key, {}):
        return fmt_us(results.round_trip[key][payload]["median_us"])
    if payload in results.na.get(key, {}):
        return "n/a"
    if payload in results.failed.get(key, {}):
        return "FAILED"
    return "-"


def render_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(  # noqa: E731
        (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def report(results: Results, payloads: list[Payload], keys: list[str], cond: dict) -> str:
    out = []
    cols = [k for k in keys if k not in results.skipped]
    pin_text = cond["pinning"]
    out.append(f"Round trip between two processes, median in microseconds "
               f"({cond['cpus_usable']} CPUs; {pin_text}; Python {cond['python']}, "
               f"NumPy {cond['numpy']}{'; --quick' if cond['quick'] else ''})")
    out.append("")
    if not cols:
        out.append("(nothing measured)")
    else:
        rows = [[p.name] + [cell_text(results, k, p.name) for k in cols] for p in payloads]
        out.append(render_table(["payload"] + cols, rows))
        base = results.round_trip.get("mp_queue", {})
        others = [k for k in cols if k != "mp_queue"]
        if base and others:
            out.append("")
            out.append("Ratio to mp_queue (median / mp_queue's median; below 1 is faster)")
            out.append("")
            rows = []
            for p in payloads:
                row = [p.name]
                for k in others:
                    got = results.round_trip.get(k, {}).get(p.name)
                    if got and p.name in base:
                        row.append(f"{got['median_us'] / base[p.name]['median_us']:.3g}x")
                    else:
                        row.append(cell_text(results, k, p.name) if not got else "-")
                rows.append(row)
            out.append(render_table(["payload"] + others, rows))
        elif others:
            out.append("")
            out.append("(no ratios: mp_queue was not measured)")
    ccols = [k for k in cols if TRANSPORTS[k].in_counter_table]
    if ccols:
        out.append("")
        out.append(f"Shared counter d['n'] += 1 under the transport's lock, updates/s in total "
                   f"({cond['counter_updates_per_process']} updates per process)")
        out.append("")
        rows = []
        for procs in COUNTER_PROCS:
            row = [f"{procs} proc{'s' if procs > 1 else ''}"]
            for k in ccols:
                if TRANSPORTS[k].counter is None:
                    row.append("n/a")
                elif str(procs) in results.updates.get(k, {}):
                    row.append(f"{results.updates[k][str(procs)]:,.0f}")
                elif f"counter x{procs}" in results.failed.get(k, {}):
                    row.append("FAILED")
                else:
                    row.append("-")
            rows.append(row)
        out.append(render_table(["processes"] + ccols, rows))
    notes = []
    for k in cols:
        cls = TRANSPORTS[k]
        if cls.in_counter_table:
            how = cls.counter.mechanism if cls.counter else cls.counter_na
            notes.append(f"  {k}: counter: {how}")
        for reason in sorted(set(results.na.get(k, {}).values())):
            cells = [c for c, r in results.na[k].items() if r == reason]
            notes.append(f"  {k}: {reason} ({', '.join(cells)})")
        for cell, reason in results.failed.get(k, {}).items():
            notes.append(f"  {k}: {cell}: {reason}")
    for k, reason in results.skipped.items():
        notes.append(f"  {k}: skipped: {reason}")
    if notes:
        out.append("")
        out.append("Notes:")
        out.extend(notes)
    return "\n".join(out)


def write_plot(path: str, results: Results, payloads: list[Payload], keys: list[str]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"--plot: matplotlib is not importable ({e}); no plot written", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(9, 6))
    arrays = [p for p in payloads if p.is_array]
    for i, key in enumerate(k for k in keys if k in results.round_trip):
        color = f"C{i % 10}"
        for dtype, style in (("float64", "-o"), ("uint8", "x")):
            pts = [(p.nbytes, results.round_trip[key][p.name]["median_us"])
                   for p in arrays if p.dtype == dtype and p.name in results.round_trip[key]]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, style, color=color, label=key if dtype == "float64" else None,
                        markersize=5 if dtype == "float64" else 7)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(ARRAY_SIZES, [human_size(s) for s in ARRAY_SIZES])
    ax.set_xlabel("array payload size")
    ax.set_ylabel("round trip, median (µs)")
    ax.set_title("Round trip between two processes (lines: float64; x: uint8)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot written to {path}", file=sys.stderr)


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


DISTRIBUTIONS = {"numpy": "numpy", "faster-fifo": "faster_fifo", "UltraDict": "UltraDict",
                 "atomics": "atomics", "iceoryx2": "iceoryx2", "shmval": "shmval",
                 "matplotlib": "matplotlib"}


def package_versions() -> dict:
    """Installed versions; a module imported without package metadata gives its
    __version__, or where it came from."""
    packages = {}
    for dist, module in DISTRIBUTIONS.items():
        try:
            packages[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            mod = sys.modules.get(module)
            if mod is None:
                packages[dist] = None
            else:
                packages[dist] = getattr(mod, "__version__", None) or (
                    f"unknown version, imported from {os.path.dirname(mod.__file__)}")
    return packages


def conditions(budget: Budget, quick: bool, cpus: list[int]) -> dict:
    if len(cpus) >= 2:
        pinning = (f"parent on CPU {cpus[0]}, child on CPU {cpus[1]}; counter workers "
                   f"round-robin over CPUs {','.join(map(str, cpus))}")
    else:
        pinning = "none (fewer than 2 usable CPUs)"
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(cpus) or os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "packages": package_versions(),  # again at the end, with what was imported
        "pinning": pinning,
        "start_method": "spawn",
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "quick": quick,
        "cell_budget_s": budget.cell_s,
        "min_round_trips_per_cell": budget.min_reps,
        "counter_updates_per_process": budget.counter_updates,
    }


# ------------------------------------------------------------------------ /dev/shm

def shm_entries() -> set[str]:
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def check_dev_shm(before: set[str]) -> list[str]:
    """New entries of /dev/shm since the start, after removing iceoryx2's global
    management segment when this run created it and no other iceoryx2 entry is left."""
    left = sorted(shm_entries() - before)
    iox = [n for n in shm_entries() if n.startswith("iox2_")]
    if iox and all(n.endswith(".global_mgmt") and n in left for n in iox):
        for n in iox:
            try:
                os.unlink(os.path.join("/dev/shm", n))
                left.remove(n)
            except OSError:
                pass
    return left


# ----------------------------------------------------------------------------- main

def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Round trips and shared-counter updates between Python processes.")
    ap.add_argument("--quick", action="store_true", help="short budgets (well under a minute)")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--only", metavar="NAME[,NAME]",
                    help=f"transports to run, of: {', '.join(TRANSPORTS)}")
    ap.add_argument("--plot", metavar="FILE.png",
                    help="plot round trip against array size (needs matplotlib)")
    args = ap.parse_args(argv)
    keys = list(TRANSPORTS)
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        unknown = [k for k in keys if k not in TRANSPORTS]
        if unknown:
            ap.error(f"unknown transport(s) {', '.join(unknown)}; known: {', '.join(TRANSPORTS)}")
        keys = [k for k in TRANSPORTS if k in keys]
    return args, keys


class Terminated(BaseException):
    """SIGTERM, turned into an exception so that everything is cleaned up."""


def on_sigterm(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    args, keys = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    budget = QUICK if args.quick else FULL
    cpus = usable_cpus()
    if len(cpus) >= 2:
        pin(cpus[0])
    child_cpu = cpus[1] if len(cpus) >= 2 else None
    shm_before = shm_entries()
    cond = conditions(budget, args.quick, cpus)
    payloads = all_payloads()
    results = Results()
    progress = Progress()
    tags = (f"s{i}" for i in range(1, 1 << 30))
    progress(f"transports: {', '.join(keys)}; {cond['pinning']}")

    stopped_by = None
    try:
        loaded = []
        for key in keys:
            cls = TRANSPORTS[key]
            try:
                cls.load()
            except Exception as e:
                results.skipped[key] = f"import failed: {short_error(e)}"
                progress(f"{key:<13} skipped: {results.skipped[key]}")
                continue
            loaded.append(cls)
            progress(f"{key:<13} round trips")
            run_round_trips(cls, payloads, budget, results, progress, child_cpu, tags)
        for cls in loaded:
            if cls.counter is not None:
                progress(f"{cls.key:<13} shared counter")
                run_counters(cls, budget, results, progress, cpus, tags)
    except KeyboardInterrupt:
        stopped_by = ("interrupted", 130)
    except Terminated:
        stopped_by = ("terminated", 143)
    # Out of the except blocks, the frames of the interrupted cell are gone: whatever
    # they held (views, semaphores, iceoryx2 ports) is released before the check.
    gc.collect()
    left = check_dev_shm(shm_before)
    if left:
        progress(f"warning: new entries in /dev/shm since the start: {', '.join(left)}")
    else:
        progress("/dev/shm: nothing left behind")
    if stopped_by is not None:
        progress(stopped_by[0])
        return stopped_by[1]

    cond["packages"] = package_versions()
    if hasattr(os, "getloadavg"):
        cond["load_average_at_end"] = list(os.getloadavg())
    print(report(results, payloads, keys, cond))
    if args.json:
        doc = {
            "conditions": cond,
            "round_trip_us": {k: {p: s["median_us"] for p, s in v.items()}
                              for k, v in results.round_trip.items()},
            "updates_per_s": results.updates,
            "skipped": results.skipped,
            "not_applicable": results.na,
            "failed": results.failed,
            "counter_mechanism": results.mechanisms,
            "round_trip_detail": results.round_trip,
            "payload_bytes": {p.name: p.nbytes for p in payloads},
            "dev_shm_left": left,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        progress(f"JSON written to {args.json}")
    if args.plot:
        write_plot(args.plot, results, payloads, keys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
