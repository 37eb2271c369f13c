"""MNIST and Fashion-MNIST from their original gzip IDX files.

Where the files are looked for (`data_dir`): the `data_dir` argument, else the ``FNN_DATA_DIR``
environment variable, else the user cache ``$XDG_CACHE_HOME/fnn`` (``~/.cache/fnn``). In that folder
each dataset's four files may sit in a subfolder (``mnist/``, ``fashion-mnist/``) or directly in
it; the cache is always searched last. Files that are missing everywhere are downloaded into the
cache (when `download` and the network allow). Every file, found or downloaded, is checked
against its known MD5. Decoded arrays are kept in memory per process, so a second call is cheap;
they are returned read-only (copy them before changing them in place).
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np

from fnn.data.idx import read_idx

__all__ = [
    "data_dir",
    "mnist",
    "fashion_mnist",
    "DatasetSpec",
    "MNIST",
    "FASHION_MNIST",
    "load_idx_dataset",
    "ChecksumError",
]

ENV_VAR = "FNN_DATA_DIR"
DOWNLOAD_TIMEOUT_S = 5.0

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class ChecksumError(ValueError):
    """A data file's MD5 differs from the known one (a corrupt or different file)."""


class DatasetSpec(NamedTuple):
    """What identifies an IDX image-classification dataset: its name, the subfolder it lives in,
    download mirrors (URL prefixes, tried in order) and the MD5 of each of its four files."""

    name: str
    subdir: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]


MNIST = DatasetSpec(
    name="MNIST",
    subdir="mnist",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)

FASHION_MNIST = DatasetSpec(
    name="Fashion-MNIST",
    subdir="fashion-mnist",
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
)


# --------------------------------------------------------------------------------------------
# Where the data lives


