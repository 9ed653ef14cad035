"""Every kind of value through a pipe and back within one process: what goes in, what
comes out, views, NumPy arrays without a copy, and the errors."""

import collections
import collections.abc
import time

import numpy as np
import pytest

import shmval


@pytest.fixture
def pipe(region):
    """A region with a pipe of 8 slots: (main, server pipe, client pipe)."""
    with shmval.ShmMain(region, 8 << 20) as main:
        with shmval.ServerSide(region, "p", 8) as server, shmval.ClientSide(region, "p", timeout=5.0) as client:
            yield main, server.pipe, client.pipe


def through(pipe, value):
    _, tx, rx = pipe
    tx.enqueue(value, timeout=1.0)
    return rx.dequeue(timeout=1.0)


SCALARS = [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**63, 10**47, -(10**47), 1.5, float("inf"), 1 + 2j, "", "héllo", "x" * 1000]


@pytest.mark.parametrize("v", SCALARS, ids=repr)
def test_scalars_come_back_equal_and_of_their_type(pipe, v):
    got = through(pipe, v)
    assert got == v and type(got) is type(v)


def test_nested_containers_come_back_equal(pipe):
    v = {"a": [1, (2, 3), {"b": None}], "c": (), "d": {}, 7: "int key", (1, "t"): "tuple key"}
    got = through(pipe, v)
    assert isinstance(got, shmval.Tab) and isinstance(got, collections.abc.Mapping)
    assert got == v and got.to_python() == v
    assert isinstance(got["a"], shmval.Seq) and isinstance(got["a"], collections.abc.Sequence)
    assert got["a"][1] == (2, 3) and got["a"][1].is_tuple and type(got["a"][1].to_python()) is tuple
    assert got[7] == "int key" and got[(1, "t")] == "tuple key"
    assert set(got) == set(v) and len(got) == len(v) and "c" in got and "zz" not in got
    assert got.get("zz", 5) == 5
    with pytest.raises(KeyError):
        got["zz"]


def test_ordered_dict_keeps_its_order(pipe):
    keys = [f"k{i}" for i in range(50, 0, -1)]
    v = collections.OrderedDict((k, i) for i, k in enumerate(keys))
    got = through(pipe, v)
    assert got.ordered and list(got) == keys and got.keys() == keys
    assert type(got.to_python()) is collections.OrderedDict and got.to_python() == v
    assert not through(pipe, dict(v)).ordered


def test_seq_indexing_and_slicing(pipe):
    got = through(pipe, list(range(10)))
    assert got[-1] == 9 and got[2:5] == [2, 3, 4] and got[::-3] == [9, 6, 3, 0]
    assert 5 in got and got.index(5) == 5 and got.count(5) == 1 and list(reversed(got))[0] == 9
    with pytest.raises(IndexError):
        got[10]


DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64, np.complex64, np.complex128]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_numpy_arrays_come_out_read_only_over_the_pool(pipe, dtype):
    main = pipe[0]
    a = (np.arange(100) % 7).astype(dtype)
    got = through(pipe, a)
    assert isinstance(got, np.ndarray) and got.dtype == a.dtype and np.array_equal(got, a)
    assert main.pool.holds(got) and not main.pool.holds(a)
    assert not got.flags.writeable
    with pytest.raises(ValueError):
        got[0] = 1
    with pytest.raises(ValueError):
        got.flags.writeable = True


def test_numpy_scalars_keep_their_type_and_others_are_refused(pipe):
    assert through(pipe, np.float32(1.5)) == 1.5
    assert through(pipe, [np.int16(-3)]) == [-3]
    with pytest.raises(TypeError):
        through(pipe, np.zeros((2, 2)))
    with pytest.raises(TypeError):
        through(pipe, np.zeros(3, dtype=np.float16))
    with pytest.raises(TypeError):
        through(pipe, object())
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError):
        through(pipe, cyclic)


def test_strided_arrays_and_bytes_are_copied_in(pipe):
    a = np.arange(20.0)[::2]
    assert np.array_equal(through(pipe, a), a)
    assert np.array_equal(through(pipe, b"\x00\x01\xff"), np.array([0, 1, 255], dtype=np.uint8))


def test_a_value_sent_on_goes_by_handle(pipe):
    main, tx, rx = pipe
    big = main.pool.share({"a": np.arange(1000.0), "b": list(range(100))})
    before = main.pool.stats()["live_allocations"]
    for _ in range(5):
        tx.enqueue(big, timeout=1.0)
        got = rx.dequeue(timeout=1.0)
        assert got["b"] == list(range(100)) and got["a"].sum() == big["a"].sum()
    del got
    assert main.pool.stats()["live_allocations"] == before
    arr = big["a"]
    tx.enqueue(arr, timeout=1.0)
    back = rx.dequeue(timeout=1.0)
    assert back.__array_interface__["data"][0] == arr.__array_interface__["data"][0]
    assert main.pool.stats()["live_allocations"] == before


