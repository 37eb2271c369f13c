"""fnn.data: IDX files, dataset loading and checks, synthetic sets, batching, augmentations."""

import gzip
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fnn
from fnn import data
from fnn.data import datasets

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
FOUR = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def key(seed):
    return fnn.random.key(seed)


# --------------------------------------------------------------------------------------------
# IDX


@given(
    arr=st.sampled_from(IDX_DTYPES).flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    ),
    compress=st.booleans(),
)
def test_idx_round_trip(tmp_path_factory, arr, compress):
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if compress else "a.idx")
    data.write_idx(path, arr)
    with open(path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == compress
    out = data.read_idx(path)
    assert out.shape == arr.shape and out.dtype == arr.dtype
    assert out.tobytes() == arr.tobytes()  # bit-exact, NaNs included
    assert out.flags.writeable


def test_idx_format_is_big_endian_and_compression_follows_content(tmp_path):
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32)
    raw = tmp_path / "x.gz"  # a raw file with a .gz name: the content decides
    data.write_idx(raw, a, compress=False)
    blob = raw.read_bytes()
    assert blob[:4] == bytes([0, 0, 0x0C, 2])
    assert blob[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert blob[12:16] == (1).to_bytes(4, "big")
    np.testing.assert_array_equal(data.read_idx(raw), a)
    gz = tmp_path / "x.idx"
    data.write_idx(gz, a, compress=True)
    assert gzip.decompress(gz.read_bytes()) == blob
    np.testing.assert_array_equal(data.read_idx(gz), a)
    # big-endian input is written the same way
    data.write_idx(tmp_path / "be", a.astype(">i4"), compress=False)
    assert (tmp_path / "be").read_bytes() == blob


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="int64"):
        data.write_idx(tmp_path / "x", np.zeros(3, np.int64))


def _idx_bytes(arr):
    return bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, ">u4").tobytes() + arr.astype(np.uint8).tobytes()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b"\x01" + b[1:], "magic"),
        (lambda b: b[:2] + b"\x07" + b[3:], "dtype code 0x07"),
        (lambda b: b[:-1], "truncated data"),
        (lambda b: b + b"\x00", "trailing data"),
        (lambda b: b[:7], "truncated IDX header"),
        (lambda b: b[:2], "too short"),
        (lambda b: b[:4] + (3).to_bytes(4, "big") + b[8:], r"shape \(3, 5\)"),  # dims claim more than is there
        (lambda b: b[:3] + b"\x03" + b[4:], r"truncated data.*shape \(2, 5, 66051\)"),  # wrong ndim
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_idx_corrupt_files_raise(tmp_path, mutate, message, compress):
    blob = mutate(_idx_bytes(np.arange(10).reshape(2, 5)))
    path = tmp_path / "bad.idx"
    path.write_bytes(gzip.compress(blob) if compress else blob)
    with pytest.raises(ValueError, match=message) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_idx_broken_gzip_raises(tmp_path):
    blob = gzip.compress(np.random.default_rng(0).integers(0, 255, 5000).astype(np.uint8).tobytes())
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated gzip") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)
    path.write_bytes(blob[:20] + bytes(b ^ 0xFF for b in blob[20:40]) + blob[40:])
    with pytest.raises(ValueError, match="gzip") as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------------------------
# Where data lives


def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("FNN_DATA_DIR", raising=False)
    assert data.data_dir() == tmp_path / "xdg" / "fnn"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.data_dir() == Path.home() / ".cache" / "fnn"
    monkeypatch.setenv("FNN_DATA_DIR", str(tmp_path / "env"))
    assert data.data_dir() == tmp_path / "env"
    assert data.data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data.data_dir(str(tmp_path / "arg")) == tmp_path / "arg"


