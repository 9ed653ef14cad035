"""NumPy arrays between processes without a copy: a 64 MiB array shared once goes to
another process and back by handle, its memory in the region the whole way."""

import numpy as np

import shmval
from conftest import child_script

MIRROR = """
import sys, shmval
region = sys.argv[1]
with shmval.ClientSide(region, "there", timeout=30.0) as there, shmval.ServerSide(region, "back", 2) as back:
    while True:
        try:
            a = there.pipe.dequeue(timeout=30.0)
        except shmval.Closed:
            break
        # Reports whether the array lies in the region (no copy) and its sum, then sends
        # the same array back: by handle.
        back.pipe.enqueue({"holds": there.pool.holds(a), "sum": float(a.sum()), "a": a}, timeout=30.0)
"""


def test_a_64_mib_array_goes_and_comes_back_without_a_copy(region):
    with shmval.ShmMain(region, 80 << 20) as main, shmval.ServerSide(region, "there", 2) as there:
        child = child_script(MIRROR, region)
        try:
            with shmval.ClientSide(region, "back", timeout=30.0) as back:
                for n in (8, 64 << 17):  # 64 B and 64 MiB of float64
                    a = main.pool.share(np.arange(n, dtype=np.float64))
                    before = main.pool.stats()["used"]
                    there.pipe.enqueue(a, timeout=30.0)
                    r = back.pipe.dequeue(timeout=60.0)
                    assert r["holds"] and r["sum"] == float(a.sum())
                    same = r["a"]
                    assert same.__array_interface__["data"][0] == a.__array_interface__["data"][0]
                    # Only the small reply table is new: nothing near the array's size.
                    assert main.pool.stats()["used"] - before < 64 << 10
                    del r, same
            there.pipe.close()
            _, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
        finally:
            child.kill()