def cache_dir() -> Path:
    """The user cache for fnn: ``$XDG_CACHE_HOME/fnn``, or ``~/.cache/fnn``."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fnn"


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: `path` if given, else ``$FNN_DATA_DIR``, else the user cache (`cache_dir`)."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return cache_dir()


_resolve_dir = data_dir  # the loaders' `data_dir` argument shadows the function


def _search_dirs(spec: DatasetSpec, root: Path) -> list[Path]:
    dirs = [root / spec.subdir, root]
    cache = cache_dir()
    for d in (cache / spec.subdir, cache):
        if d not in dirs:
            dirs.append(d)
    return dirs


# --------------------------------------------------------------------------------------------
# Checksums and downloads


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _md5_stamped(path: Path, stamp: tuple) -> str:
    del stamp  # part of the cache key only
    return _md5(path)


def _check_md5(path: Path, expected: str) -> None:
    got = _md5_stamped(path.resolve(), _stamp(path))
    if got != expected:
        raise ChecksumError(
            f"{path}: MD5 mismatch: expected {expected}, got {got}; the file is corrupt or not the "
            f"original (delete it and put the original file there)"
        )


def _download(spec: DatasetSpec, name: str, target_dir: Path, dead: set[str]) -> tuple[Path | None, list[str]]:
    """Fetch `name` from the first mirror that has it into `target_dir` (temporary file, MD5 check,
    atomic rename). Returns the path (or None) and the reasons each mirror failed. Mirrors that
    fail to connect go into `dead` and are skipped for the rest of the call."""
    errors = []
    for mirror in spec.mirrors:
        url = mirror + name
        if mirror in dead:
            errors.append(f"{url}: skipped (mirror unreachable)")
            continue
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=f".{name}.", suffix=".part")
        except OSError as e:
            errors.append(f"cannot write to {target_dir}: {e}")
            return None, errors
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    f.write(chunk)
            got = _md5(Path(tmp))
            if got != spec.md5[name]:
                errors.append(f"{url}: MD5 mismatch: expected {spec.md5[name]}, got {got}")
                continue
            dest = target_dir / name
            os.replace(tmp, dest)
            return dest, errors
        except urllib.error.HTTPError as e:
            errors.append(f"{url}: HTTP {e.code} {e.reason}")
        except (urllib.error.URLError, OSError) as e:
            dead.add(mirror)
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    return None, errors


def _locate(spec: DatasetSpec, names: tuple[str, ...], root: Path, download: bool) -> list[Path]:
    dirs = _search_dirs(spec, root)
    found: dict[str, Path] = {}
    for name in names:
        for d in dirs:
            if (d / name).is_file():
                found[name] = d / name
                break
    missing = [n for n in names if n not in found]
    errors: list[str] = []
    if missing and download:
        dead: set[str] = set()
        for name in missing:
            path, errs = _download(spec, name, cache_dir() / spec.subdir, dead)
            errors += errs
            if path is not None:
                found[name] = path
    missing = [n for n in names if n not in found]
    if missing:
        all_four = ", ".join(spec.md5)
        msg = (
            f"{spec.name}: missing {', '.join(missing)} (looked in {', '.join(str(d) for d in dirs)}). "
            f"Put the four original files {all_four} in {root / spec.subdir}/ "
            f"(or in a folder of your choice and set the {ENV_VAR} environment variable to its parent, "
            f"which holds {spec.subdir}/)."
        )
        if not download:
            msg += " Downloading was turned off (download=False)."
        elif errors:
            msg += " Downloading failed: " + "; ".join(errors)
        raise FileNotFoundError(msg)
    for name in names:
        _check_md5(found[name], spec.md5[name])
    return [found[n].resolve() for n in names]


# --------------------------------------------------------------------------------------------
# Decoding (cached per process)


@functools.lru_cache(maxsize=8)
def _decode(images_path: Path, labels_path: Path, stamp: tuple) -> tuple[np.ndarray, np.ndarray]:
    del stamp  # part of the cache key only: a replaced file is decoded again
    raw = read_idx(images_path)
    labels = read_idx(labels_path)
    if raw.ndim != 3 or raw.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected uint8 images of shape (N, H, W), got {raw.dtype} {raw.shape}")
    if labels.ndim != 1 or labels.shape[0] != raw.shape[0]:
        raise ValueError(
            f"{labels_path}: expected {raw.shape[0]} labels (one per image in {images_path.name}), "
            f"got shape {labels.shape}"
        )
    images = np.empty((raw.shape[0], 1) + raw.shape[1:], dtype=np.float32)
    np.divide(raw[:, None], np.float32(255), out=images, dtype=np.float32)
    labels = labels.astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _stamp(p: Path) -> tuple:
    st = p.stat()
    return (st.st_size, st.st_mtime_ns)


def load_idx_dataset(
    spec: DatasetSpec, split: str = "train", data_dir: str | os.PathLike | None = None, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)` of an MNIST-like dataset described by `spec`: images float32 of shape
    (N, 1, H, W) in [0, 1], labels int64 of shape (N,); both read-only."""
    if split not in FILES:
        raise ValueError(f"{spec.name}: split must be 'train' or 'test', got {split!r}")
    root = _resolve_dir(data_dir)
    img, lab = _locate(spec, FILES[split], root, download)
    return _decode(img, lab, (_stamp(img), _stamp(lab)))


def mnist(split: str = "train", data_dir: str | os.PathLike | None = None, download: bool = True):
    """MNIST digits: images float32 (N, 1, 28, 28) in [0, 1] and labels int64, N = 60000 (train)
    or 10000 (test). See the module docstring for where the files are looked for."""
    return load_idx_dataset(MNIST, split, data_dir, download)


def fashion_mnist(split: str = "train", data_dir: str | os.PathLike | None = None, download: bool = True):
    """Fashion-MNIST: images float32 (N, 1, 28, 28) in [0, 1] and labels int64, N = 60000 (train)
    or 10000 (test). See the module docstring for where the files are looked for."""
    return load_idx_dataset(FASHION_MNIST, split, data_dir, download)
