"""Dicts, lists and NumPy arrays in cross-process shared memory, passed between processes
by handle.

A named region (``ShmMain``) holds a pool of values and named bounded queues (pipes).
A ``ServerSide`` creates a pipe, ``ClientSide`` objects attach to it, in any process, in
Python or Rust::

    import shmval

    with shmval.ShmMain("mempool", 1 << 20), \\
         shmval.ServerSide("mempool", "pipe1", 4) as server:
        server.pipe.enqueue({"sequence_number": 0, "bi": 10**47}, timeout=1.0)

    # in another process
    with shmval.ClientSide("mempool", "pipe1", timeout=5.0) as client:
        packet = client.pipe.dequeue(timeout=1.0)   # a read-only Mapping over the pool
        print(packet["bi"], packet.to_python())

Plain values are copied into the pool when sent; values that come out are read-only views
of it (``Tab``: a Mapping, ``Seq``: a Sequence, NumPy arrays over shared memory), and go
on by handle, without a copy, when sent again.
"""

from collections.abc import Mapping as _Mapping, Sequence as _Sequence

from ._shmval import (
    ArrayOwner,
    Broken,
    ClientSide,
    Closed,
    Corrupted,
    Disconnected,
    Empty,
    Error,
    Exists,
    Full,
    Locked,
    LockedTable,
    Names,
    OutOfMemory,
    Pipe,
    Pool,
    Seq,
    ServerSide,
    ShmMain,
    Tab,
    Timeout,
)

_Mapping.register(Tab)
_Sequence.register(Seq)

__all__ = [
    "ArrayOwner",
    "Broken",
    "ClientSide",
    "Closed",
    "Corrupted",
    "Disconnected",
    "Empty",
    "Error",
    "Exists",
    "Full",
    "Locked",
    "LockedTable",
    "Names",
    "OutOfMemory",
    "Pipe",
    "Pool",
    "Seq",
    "ServerSide",
    "ShmMain",
    "Tab",
    "Timeout",
]
