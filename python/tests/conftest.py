"""Fixtures: unique region names cleaned up whatever happens, the Rust examples, and
helpers to start Python and Rust processes and to tell when one is blocked in a wait."""

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "python" / "examples"
_counter = itertools.count()


def unique_name(prefix="py"):
    """A region name no other test or run uses: pid and a counter."""
    return f"{prefix}{os.getpid()}_{next(_counter)}"


@pytest.fixture
def region():
    """A unique region name; its file in /dev/shm is removed after the test."""
    name = unique_name()
    yield name
    try:
        os.unlink(f"/dev/shm/{name}")
    except FileNotFoundError:
        pass


@pytest.fixture(scope="session")
def rust_examples():
    """The directory of the crate's example binaries, built if they are missing."""
    d = Path(os.environ.get("SHMVAL_RUST_EXAMPLES", REPO / "target" / "debug" / "examples"))
    wanted = ["serverside", "clientside", "middleside", "echo"]
    if not all((d / w).exists() for w in wanted):
        subprocess.run(["cargo", "build", "--examples", "-q"], cwd=REPO, check=True)
    return d


def python(*args, **kw):
    """Starts a Python process of this interpreter."""
    return subprocess.Popen([sys.executable, *map(str, args)], **kw)


def child_script(code, *args, **kw):
    """Starts a Python process running `code`, with its output on pipes."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def wait_line(proc, expected, timeout=30.0):
    """Reads `proc`'s stdout until a line equals `expected` (the child's pause point)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child ended before {expected!r}: {proc.stderr.read()}")
        if line.strip() == expected:
            return
    raise AssertionError(f"no {expected!r} within {timeout}s")


import platform

# The futex syscall's number, by machine.
FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine(), 202)


def in_futex_wait(path):
    """Whether the thread whose /proc directory is `path` is blocked in futex()."""
    try:
        return Path(path, "syscall").read_text().split()[0] == str(FUTEX)
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def wait_until(pred, timeout=30.0, what="condition"):
    """Polls `pred` until it holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.001)
