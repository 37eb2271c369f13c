"""fnn.io: round trips, safetensors interop, atomic writes, refusal of mismatched or damaged files."""

import collections
import json
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fnn
import fnn.optim
from fnn import io as fio

FORMATS = ["npz", "safetensors"]
DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.uint16,
          np.bool_]


@st.composite
def leaf_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


keys = st.text("abcxyz_", min_size=1, max_size=4)
trees = st.recursive(
    leaf_arrays() | st.none(),
    lambda kids: st.lists(kids, max_size=3)
    | st.lists(kids, max_size=3).map(tuple)
    | st.dictionaries(keys, kids, max_size=3),
    max_leaves=8,
)


def assert_same_tree(a, b):
    assert fnn.tree.structure(a) == fnn.tree.structure(b)
    for x, y in zip(fnn.tree.leaves(a), fnn.tree.leaves(b)):
        assert type(x) is type(y)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y


def _path(tmp_path, fmt, name="ckpt"):
    return str(tmp_path / f"{name}.{fmt}")


# --------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("fmt", FORMATS)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees)
def test_round_trip(tmp_path, fmt, tree):
    path = _path(tmp_path, fmt)
    fio.save(path, tree)
    assert_same_tree(fio.load(path), tree)
    assert_same_tree(fio.load(path, like=tree), tree)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_hand(tmp_path, fmt):
    tree = {
        "conv_0": {"w": np.ones((2, 1, 3, 3), np.float32), "b": np.zeros(2, np.float32)},
        "layers": [None, (np.arange(3), np.array(True)), {}],
        "step": 7,
        "lr": 0.5,
        "flag": False,
        "od": collections.OrderedDict([("z", np.float16(1.5)), ("a", np.zeros((0, 2)))]),
        3: np.array(2.0),
    }
    path = _path(tmp_path, fmt)
    fio.save(path, tree)
    out = fio.load(path)
    assert_same_tree(out, tree)
    assert type(out["step"]) is int and type(out["lr"]) is float and type(out["flag"]) is bool
    assert list(out["od"]) == ["z", "a"]
    assert type(out["od"]["z"]) is np.float16


@pytest.mark.parametrize("fmt", FORMATS)
def test_single_leaf_and_empty(tmp_path, fmt):
    path = _path(tmp_path, fmt)
    fio.save(path, np.arange(4.0))
    np.testing.assert_array_equal(fio.load(path), np.arange(4.0))
    fio.save(path, {})
    assert fio.load(path) == {}


def test_key_names(tmp_path):
    tree = {"conv_0": {"w": np.zeros(1)}, "layers": [np.zeros(1), np.zeros(1), {"b": np.ones(2)}]}
    path = _path(tmp_path, "npz")
    fio.save(path, tree)
    assert set(np.load(path).files) == {"conv_0.w", "layers.0", "layers.1", "layers.2.b",
                                        fio.STRUCTURE_KEY}


def test_name_collision_refused(tmp_path):
    with pytest.raises(fio.CheckpointError, match="both get the name 'a.b'"):
        fio.save(_path(tmp_path, "npz"), {"a.b": np.zeros(1), "a": {"b": np.zeros(1)}})