def _fake_dataset(folder, n_train=7, n_test=3, size=(4, 5)):
    """Writes the four files of a tiny MNIST-like dataset; returns the arrays and their MD5s."""
    rng = np.random.default_rng(0)
    arrays = {
        FOUR[0]: rng.integers(0, 256, (n_train,) + size).astype(np.uint8),
        FOUR[1]: rng.integers(0, 10, n_train).astype(np.uint8),
        FOUR[2]: rng.integers(0, 256, (n_test,) + size).astype(np.uint8),
        FOUR[3]: rng.integers(0, 10, n_test).astype(np.uint8),
    }
    arrays[FOUR[0]][0, 0, 0], arrays[FOUR[0]][0, 0, 1] = 0, 255
    md5 = {}
    for name, a in arrays.items():
        data.write_idx(Path(folder) / name, a)
        md5[name] = hashlib.md5((Path(folder) / name).read_bytes()).hexdigest()
    return arrays, md5


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No FNN_DATA_DIR and a private cache, so nothing outside tmp_path is looked at."""
    monkeypatch.delenv("FNN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("in_subdir", [True, False])
def test_fake_dataset_loads_and_is_cached(isolated, in_subdir):
    root = isolated / "data"
    arrays, md5 = _fake_dataset(root / "toy" if in_subdir else root)
    spec = data.DatasetSpec("Toy", "toy", (), md5)
    x, y = data.load_idx_dataset(spec, "train", root, download=False)
    assert x.shape == (7, 1, 4, 5) and x.dtype == np.float32
    assert y.shape == (7,) and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], arrays[FOUR[0]].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, arrays[FOUR[1]])
    assert x.min() == 0.0 and x.max() == 1.0
    xt, yt = data.load_idx_dataset(spec, "test", root, download=False)
    assert xt.shape == (3, 1, 4, 5) and yt.shape == (3,)
    x2, y2 = data.load_idx_dataset(spec, "train", root, download=False)
    assert x2 is x and y2 is y  # decoded once per process
    assert not x.flags.writeable  # the cached arrays are shared, so they are read-only
    with pytest.raises(ValueError, match="split"):
        data.load_idx_dataset(spec, "valid", root, download=False)


def test_fake_dataset_found_through_env(isolated, monkeypatch):
    _, md5 = _fake_dataset(isolated / "env" / "toy")
    monkeypatch.setenv("FNN_DATA_DIR", str(isolated / "env"))
    x, _ = data.load_idx_dataset(data.DatasetSpec("Toy", "toy", (), md5), "test", download=False)
    assert x.shape == (3, 1, 4, 5)


def test_md5_mismatch_names_file_and_both_digests(isolated):
    root = isolated / "data"
    _, md5 = _fake_dataset(root / "toy")
    wrong = dict(md5, **{FOUR[1]: "0" * 32})
    with pytest.raises(data.ChecksumError) as info:
        data.load_idx_dataset(data.DatasetSpec("Toy", "toy", (), wrong), "train", root, download=False)
    msg = str(info.value)
    assert FOUR[1] in msg and "0" * 32 in msg and md5[FOUR[1]] in msg
    assert isinstance(info.value, ValueError)


def test_md5_catches_a_modified_file(isolated):
    root = isolated / "data"
    _, md5 = _fake_dataset(root / "toy")
    spec = data.DatasetSpec("Toy", "toy", (), md5)
    data.load_idx_dataset(spec, "test", root, download=False)
    data.write_idx(root / "toy" / FOUR[2], np.zeros((3, 4, 5), np.uint8))  # replaced after a load
    with pytest.raises(data.ChecksumError, match=FOUR[2]):
        data.load_idx_dataset(spec, "test", root, download=False)


def test_missing_files_error_names_files_dir_and_env(isolated):
    root = isolated / "empty"
    root.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        data.mnist("test", data_dir=root, download=False)
    msg = str(info.value)
    for name in FOUR:
        assert name in msg
    assert str(root / "mnist") in msg and "FNN_DATA_DIR" in msg


def test_unreachable_mirror_fails_fast_with_the_file_names(isolated):
    _, md5 = _fake_dataset(isolated / "src")
    spec = data.DatasetSpec("Toy", "toy", ("http://127.0.0.1:9/", "http://127.0.0.1:9/again/"), md5)
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError) as info:
        data.load_idx_dataset(spec, "train", isolated / "empty", download=True)
    assert time.perf_counter() - t0 < 20
    msg = str(info.value)
    assert all(name in msg for name in FOUR) and "Downloading failed" in msg and "FNN_DATA_DIR" in msg
    assert not list((isolated / "cache").rglob("*.part"))  # no temporary files left behind


def test_download_into_cache_from_a_mirror(isolated):
    _, md5 = _fake_dataset(isolated / "src")
    mirrors = ((isolated / "nowhere").as_uri() + "/", (isolated / "src").as_uri() + "/")
    spec = data.DatasetSpec("Toy", "toy", mirrors, md5)
    x, y = data.load_idx_dataset(spec, "test", isolated / "empty", download=True)
    assert x.shape == (3, 1, 4, 5)
    cached = isolated / "cache" / "fnn" / "toy"
    assert sorted(p.name for p in cached.iterdir()) == sorted(FOUR[2:])
    # a mirror serving a different file is rejected by its MD5 and nothing is kept
    bad = data.DatasetSpec("Toy", "toy", mirrors, dict(md5, **{FOUR[0]: "f" * 32}))
    with pytest.raises(FileNotFoundError, match="MD5 mismatch"):
        data.load_idx_dataset(bad, "train", isolated / "empty", download=True)
    assert not (cached / FOUR[0]).exists()
    assert not list(cached.glob(".*"))


REAL_COUNTS = {
    ("mnist", "train"): [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    ("mnist", "test"): [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ("fashion_mnist", "train"): [6000] * 10,
    ("fashion_mnist", "test"): [1000] * 10,
}


@pytest.mark.parametrize("name, split", list(REAL_COUNTS))
def test_real_mnist_and_fashion_mnist(name, split):
    root = os.environ.get("FNN_DATA_DIR")
    if not root:
        pytest.skip("FNN_DATA_DIR is not set")
    sub = "mnist" if name == "mnist" else "fashion-mnist"
    files = data.datasets.FILES[split]
    if not all((Path(root) / sub / f).is_file() or (Path(root) / f).is_file() for f in files):
        pytest.skip(f"{sub} files are not in FNN_DATA_DIR={root}")
    x, y = getattr(data, name)(split, download=False)
    n = 60000 if split == "train" else 10000
    assert x.shape == (n, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == REAL_COUNTS[(name, split)]


# --------------------------------------------------------------------------------------------
# Synthetic data


def test_two_moons():
    x, y = data.two_moons(key(0), 101)
    assert x.shape == (101, 2) and x.dtype == np.float32 and y.shape == (101,) and y.dtype == np.int64
    assert (y == 0).sum() == 50 and (y == 1).sum() == 51
    x2, y2 = data.two_moons(key(0), 101)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(data.two_moons(key(1), 101)[0], x)
    # without noise every point lies on its moon (make_moons geometry)
    x, y = data.two_moons(key(0), 200, noise=0.0)
    r0 = np.hypot(x[y == 0, 0], x[y == 0, 1])
    r1 = np.hypot(x[y == 1, 0] - 1.0, x[y == 1, 1] - 0.5)
    np.testing.assert_allclose(r0, 1.0, atol=1e-6)
    np.testing.assert_allclose(r1, 1.0, atol=1e-6)
    assert (x[y == 0, 1] >= -1e-6).all() and (x[y == 1, 1] <= 0.5 + 1e-6).all()
    assert data.two_moons(key(0), 0)[0].shape == (0, 2)


def test_linear_regression_data():
    w = np.array([1.0, -2.0, 0.5], np.float32)
    x, y = data.linear_regression_data(key(0), 50, w, 0.3, noise=0.0)
    assert x.shape == (50, 3) and y.shape == (50,) and x.dtype == y.dtype == np.float32
    np.testing.assert_allclose(y, x @ w + 0.3, rtol=1e-6)
    x, y = data.linear_regression_data(key(0), 2000, np.ones((3, 2)), 0.0, noise=0.1)
    assert y.shape == (2000, 2)
    assert abs(np.std(y - x.sum(1, keepdims=True)) - 0.1) < 0.01


def test_sin_cos_sequences():
    x, y = data.sin_cos_sequences(key(0), 16, 20, dt=0.1)
    assert x.shape == y.shape == (16, 20, 1) and x.dtype == y.dtype == np.float32
    np.testing.assert_allclose(x**2 + y**2, 1.0, atol=1e-5)
    # each window advances by dt: sin(t + dt) = sin t cos dt + cos t sin dt
    np.testing.assert_allclose(x[:, 1:], x[:, :-1] * np.cos(0.1) + y[:, :-1] * np.sin(0.1), atol=1e-5)
    assert np.ptp(x[:, 0, 0]) > 0.5  # random phases
    np.testing.assert_array_equal(x, data.sin_cos_sequences(key(0), 16, 20, dt=0.1)[0])


def test_digits_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="scikit-learn"):
        data.digits()


def test_digits_with_scikit_learn():
    pytest.importorskip("sklearn")
    x, y = data.digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32 and y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0 and set(np.unique(y)) == set(range(10))


# --------------------------------------------------------------------------------------------
# Batching


@given(n=st.integers(0, 60), batch_size=st.integers(1, 25), drop_last=st.booleans(), seed=st.integers(0, 2**32), shuffle=st.booleans())
def test_batches_visit_each_example_once(n, batch_size, drop_last, seed, shuffle):
    x = np.arange(n)
    y = np.arange(n) * 10
    out = list(data.batches(key(seed), (x, y), batch_size, shuffle=shuffle, drop_last=drop_last))
    assert len(out) == data.num_batches(n, batch_size, drop_last)
    sizes = [len(bx) for bx, _ in out]
    full, rest = divmod(n, batch_size)
    assert sizes == [batch_size] * full + ([] if drop_last or rest == 0 else [rest])
    seen = np.concatenate([bx for bx, _ in out]) if out else np.zeros(0, int)
    for bx, by in out:
        np.testing.assert_array_equal(by, bx * 10)  # the arrays stay aligned
    assert len(set(seen.tolist())) == len(seen)  # nothing twice
    if not drop_last:
        assert sorted(seen.tolist()) == list(range(n))  # everything once
    if not shuffle:
        assert seen.tolist() == list(range(len(seen)))


def test_batches_deterministic_per_key():
    x = np.arange(100)
    a = np.concatenate(list(data.batches(key(3), x, 16)))
    b = np.concatenate(list(data.batches(key(3), x, 16)))
    c = np.concatenate(list(data.batches(key(4), x, 16)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, x)


def test_batches_single_array_and_errors():
    x = np.zeros((10, 3))
    first = next(data.batches(key(0), x, 4))
    assert isinstance(first, np.ndarray) and first.shape == (4, 3)
    first = next(data.batches(key(0), [x], 4))
    assert isinstance(first, tuple) and len(first) == 1
    with pytest.raises(ValueError, match="first dimension"):
        data.batches(key(0), (x, np.zeros(9)), 4)  # raised at the call
    with pytest.raises(ValueError, match="key"):
        data.batches(None, x, 4)
    assert [len(b) for b in data.batches(None, x, 4, shuffle=False)] == [4, 4, 2]
    with pytest.raises(ValueError, match="batch_size"):
        data.batches(key(0), x, 0)
    with pytest.raises(ValueError, match="empty"):
        data.batches(key(0), (), 4)
    assert data.num_batches(10, 4) == 3 and data.num_batches(10, 4, drop_last=True) == 2
    assert data.num_batches(0, 4) == 0


# --------------------------------------------------------------------------------------------
# Augmentations


@given(
    n=st.integers(1, 5), c=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6),
    padding=st.integers(0, 3), seed=st.integers(0, 1000), data_=st.data(),
    dtype=st.sampled_from([np.float32, np.uint8]),
)
def test_random_crop_is_a_window_of_the_padded_image(n, c, h, w, padding, seed, data_, dtype):
    ch = data_.draw(st.integers(1, h + 2 * padding))
    cw = data_.draw(st.integers(1, w + 2 * padding))
    images = (np.arange(n * c * h * w).reshape(n, c, h, w) % 251 + 1).astype(dtype)
    out = data.random_crop(key(seed), images, (ch, cw), padding=padding)
    assert out.shape == (n, c, ch, cw) and out.dtype == dtype
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    for k in range(n):
        windows = [
            (i, j)
            for i in range(h + 2 * padding - ch + 1)
            for j in range(w + 2 * padding - cw + 1)
            if np.array_equal(padded[k, :, i : i + ch, j : j + cw], out[k])
        ]
        assert windows, f"crop {k} is not a window of the padded image"
    np.testing.assert_array_equal(out, data.random_crop(key(seed), images, (ch, cw), padding=padding))


def test_random_crop_offsets_cover_all_windows_independently():
    images = np.broadcast_to(np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6), (400, 1, 6, 6))
    out = data.random_crop(key(0), images, 4, padding=0)
    corners = out[:, 0, 0, 0].astype(int)
    offsets = {(v // 6, v % 6) for v in corners}
    assert offsets == {(i, j) for i in range(3) for j in range(3)}  # all 9 offsets, inclusive ends
    assert data.random_crop(key(0), images[:2], 6).tolist() == images[:2].tolist()  # full size: identity
    with pytest.raises(ValueError, match="larger"):
        data.random_crop(key(0), images, 7)
    with pytest.raises(ValueError, match="N, C, H, W"):
        data.random_crop(key(0), images[0], 2)
    reflect = data.random_crop(key(0), images[:50], 6, padding=2, padding_mode="reflect")
    assert set(reflect.ravel().tolist()) <= set(range(36))


@given(n=st.integers(1, 20), seed=st.integers(0, 1000), p=st.sampled_from([0.0, 0.3, 1.0]))
def test_random_horizontal_flip(n, seed, p):
    images = np.random.default_rng(seed).random((n, 2, 3, 4)).astype(np.float32)
    out = data.random_horizontal_flip(key(seed), images, p)
    assert out.shape == images.shape and out.dtype == images.dtype
    flipped = [np.array_equal(o, im[..., ::-1]) for o, im in zip(out, images)]
    same = [np.array_equal(o, im) for o, im in zip(out, images)]
    assert all(f or s for f, s in zip(flipped, same))
    if p == 0.0:
        assert all(same)
    if p == 1.0:
        assert all(flipped)
    np.testing.assert_array_equal(out, data.random_horizontal_flip(key(seed), images, p))


def test_random_horizontal_flip_flips_about_half():
    images = np.arange(4, dtype=np.uint8).reshape(1, 1, 1, 4).repeat(1000, 0)
    out = data.random_horizontal_flip(key(0), images)
    n_flipped = int((out[:, 0, 0, 0] == 3).sum())
    assert out.dtype == np.uint8 and 430 < n_flipped < 570


def test_normalize():
    images = np.random.default_rng(0).random((4, 3, 5, 5)).astype(np.float32)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    out = data.normalize(images, mean, std)
    assert out.dtype == np.float32 and out.shape == images.shape
    for c in range(3):
        np.testing.assert_allclose(out[:, c], (images[:, c] - mean[c]) / std[c], rtol=1e-6)
    np.testing.assert_allclose(data.normalize(images, 0.5, 0.5), (images - 0.5) / 0.5, rtol=1e-6)
    assert data.normalize(np.zeros((1, 1, 2, 2), np.uint8), 0.5, 0.5).dtype == np.float32
    with pytest.raises(ValueError, match="per channel"):
        data.normalize(images, [0.1, 0.2], 1.0)
