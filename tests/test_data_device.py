"""fnn.data on each device: batches moved to (or gathered on) the device with the same order as on
the host, `prefetch_to_device` keeping a bounded number of moved items ahead, and augmentations
whose random draws are made on the images' device without host reads."""

import contextlib

import numpy as np
import pytest

from backends import BACKENDS, assert_on_backend, requires_cupy, to_backend, to_host
from fnn import data
from fnn.random import key

DEVICE = {"numpy": "cpu", "cupy": "gpu"}
X = np.arange(23 * 3, dtype=np.float32).reshape(23, 3)
Y = np.arange(23, dtype=np.int64)


def _no_sync(name):
    if name == "numpy":
        return contextlib.nullcontext()
    import cupyx  # noqa: PLC0415

    return cupyx.allow_synchronize(False)


def _host_batches(**kw):
    return [tuple(np.asarray(a) for a in b) for b in data.batches(key(3), (X, Y), 5, **kw)]


# --------------------------------------------------------------------------------------------
# Batches


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_moved_to_the_device_match_the_host_batches(backend_name, drop_last):
    expected = _host_batches(drop_last=drop_last)
    got = list(data.batches(key(3), (X, Y), 5, drop_last=drop_last, device=DEVICE[backend_name]))
    assert len(got) == len(expected) == data.num_batches(23, 5, drop_last)
    for (xb, yb), (ex, ey) in zip(got, expected):
        assert_on_backend((xb, yb), backend_name)
        np.testing.assert_array_equal(to_host(xb), ex)
        np.testing.assert_array_equal(to_host(yb), ey)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("shuffle", [True, False])
def test_batches_of_device_arrays_stay_there_without_host_reads(backend_name, shuffle):
    expected = _host_batches(shuffle=shuffle)
    xd, yd = to_backend((X, Y), backend_name)
    with _no_sync(backend_name):
        got = list(data.batches(key(3), (xd, yd), 5, shuffle=shuffle))
        single = list(data.batches(key(3), xd, 5, shuffle=shuffle))
    for (xb, yb), xs, (ex, ey) in zip(got, single, expected):
        assert_on_backend((xb, yb, xs), backend_name)
        np.testing.assert_array_equal(to_host(xb), ex)
        np.testing.assert_array_equal(to_host(yb), ey)
        np.testing.assert_array_equal(to_host(xs), ex)


@requires_cupy
def test_device_batches_brought_to_the_host():
    xd, yd = to_backend((X, Y), "cupy")
    got = list(data.batches(key(3), (xd, yd), 5, device="cpu"))
    for (xb, yb), (ex, ey) in zip(got, _host_batches()):
        assert isinstance(xb, np.ndarray) and isinstance(yb, np.ndarray)
        np.testing.assert_array_equal(xb, ex)
        np.testing.assert_array_equal(yb, ey)


def test_batches_refuse_an_unknown_device_at_the_call():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        data.batches(key(0), X, 4, device="tpu")


# --------------------------------------------------------------------------------------------
# prefetch_to_device


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("size", [1, 2, 3])
def test_prefetch_moves_every_item_in_order_and_reads_ahead_at_most_size(backend_name, size):
    produced = []

    def source():
        for i in range(6):
            produced.append(i)
            yield {"x": np.full((2,), i, np.float32), "i": i}

    it = data.prefetch_to_device(source(), DEVICE[backend_name], size=size)
    assert produced == []  # lazy: nothing is read before the first next()
    for i in range(6):
        item = next(it)
        assert len(produced) <= min(6, i + size), (i, produced)
        assert_on_backend(item, backend_name)
        assert item["i"] == i
        np.testing.assert_array_equal(to_host(item["x"]), np.full((2,), i, np.float32))
    with pytest.raises(StopIteration):
        next(it)


def test_prefetch_checks_its_arguments():
    with pytest.raises(ValueError, match="unknown device"):
        data.prefetch_to_device(iter([]), "tpu")
    with pytest.raises(ValueError, match="size must be >= 1"):
        data.prefetch_to_device(iter([]), "cpu", size=0)


# --------------------------------------------------------------------------------------------
# Augmentations: draws made on the images' device


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_random_crop_on_the_device_is_a_window_and_repeatable(backend_name):
    images = (np.arange(6 * 2 * 5 * 5).reshape(6, 2, 5, 5) % 97).astype(np.float32)
    dev = to_backend(images, backend_name)
    with _no_sync(backend_name):
        out = data.random_crop(key(1), dev, (3, 4), padding=1)
        again = data.random_crop(key(1), dev, (3, 4), padding=1)
    assert_on_backend((out, again), backend_name)
    out, again = to_host(out), to_host(again)
    np.testing.assert_array_equal(out, again)
    assert out.shape == (6, 2, 3, 4) and out.dtype == np.float32
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for k in range(6):
        assert any(np.array_equal(padded[k, :, i:i + 3, j:j + 4], out[k]) for i in range(5) for j in range(4))


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_random_crop_offsets_on_the_device_cover_all_windows(backend_name):
    images = np.broadcast_to(np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6), (400, 1, 6, 6)).copy()
    out = to_host(data.random_crop(key(0), to_backend(images, backend_name), 4))
    corners = out[:, 0, 0, 0].astype(int)
    assert {(v // 6, v % 6) for v in corners} == {(i, j) for i in range(3) for j in range(3)}


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_random_horizontal_flip_on_the_device(backend_name):
    images = np.arange(4, dtype=np.uint8).reshape(1, 1, 1, 4).repeat(1000, 0)
    dev = to_backend(images, backend_name)
    with _no_sync(backend_name):
        out = data.random_horizontal_flip(key(0), dev)
        again = data.random_horizontal_flip(key(0), dev)
    assert_on_backend((out, again), backend_name)
    out = to_host(out)
    np.testing.assert_array_equal(out, to_host(again))
    flipped = out[:, 0, 0, 0] == 3
    assert np.all(flipped | (out[:, 0, 0, 0] == 0)) and 430 < flipped.sum() < 570
    np.testing.assert_array_equal(out[flipped], images[flipped][..., ::-1])
