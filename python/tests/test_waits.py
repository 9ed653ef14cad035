"""Waits: Ctrl-C ends a blocked call with KeyboardInterrupt, a wait releases the GIL, the
break checker ends a wait, several threads share one pipe."""

import os
import signal
import threading

import pytest

import shmval
from conftest import child_script, in_futex_wait, wait_line, wait_until

BLOCKED = """
import sys, time, shmval
region = sys.argv[1]
with shmval.ClientSide(region, "p", timeout=30.0) as c:
    print("ready", flush=True)
    t0 = time.monotonic()
    try:
        c.pipe.deq()
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - t0:.3f}", flush=True)
"""


@pytest.mark.parametrize("call", ["deq", "dequeue(timeout=600)", "enqueue"])
def test_ctrl_c_ends_a_blocked_call(region, call):
    code = BLOCKED.replace("c.pipe.deq()", {"deq": "c.pipe.deq()", "dequeue(timeout=600)": "c.pipe.dequeue(timeout=600)", "enqueue": "c.pipe.enq(1); c.pipe.enq(2)"}[call])
    with shmval.ShmMain(region, 1 << 20), shmval.ServerSide(region, "p", 1):
        child = child_script(code, region)
        try:
            wait_line(child, "ready")
            # The pause point: the child's main thread sleeps in the pipe's futex wait.
            wait_until(lambda: in_futex_wait(f"/proc/{child.pid}"), what="the child blocking")
            os.kill(child.pid, signal.SIGINT)
            out, err = child.communicate(timeout=30)
        finally:
            child.kill()
        assert child.returncode == 0, err
        assert out.startswith("interrupted after"), (out, err)


def test_a_waiting_thread_releases_the_gil(region):
    with shmval.ShmMain(region, 1 << 20), shmval.ServerSide(region, "p", 2) as server, shmval.ClientSide(region, "p", timeout=5.0) as client:
        got, tid = [], []

        def waiter():
            tid.append(threading.get_native_id())
            got.append(client.pipe.dequeue(timeout=60.0))

        t = threading.Thread(target=waiter)
        t.start()
        # This thread runs Python while the other waits: it could not if the wait held
        # the GIL.
        wait_until(lambda: tid and in_futex_wait(f"/proc/self/task/{tid[0]}"), what="the waiter blocking")
        server.pipe.enqueue("hello", timeout=1.0)
        t.join(timeout=30)
        assert got == ["hello"]


def test_the_break_checker_ends_a_wait(region):
    stop = threading.Event()
    with shmval.ShmMain(region, 1 << 20), shmval.ServerSide(region, "p", 2):
        with shmval.ClientSide(region, "p", timeout=5.0, micro_sleep=0.01, break_checker=stop.is_set) as client:
            stop.set()
            with pytest.raises(shmval.Broken):
                client.pipe.deq()


def test_threads_share_one_pipe(region):
    n_threads, per_thread = 4, 500
    with shmval.ShmMain(region, 4 << 20), shmval.ServerSide(region, "p", 16) as server, shmval.ClientSide(region, "p", timeout=5.0) as client:
        received = [[] for _ in range(n_threads)]

        def produce(k):
            for i in range(per_thread):
                server.pipe.enqueue({"k": k, "i": i}, timeout=30.0)

        def consume(k):
            for _ in range(per_thread):
                v = client.pipe.dequeue(timeout=30.0)
                received[k].append((v["k"], v["i"]))

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(n_threads)]
        threads += [threading.Thread(target=consume, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        everything = sorted(x for r in received for x in r)
        assert everything == sorted((k, i) for k in range(n_threads) for i in range(per_thread))
        for r in received:
            for k in range(n_threads):
                mine = [i for kk, i in r if kk == k]
                assert mine == sorted(mine)


def test_a_one_to_one_pipe_refuses_a_second_receiver_until_the_first_goes(region):
    with shmval.ShmMain(region, 1 << 20), shmval.ServerSide(region, "p", 4, one_to_one=True) as server:
        first = shmval.ClientSide(region, "p", timeout=5.0)
        second = shmval.ClientSide(region, "p", timeout=5.0)
        server.pipe.enqueue({"a": [1, 2]}, timeout=1.0)
        assert first.pipe.dequeue(timeout=5.0) == {"a": [1, 2]}
        server.pipe.enqueue(2, timeout=1.0)
        with pytest.raises(shmval.Error, match="one-to-one"):
            second.pipe.dequeue(timeout=5.0)
        first.close()
        assert second.pipe.dequeue(timeout=5.0) == 2
        second.close()
