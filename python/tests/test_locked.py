"""Locked tables and named values from Python: updates from several processes add up."""

import threading

import pytest

import shmval
from conftest import child_script

ADDER = """
import sys, shmval
region, n = sys.argv[1], int(sys.argv[2])
with shmval.ClientSide(region, "p", timeout=30.0) as c:
    t = c.names().lookup("counters", 30.0)
    for _ in range(n):
        with t.lock(timeout=30.0) as g:
            g["n"] += 1
            g.increment("m", 2)
"""


def test_updates_from_four_processes_add_up(region):
    procs, n = 4, 300
    with shmval.ShmMain(region, 1 << 20) as main, shmval.ServerSide(region, "p", 2):
        t = shmval.Locked(main.pool, {"n": 0, "m": 0})
        main.names().publish("counters", t)
        children = [child_script(ADDER, region, n) for _ in range(procs)]
        for c in children:
            _, err = c.communicate(timeout=120)
            assert c.returncode == 0, err
        assert t.snapshot() == {"n": procs * n, "m": 2 * procs * n}


def test_a_locked_table_reads_and_writes(region):
    with shmval.ShmMain(region, 1 << 20) as main:
        t = shmval.Locked(main.pool, {"a": 1})
        with t.lock(timeout=1.0) as g:
            g["b"] = [1, 2]
            g["c"] = {"x": "y"}
            del g["a"]
            assert "a" not in g and len(g) == 2 and sorted(g.keys()) == ["b", "c"]
            assert g["b"] == [1, 2] and g.get("zz") is None
            with pytest.raises(KeyError):
                del g["zz"]
            view = g["c"]
        assert view == {"x": "y"}
        with pytest.raises(shmval.Error):
            g["q"] = 1
        with t.lock(timeout=1.0):
            with pytest.raises(ValueError):
                t.try_lock()  # this thread holds it already
            raised = []

            def other_thread():
                try:
                    t.lock(timeout=0.05)
                except shmval.Timeout as e:
                    raised.append(e)

            th = threading.Thread(target=other_thread)
            th.start()
            th.join(timeout=30)
            assert len(raised) == 1
        lst = shmval.Locked(main.pool, [1, 2])
        with lst.lock(timeout=1.0) as g:
            g.append(3)
            g[0] = 10
            assert g[-1] == 3
        assert lst.snapshot() == [10, 2, 3]
        names = main.names()
        names.publish("x", {"v": 1})
        assert names.get("x") == {"v": 1} and names.get("nope") is None
        with pytest.raises(shmval.Exists):
            names.publish("x", 2)
        assert names.replace("x", 3) == {"v": 1} and names.unpublish("x") == 3
        with pytest.raises(shmval.Timeout):
            names.lookup("x", 0.05)


def test_nested_writes_by_path(region):
    import numpy as np

    with shmval.ShmMain(region, 1 << 20) as main:
        t = shmval.Locked(main.pool, {"a": {"b": [1, {"c": 0}]}, "arr": np.zeros(6)})
        with t.lock(timeout=1.0) as g:
            seen = g["a"]  # a handle taken out keeps what it saw
            seen_arr = g["arr"]  # and so does an array over the pool
            g.set_in(["a", "b", 0], "one")
            assert g.increment_in(["a", "b", 1, "c"], 5) == 5
            g.append_in(["a", "b"], 3)
            g.set_in(["a", "new"], {"x": 1})
            g.delete_in(["a", "new"])
            with pytest.raises(KeyError):
                g.delete_in(["a", "new"])
            g.write_array(["arr"], np.array([1.0, 2.0]), start=4)
            with pytest.raises(IndexError):
                g.write_array(["arr"], np.ones(3), start=4)
            with pytest.raises(TypeError):
                g.write_array(["arr"], np.ones(2, dtype=np.int32))
        assert seen == {"b": [1, {"c": 0}]}
        assert list(seen_arr) == [0, 0, 0, 0, 0, 0] and main.pool.holds(seen_arr)
        snap = t.snapshot()
        assert snap["a"] == {"b": ["one", {"c": 5}, 3]}
        assert list(snap["arr"]) == [0, 0, 0, 0, 1, 2]