def test_a_dict_holding_pool_values_links_them(pipe):
    main, tx, rx = pipe
    inner = main.pool.share({"x": 1})
    a = main.pool.share(np.arange(4, dtype=np.int32))
    got = through(pipe, {"inner": inner, "a": a, "n": 1})
    assert got["inner"] == {"x": 1} and got["a"].__array_interface__["data"][0] == a.__array_interface__["data"][0]


def test_memory_comes_back_when_the_views_go(pipe):
    main = pipe[0]
    before = main.pool.stats()["live_allocations"]
    got = through(pipe, {"a": [1, 2, {"b": np.zeros(1000)}], "s": "x" * 100})
    nested = got["a"][2]["b"]
    del got
    assert main.pool.stats()["live_allocations"] > before
    del nested
    assert main.pool.stats()["live_allocations"] == before


def test_errors_are_exceptions_of_the_hierarchy(pipe):
    main, tx, rx = pipe
    for e in (shmval.Timeout, shmval.Empty, shmval.Full, shmval.Closed, shmval.Broken, shmval.OutOfMemory, shmval.Corrupted, shmval.Exists):
        assert issubclass(e, shmval.Error)
    assert issubclass(shmval.Disconnected, shmval.Closed)
    with pytest.raises(shmval.Empty):
        rx.try_dequeue()
    t0 = time.monotonic()
    with pytest.raises(shmval.Timeout):
        rx.dequeue(timeout=0.05)
    assert time.monotonic() - t0 < 5.0
    for i in range(8):
        tx.try_enqueue(i)
    assert len(tx) == 8 and tx.len() == 8 and tx.capacity == 8
    with pytest.raises(shmval.Full):
        tx.try_enqueue(9)
    with pytest.raises(shmval.Timeout):
        tx.enqueue(9, timeout=0.05)
    assert rx.dequeue_batch(8, timeout=1.0) == list(range(8))
    tx.close()
    assert rx.closed
    with pytest.raises(shmval.Closed):
        tx.enqueue(1, timeout=1.0)
    with pytest.raises(shmval.Closed):
        rx.dequeue(timeout=1.0)
    with pytest.raises(shmval.OutOfMemory):
        main.pool.share(np.zeros(16 << 20, dtype=np.uint8))


def test_exists_and_timeout_when_starting(region):
    with shmval.ShmMain(region, 1 << 20), shmval.ServerSide(region, "p", 2):
        with pytest.raises(shmval.Exists):
            shmval.ServerSide(region, "p", 2)
        with pytest.raises(shmval.Timeout):
            shmval.ClientSide(region, "nope", timeout=0.05)


def test_to_python_copies_shared_parts_each_time_they_appear(pipe):
    main = pipe[0]
    inner = main.pool.share({"x": [1, 2]})
    outer = main.pool.share({"a": inner, "b": inner, "arr": np.arange(3)})
    plain = outer.to_python()
    assert plain["a"] == plain["b"] == {"x": [1, 2]} and plain["a"] is not plain["b"]
    assert plain["arr"].flags.writeable and not main.pool.holds(plain["arr"])


def test_a_pool_with_a_maximum_grows_for_big_values(region):
    with shmval.ShmMain(region, 64 << 10, max_bytes=64 << 20) as main:
        with shmval.ServerSide(region, "p", 4) as server, shmval.ClientSide(region, "p", timeout=5.0) as client:
            before = main.pool.stats()["capacity"]
            server.pipe.enqueue(np.ones(4 << 20, dtype=np.uint8), timeout=5.0)
            got = client.pipe.dequeue(timeout=5.0)
            assert got.sum() == 4 << 20 and main.pool.stats()["capacity"] > before
    with shmval.ShmMain(region, 64 << 10) as main:
        with pytest.raises(shmval.OutOfMemory):
            main.pool.share(np.ones(1 << 20, dtype=np.uint8))
        assert main.pool.share([1, 2, 3]) == [1, 2, 3]


@pytest.mark.parametrize("spin", [0.0, 2.0])
def test_a_receive_spins_no_longer_than_its_timeout(region, spin):
    with shmval.ShmMain(region, 1 << 20), shmval.ServerSide(region, "p", 2) as server:
        with shmval.ClientSide(region, "p", timeout=5.0, spin=spin) as client:
            t0 = time.monotonic()
            with pytest.raises(shmval.Timeout):
                client.pipe.dequeue(timeout=0.05)
            assert time.monotonic() - t0 < 1.5
            server.pipe.enqueue("x", timeout=1.0)
            assert client.pipe.dequeue(timeout=1.0) == "x"


def test_an_array_viewed_under_another_dtype_is_sent_as_seen(pipe):
    main = pipe[0]
    a = main.pool.share(np.arange(4, dtype=np.float64))
    as_ints = a.view(np.int64)
    got = through(pipe, as_ints)
    assert got.dtype == np.int64 and np.array_equal(got, as_ints)
    assert got.__array_interface__["data"][0] != a.__array_interface__["data"][0]
    half = through(pipe, a[1:])
    assert np.array_equal(half, [1.0, 2.0, 3.0])
