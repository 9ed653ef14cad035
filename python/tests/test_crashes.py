"""A Python process killed while it holds values gives them back, as a Rust one does; a
process killed holding a locked table's lock is taken over."""

import os
import signal

import numpy as np
import pytest

import shmval
from conftest import child_script, wait_line

HOLDER = """
import sys, shmval
region = sys.argv[1]
with shmval.ClientSide(region, "p", timeout=30.0) as c:
    held = [c.pipe.dequeue(timeout=30.0) for _ in range(3)]
    nested = held[0]["inner"]["arr"]
    print("holding", flush=True)
    c.pipe.deq()
"""


@pytest.mark.parametrize("how", ["recover", "attach"])
def test_a_killed_python_consumer_gives_back_what_it_held(region, how):
    with shmval.ShmMain(region, 4 << 20) as main, shmval.ServerSide(region, "p", 8) as server:
        baseline = main.pool.stats()["live_allocations"]
        for i in range(3):
            server.pipe.enqueue({"i": i, "inner": {"arr": np.arange(1000.0), "s": "x" * 200}}, timeout=1.0)
        child = child_script(HOLDER, region)
        try:
            wait_line(child, "holding")
            assert len(server.pipe) == 0
            assert main.pool.stats()["live_allocations"] > baseline
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
        finally:
            child.kill()
        if how == "recover":
            main.recover()
            assert main.pool.stats()["live_allocations"] == baseline
        else:
            # A process attaching gives back what dead ones held, by itself.
            with shmval.ClientSide(region, "p", timeout=5.0):
                assert main.pool.stats()["live_allocations"] == baseline


LOCKER = """
import sys, shmval
region = sys.argv[1]
with shmval.ClientSide(region, "p", timeout=30.0) as c:
    t = c.names().lookup("board", 30.0)
    with t.lock(timeout=30.0) as g:
        g["n"] += 1
        print("locked", flush=True)
        c.pipe.deq()
"""


def test_a_lock_holder_killed_is_taken_over(region):
    with shmval.ShmMain(region, 1 << 20) as main, shmval.ServerSide(region, "p", 2):
        t = shmval.Locked(main.pool, {"n": 0})
        main.names().publish("board", t)
        child = child_script(LOCKER, region)
        try:
            wait_line(child, "locked")
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            child.kill()
        with t.lock(timeout=10.0) as g:
            assert g.owner_died
            assert g["n"] == 1
            g["n"] += 1
        with t.lock(timeout=1.0) as g:
            assert not g.owner_died and g["n"] == 2
