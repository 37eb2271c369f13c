"""fnn.io across devices: trees holding CuPy arrays save from host copies; `load` puts arrays on the
chosen device (or, with `like`, on each `like` leaf's device); mismatched and damaged files are
refused whatever the device, before anything is moved."""

import collections

import numpy as np
import pytest

import fnn
from backends import BACKENDS, assert_on_backend, assert_trees_close, requires_cupy, to_backend, to_host
from fnn import io as fio

FORMATS = ["npz", "safetensors"]
DEVICE = {"numpy": "cpu", "cupy": "gpu"}


def _tree():
    rng = np.random.default_rng(0)
    return {
        "params": {"w": rng.standard_normal((3, 4)).astype(np.float32),
                   "b": np.arange(4, dtype=np.float16),
                   "layers": [np.arange(5, dtype=np.int64), None, (np.ones((2, 2), np.float64),)]},
        "mask": np.array([True, False]),
        "step": 7,
        "lr": 0.5,
    }


def _leaf_devices(tree):
    return [("cupy" if fnn.backend.is_cupy_array(x) else "numpy") if hasattr(x, "shape") else type(x).__name__
            for x in fnn.tree.leaves(tree)]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("saved_on", BACKENDS)
@pytest.mark.parametrize("load_on", BACKENDS)
def test_save_from_one_device_load_onto_another(tmp_path, fmt, saved_on, load_on):
    path = tmp_path / f"ckpt.{fmt}"
    tree = _tree()
    fio.save(path, to_backend(tree, saved_on))
    loaded = fio.load(path, device=DEVICE[load_on])
    assert_on_backend(loaded, load_on)
    assert loaded["step"] == 7 and type(loaded["step"]) is int and loaded["lr"] == 0.5
    assert_trees_close(to_host(loaded), tree, "loaded", rtol=0, atol=0)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_like_puts_each_leaf_on_its_like_leafs_device(tmp_path, fmt, backend_name):
    path = tmp_path / f"state.{fmt}"
    state = {"params": to_backend(_tree()["params"], backend_name), "key": fnn.random.key(3), "epoch": 2}
    fio.save(path, state)
    like = {"params": to_backend(_tree()["params"], backend_name), "key": fnn.random.key(0), "epoch": 0}
    loaded = fio.load(path, like=like)
    assert _leaf_devices(loaded) == _leaf_devices(like)
    assert isinstance(loaded["key"], np.ndarray)  # the key stays a host array
    np.testing.assert_array_equal(loaded["key"], fnn.random.key(3))
    assert_trees_close(to_host(loaded["params"]), _tree()["params"], "params", rtol=0, atol=0)
    everything_here = fio.load(path, like=like, device=DEVICE[backend_name])
    assert_on_backend(everything_here, backend_name)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_optimizer_state_of_device_params_round_trips(tmp_path, backend_name):
    params = to_backend({"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}, backend_name)
    opt = fnn.optim.adam(1e-3)
    opt_state = opt.init(params)
    path = tmp_path / "opt.npz"
    fio.save(path, opt_state)
    loaded = fio.load(path, like=opt.init(params))
    assert type(loaded) is type(opt_state)
    assert_on_backend(loaded, backend_name)
    assert_trees_close(to_host(loaded), to_host(opt_state), "opt_state", rtol=0, atol=0)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_mismatched_and_damaged_files_are_refused_on_every_device(tmp_path, fmt, backend_name):
    path = tmp_path / f"m.{fmt}"
    fio.save(path, to_backend({"w": np.ones((2, 3), np.float32)}, backend_name))
    wrong = to_backend({"w": np.ones((3, 2), np.float32)}, backend_name)
    with pytest.raises(fio.CheckpointMismatchError, match=r"expected float32\[3, 2\], found float32\[2, 3\]"):
        fio.load(path, like=wrong)
    with pytest.raises(fio.CheckpointMismatchError, match=r"expected float64\[2, 3\], found float32"):
        fio.load(path, like=to_backend({"w": np.ones((2, 3), np.float64)}, backend_name),
                 device=DEVICE[backend_name])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(fio.CheckpointError):
        fio.load(path, device=DEVICE[backend_name])


def test_an_unknown_device_is_refused_before_reading(tmp_path):
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        fio.load(tmp_path / "missing.npz", device="tpu")


@requires_cupy
def test_saving_device_arrays_reads_them_once_each(tmp_path):
    """Saving copies each CuPy leaf to the host (a device read per leaf is expected here)."""
    import cupy  # noqa: PLC0415

    tree = to_backend(collections.OrderedDict(a=np.ones(3, np.float32), b=np.zeros(2, np.int32)), "cupy")
    if getattr(cupy, "FAKE", False):
        before = cupy._SyncState.count
        fio.save(tmp_path / "s.npz", tree)
        assert cupy._SyncState.count - before == 2
    else:  # pragma: no cover - the real device: just the round trip
        fio.save(tmp_path / "s.npz", tree)
    loaded = fio.load(tmp_path / "s.npz")
    assert type(loaded) is collections.OrderedDict
    np.testing.assert_array_equal(loaded["a"], np.ones(3, np.float32))
