"""Python and Rust processes on one pipe, in every start order: the seed's examples in
both languages, and every kind of value through a Rust process and back."""

import collections
import subprocess
import sys

import numpy as np
import pytest

import shmval
from conftest import EXAMPLES

TIMEOUT = 120


def run_pair(server_cmd, client_cmd, server_first):
    """Starts the two in the given order, waits for both; returns the client's stdout."""
    start = [server_cmd, client_cmd] if server_first else [client_cmd, server_cmd]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in start]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT)
            assert p.returncode == 0, f"{p.args} failed: {err}"
            outs.append(out)
    finally:
        for p in procs:
            p.kill()
    return outs[1] if server_first else outs[0]


def servers(rust_examples, region):
    return {
        "python": [sys.executable, EXAMPLES / "serverside.py", region, "1000000", "pipe1", "4"],
        "rust": [rust_examples / "serverside", region, "1000000", "pipe1", "4"],
    }


def clients(rust_examples, region):
    return {
        "python": [sys.executable, EXAMPLES / "clientside.py", region, "pipe1"],
        "rust": [rust_examples / "clientside", region, "pipe1"],
    }


@pytest.mark.parametrize("server_first", [True, False], ids=["server-first", "client-first"])
@pytest.mark.parametrize("server,client", [("python", "python"), ("rust", "python"), ("python", "rust")])
def test_seed_examples_interchange(rust_examples, region, server, client, server_first):
    out = run_pair(servers(rust_examples, region)[server], clients(rust_examples, region)[client], server_first)
    if client == "python":
        packets = [eval(line) for line in out.splitlines()]  # noqa: S307 - our own output
        assert [p["sequence_number"] for p in packets] == list(range(100))
        assert all(p["bi"] == 10**47 and p["bu"] == 10**47 for p in packets)
    else:
        assert out.count("'sequence_number':") == 100
        assert out.count("100000000000000000000000000000000000000000000000") == 200


EVERY_KIND = [
    None,
    True,
    -(2**63),
    2**64 + 1,
    -(10**47),
    3.25,
    -1.5 - 2j,
    "héllo ✓",
    {"a": 1, "b": [1, 2, (3, "x")], 5: {"deep": {"deeper": [None]}}},
    collections.OrderedDict([("z", 1), ("a", 2), ("m", 3)]),
    [1, "two", 3.0, [4], {"five": 5}],
    (1, (2, (3,))),
    np.arange(10, dtype=np.int8),
    np.arange(10, dtype=np.uint64),
    np.linspace(0, 1, 7, dtype=np.float32),
    np.array([1 + 1j, -2j], dtype=np.complex128),
    np.array([True, False, True]),
]


def equal(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (shmval.Tab, shmval.Seq)):
        a = a.to_python()
    if isinstance(a, collections.OrderedDict):
        return isinstance(b, collections.OrderedDict) and list(a.items()) == list(b.items())
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("python_first", [True, False], ids=["python-first", "rust-first"])
def test_every_kind_of_value_through_rust_and_back(rust_examples, region, python_first):
    """Python sends every kind of value; the Rust echo copies each out of the pool into a
    Rust value and shares a fresh copy; Python checks what comes back."""
    echo = None
    if not python_first:
        echo = subprocess.Popen([rust_examples / "echo", region, "there", "back", "4"], stderr=subprocess.PIPE, text=True)
    with shmval.ShmMain(region, 4 << 20) as main:
        with shmval.ServerSide(region, "there", 4) as there:
            if python_first:
                echo = subprocess.Popen([rust_examples / "echo", region, "there", "back", "4"], stderr=subprocess.PIPE, text=True)
            try:
                with shmval.ClientSide(region, "back", timeout=60.0) as back:
                    for v in EVERY_KIND:
                        there.pipe.enqueue(v, timeout=10.0)
                        got = back.pipe.dequeue(timeout=10.0)
                        assert equal(got, v), (v, got)
                        if isinstance(v, dict) and not isinstance(v, collections.OrderedDict):
                            assert got.to_python() == v and not got.ordered
                        if isinstance(v, collections.OrderedDict):
                            assert got.ordered and list(got) == list(v)
            finally:
                there.pipe.close()
        assert echo.wait(timeout=TIMEOUT) == 0, echo.stderr.read()
        assert f"{len(EVERY_KIND)} values echoed" in echo.stderr.read()
        del main