@pytest.mark.parametrize("fmt", FORMATS)
def test_optimizer_state_round_trip(tmp_path, fmt):
    params = {"dense_0": {"w": np.ones((3, 2), np.float32), "b": np.zeros(2, np.float32)}}
    opt = fnn.optim.adam(1e-3)
    state = opt.init(params)
    for _ in range(3):
        _, state = opt.update(params, state, params)
    path = _path(tmp_path, fmt)
    fio.save(path, {"params": params, "opt": state})
    like = {"params": params, "opt": opt.init(params)}
    out = fio.load(path, like=like)
    assert_same_tree(out, {"params": params, "opt": state})
    assert type(out["opt"][0]).__name__ == "ScaleByAdamState"
    assert out["opt"][0].count == 3 and type(out["opt"][0].count) is int
    assert fnn.optim.step_count(out["opt"]) == fnn.optim.step_count(state)
    with pytest.raises(fio.CheckpointError, match="pass `like=`"):
        fio.load(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_traced_leaves_saved(tmp_path, fmt):
    path = _path(tmp_path, fmt)

    def f(w):
        fio.save(path, {"w": w})
        return fnn.numpy.sum(w)

    fnn.grad(f)(np.ones(3))
    np.testing.assert_array_equal(fio.load(path)["w"], np.ones(3))


# --------------------------------------------------------------------------------------------
# safetensors interop


def test_safetensors_package_reads_ours(tmp_path):
    st_np = pytest.importorskip("safetensors.numpy")
    tree = {"conv_0": {"w": np.random.rand(2, 3).astype(np.float32), "b": np.arange(3, dtype=np.int64)},
            "h": np.ones(5, np.float16), "m": np.array([True, False, True]), "e": np.zeros((0, 4), np.int8),
            "s": np.array(3.5)}
    path = _path(tmp_path, "safetensors")
    fio.save(path, tree)
    got = st_np.load_file(path)
    assert set(got) == {"conv_0.w", "conv_0.b", "h", "m", "e", "s"}
    for (path_, leaf) in fnn.tree.flatten_with_path(tree)[0]:
        arr = got[fnn.tree.path_to_name(path_)]
        assert arr.dtype == leaf.dtype and arr.shape == leaf.shape
        np.testing.assert_array_equal(arr, leaf)
    from safetensors import safe_open

    with safe_open(path, framework="np") as f:
        meta = f.metadata()
    assert json.loads(meta[fio.METADATA_KEY])["tree"]["t"] == "dict"


def test_our_header_layout(tmp_path):
    path = _path(tmp_path, "safetensors")
    fio.save(path, {"a": np.ones(3, np.int8), "b": np.ones(2, np.float64), "c": np.ones(1, np.float16)})
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    assert n % 8 == 0
    assert all(isinstance(v, str) for v in header["__metadata__"].values())
    for name in "abc":
        begin, end = header[name]["data_offsets"]
        itemsize = {"a": 1, "b": 8, "c": 2}[name]
        assert begin % itemsize == 0 and (8 + n + begin) % itemsize == 0
    assert max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__") == len(data) - 8 - n


def test_we_read_safetensors_package_files(tmp_path):
    st_np = pytest.importorskip("safetensors.numpy")
    arrays = {"conv_0.w": np.random.rand(4, 3).astype(np.float32), "conv_0.b": np.zeros(4, np.float32),
              "layers.1.b": np.arange(6, dtype=np.int32).reshape(2, 3), "mask": np.array([True])}
    path = _path(tmp_path, "safetensors")
    st_np.save_file(arrays, path, metadata={"format": "np"})
    flat = fio.load(path)
    assert set(flat) == set(arrays)
    for k in arrays:
        np.testing.assert_array_equal(flat[k], arrays[k])
    like = {"conv_0": {"w": np.zeros((4, 3), np.float32), "b": np.zeros(4, np.float32)},
            "layers": [None, {"b": np.zeros((2, 3), np.int32)}], "mask": np.array([False])}
    tree = fio.load(path, like=like)
    np.testing.assert_array_equal(tree["layers"][1]["b"], arrays["layers.1.b"])
    np.testing.assert_array_equal(tree["conv_0"]["w"], arrays["conv_0.w"])
    like2 = {"conv_0": like["conv_0"], "mask": like["mask"]}
    with pytest.raises(fio.CheckpointMismatchError, match="layers.1.b"):
        fio.load(path, like=like2)


def test_bf16_loads_as_float32(tmp_path):
    value = np.array([1.5, -2.0, 0.25], np.float32)
    raw = (value.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"x": {"dtype": "BF16", "shape": [3], "data_offsets": [0, len(raw)]}}).encode()
    header += b" " * (-len(header) % 8)
    path = _path(tmp_path, "safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + raw)
    out = fio.load(path)["x"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, value)


# --------------------------------------------------------------------------------------------
# Atomic writes


def _snapshot(tmp_path):
    return sorted(os.listdir(tmp_path))


@pytest.mark.parametrize("fmt", FORMATS)
def test_unserializable_leaf_keeps_old_file(tmp_path, fmt):
    path = _path(tmp_path, fmt)
    fio.save(path, {"w": np.ones(3)})
    before = open(path, "rb").read()
    files = _snapshot(tmp_path)
    with pytest.raises(fio.CheckpointError, match=r"\['bad'\]"):
        fio.save(path, {"w": np.zeros(3), "bad": object()})
    with pytest.raises(fio.CheckpointError, match="dtype"):
        fio.save(path, {"w": np.array(["text"])})
    assert open(path, "rb").read() == before
    assert _snapshot(tmp_path) == files


def test_complex_refused_by_safetensors_only(tmp_path):
    with pytest.raises(fio.CheckpointError, match="complex128"):
        fio.save(_path(tmp_path, "safetensors"), {"z": np.ones(2, complex)})
    fio.save(_path(tmp_path, "npz"), {"z": np.ones(2, complex)})
    assert fio.load(_path(tmp_path, "npz"))["z"].dtype == complex


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_mid_write_keeps_old_file(tmp_path, fmt, monkeypatch):
    path = _path(tmp_path, fmt)
    fio.save(path, {"w": np.ones(3), "b": np.ones(2)})
    before = open(path, "rb").read()
    files = _snapshot(tmp_path)
    calls = []
    target = "_array_bytes" if fmt == "npz" else "_tensor_bytes"
    original = getattr(fio, target)

    def failing(a):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return original(a)

    monkeypatch.setattr(fio, target, failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        fio.save(path, {"w": np.zeros(3), "b": np.zeros(2)})
    assert len(calls) == 2
    assert open(path, "rb").read() == before
    assert _snapshot(tmp_path) == files


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_at_fsync_and_replace(tmp_path, fmt, monkeypatch):
    path = _path(tmp_path, fmt)
    fio.save(path, {"w": np.ones(3)})
    before = open(path, "rb").read()
    files = _snapshot(tmp_path)
    for name in ("fsync", "replace"):
        with monkeypatch.context() as m:
            def boom(*args, **kwargs):
                raise OSError(f"{name} failed")

            m.setattr(fio.os, name, boom)
            with pytest.raises(OSError, match=f"{name} failed"):
                fio.save(path, {"w": np.zeros(3)})
        assert open(path, "rb").read() == before
        assert _snapshot(tmp_path) == files


def test_new_file_gets_ordinary_permissions(tmp_path):
    path = _path(tmp_path, "npz")
    fio.save(path, {"w": np.ones(1)})
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------------------------
# Refusing mismatched checkpoints


@pytest.fixture(params=FORMATS)
def saved(request, tmp_path):
    tree = {"conv_0": {"w": np.ones((2, 3), np.float32), "b": np.zeros(2, np.float32)},
            "layers": [np.ones(4, np.int32), (np.ones(1), np.ones(1))], "step": 5}
    path = _path(tmp_path, request.param)
    fio.save(path, tree)
    return path, tree


def _like(tree, **changes):
    out = {"conv_0": dict(tree["conv_0"]), "layers": list(tree["layers"]), "step": tree["step"]}
    for k, v in changes.items():
        parts = k.split("__")
        node = out
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(parts[-1])] = v
        else:
            node[parts[-1]] = v
    return out


def test_like_accepts_matching(saved):
    path, tree = saved
    assert_same_tree(fio.load(path, like=tree), tree)


def test_refuses_shape(saved):
    path, tree = saved
    like = _like(tree, conv_0__w=np.ones((3, 2), np.float32))
    with pytest.raises(fio.CheckpointMismatchError,
                       match=r"\['conv_0'\]\['w'\] \(entry 'conv_0.w'\): expected float32\[3, 2\], "
                             r"found float32\[2, 3\]"):
        fio.load(path, like=like)


def test_refuses_dtype(saved):
    path, tree = saved
    like = _like(tree, layers__0=np.ones(4, np.int64))
    with pytest.raises(fio.CheckpointMismatchError,
                       match=r"\['layers'\]\[0\] \(entry 'layers.0'\): expected int64\[4\], found int32\[4\]"):
        fio.load(path, like=like)
    like = _like(tree, step=5.0)
    with pytest.raises(fio.CheckpointMismatchError, match=r"expected float scalar, found int64\[\]"):
        fio.load(path, like=like)


def test_refuses_structure(saved):
    path, tree = saved
    like = _like(tree)
    like["layers"][1] = [np.ones(1), np.ones(1)]  # tuple in the file
    with pytest.raises(fio.CheckpointMismatchError,
                       match=r"at \['layers'\]\[1\]: expected list of length 2, found tuple of length 2"):
        fio.load(path, like=like)
    like = _like(tree)
    like["conv_0"]["extra"] = np.ones(1)
    with pytest.raises(fio.CheckpointMismatchError,
                       match=r"at \['conv_0'\]: expected dict with keys \['b', 'extra', 'w'\], "
                             r"found dict with keys \['b', 'w'\]"):
        fio.load(path, like=like)
    like = _like(tree)
    like["layers"] = like["layers"][:1]
    with pytest.raises(fio.CheckpointMismatchError, match="expected list of length 1, found list of length 2"):
        fio.load(path, like=like)


def test_first_difference_is_named(saved):
    path, tree = saved
    # Both conv_0.b (first in flatten order) and layers.0 differ: conv_0.b is named.
    like = _like(tree, conv_0__b=np.ones(3, np.float32), layers__0=np.ones(4, np.int8))
    with pytest.raises(fio.CheckpointMismatchError, match=r"'conv_0.b'"):
        fio.load(path, like=like)


# --------------------------------------------------------------------------------------------
# Damaged files


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cut", [0, 5, 20, -10, -1])
def test_truncated_refused(tmp_path, fmt, cut):
    path = _path(tmp_path, fmt)
    fio.save(path, {"w": np.arange(100.0), "b": np.ones(7, np.float32)})
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[:cut] if cut >= 0 else data[: len(data) + cut])
    with pytest.raises(fio.CheckpointError, match=os.path.basename(path)):
        fio.load(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_garbage_refused(tmp_path, fmt):
    path = _path(tmp_path, fmt)
    with open(path, "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + b"\x00" * 40)
    with pytest.raises(fio.CheckpointError, match=os.path.basename(path)):
        fio.load(path)


def test_bad_safetensors_offsets_refused(tmp_path):
    path = _path(tmp_path, "safetensors")
    header = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + b"\x00" * 12)
    with pytest.raises(fio.CheckpointError, match="needs 16 bytes"):
        fio.load(path)


def test_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        fio.save(str(tmp_path / "x.pt"), {"w": np.ones(1)})
    fio.save(str(tmp_path / "x.ckpt"), {"w": np.ones(1)}, format="npz")
    np.testing.assert_array_equal(fio.load(str(tmp_path / "x.ckpt"), format="npz")["w"], np.ones(1))


# --------------------------------------------------------------------------------------------
# Devices


def test_device_cpu(tmp_path):
    path = _path(tmp_path, "npz")
    fio.save(path, {"w": np.ones(2)})
    assert isinstance(fio.load(path, device="cpu")["w"], np.ndarray)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cupy_round_trip(tmp_path, fmt):
    if not fnn.backend.cupy_available():
        pytest.skip("no GPU")
    import cupy as cp

    path = _path(tmp_path, fmt)
    tree = {"w": cp.arange(6, dtype=cp.float32).reshape(2, 3), "step": 3}
    fio.save(path, tree)
    host = fio.load(path)
    assert isinstance(host["w"], np.ndarray)
    on_gpu = fio.load(path, device="gpu")
    assert isinstance(on_gpu["w"], cp.ndarray) and on_gpu["step"] == 3
    like = fio.load(path, like={"w": cp.zeros((2, 3), cp.float32), "step": 0})
    assert isinstance(like["w"], cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(like["w"]), np.arange(6, dtype=np.float32).reshape(2, 3))
