"""Checkpoints: `save(path, tree)` and `load(path, like=None)` in `.npz` or `.safetensors` files.

Each leaf is stored under its tree path joined with '.' (`conv_0.w`, `layers.2.b`, optimizer state
`0.mu.conv_0.w`); a single-leaf tree is stored under `value`. The tree's structure is stored
beside the arrays as JSON (in `.npz`: the entry `__fnn_structure__`; in `.safetensors`: the
`fnn.structure` field of the `__metadata__` header), so `load(path)` rebuilds trees of dicts, lists,
tuples, OrderedDicts and None as they were; for other node types (namedtuples such as optimizer
states, attrs classes) pass `like=` a tree of the wanted structure.

`load(path, like=tree)` refuses a checkpoint that does not match `tree`: the error names the first
entry that differs (its path, what was expected and what was found). Python scalars in `like`
(e.g. an optimizer's step count) come back as Python scalars of the same type.

The `.safetensors` files are written with NumPy alone in the published format (an 8-byte
little-endian header length, a JSON header with dtype, shape and data_offsets per tensor and a
string-to-string `__metadata__`, the data packed without gaps, each tensor aligned to its item
size), so the `safetensors` package reads them, and files it writes load here (without `like`: a
flat dict from name to array; with `like`: matched by name). BF16 tensors load as float32.

Writes are atomic: the file is written to a temporary file in the same directory, flushed, synced
and moved over `path` with `os.replace`; a failed write leaves any previous file untouched and
no temporary file behind.

Devices: CuPy leaves are saved from host copies (one device-to-host copy per leaf). A file is
always read and checked on the host; then `load(..., device='gpu')` moves every array of the result
to the GPU (random keys included: keep them on the host by loading with `like=` instead), and
`device='cpu'` brings every array to the host. Without `device`, `like` decides leaf by leaf: a
CuPy leaf in `like` loads onto the GPU, a NumPy leaf onto the host, so a training state of GPU
parameters and a host key comes back as it was saved.
"""

from __future__ import annotations

import collections
import io as _pyio
import json
import os
import struct
import zipfile
from typing import Any

import numpy as np

from fnn import tree as tree_util
from fnn.autodiff import stop_gradient
from fnn.backend import is_cupy_array, to_device
from fnn.files import atomic_write

__all__ = ["save", "load", "CheckpointError", "CheckpointMismatchError"]

STRUCTURE_KEY = "__fnn_structure__"  # the npz entry holding the structure
METADATA_KEY = "fnn.structure"  # the safetensors __metadata__ field holding the structure
ROOT_NAME = "value"  # the name of the leaf of a single-leaf tree
_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read (missing, truncated, corrupt) or a tree that cannot be saved."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose structure, shapes or dtypes differ from the `like` tree."""


# --------------------------------------------------------------------------------------------
# Structure: a JSON description of the tree, leaves replaced by their names


_JSON_SCALARS = (str, int, float, bool, type(None))
_REBUILDABLE = {dict: "dict", list: "list", tuple: "tuple", type(None): "none",
                collections.OrderedDict: "odict"}


def _children(x):
    """[(key, child), ...] of one node (one level), or None if `x` is a leaf for fnn.tree."""
    pairs, _ = tree_util.flatten_with_path(x, is_leaf=lambda y: y is not x)
    if len(pairs) == 1 and pairs[0][0] == ():
        return None
    return [(p[0], c) for p, c in pairs]


def _py_kind(leaf) -> str | None:
    t = type(leaf)
    if t is bool:
        return "bool"
    if t is int:
        return "int"
    if t is float:
        return "float"
    if t is complex:
        return "complex"
    if isinstance(leaf, np.generic):
        return "npscalar"
    return None


def _encode(x, path: tuple, out: list) -> dict:
    """The JSON structure of `x`; appends (path, name, leaf) to `out` in flatten's order."""
    kids = _children(x)
    if kids is None:
        name = tree_util.path_to_name(path) if path else ROOT_NAME
        out.append((path, name, x))
        node = {"t": "leaf", "name": name}
        kind = _py_kind(x)
        if kind:
            node["py"] = kind
        return node
    kind = _REBUILDABLE.get(type(x))
    node: dict = {"t": kind or "other", "c": [_encode(c, path + (k,), out) for k, c in kids]}
    if kind in ("dict", "odict"):
        keys = [k.key for k, _ in kids]
        if all(type(k) in _JSON_SCALARS for k in keys):
            node["keys"] = keys
        else:
            node["t"] = "other"
    if node["t"] == "other":
        node["type"] = f"{type(x).__module__}.{type(x).__qualname__}"
        node["names"] = [tree_util.path_to_name((k,)) for k, _ in kids]
    return node


def _node_desc(node: dict) -> str:
    t = node["t"]
    n = len(node.get("c", ()))
    if t == "leaf":
        return "a leaf"
    if t in ("dict", "odict"):
        return f"{'dict' if t == 'dict' else 'OrderedDict'} with keys {node['keys']!r}"
    if t in ("list", "tuple"):
        return f"{t} of length {n}"
    if t == "none":
        return "None"
    return f"{node['type']} with children {node['names']!r}"


def _compare(expected: dict, found: dict, path: tuple, file: str) -> None:
    """Raise CheckpointMismatchError at the first node (in flatten order) where the two differ."""
    if expected["t"] == "leaf" and found["t"] == "leaf":
        return
    same = expected["t"] == found["t"] and len(expected.get("c", ())) == len(found.get("c", ()))
    if same and expected["t"] in ("dict", "odict"):
        same = expected["keys"] == found["keys"]
    if same and expected["t"] == "other":
        same = expected["type"] == found["type"] and expected["names"] == found["names"]
    if not same:
        where = tree_util.keystr(path) or "the root"
        raise CheckpointMismatchError(
            f"checkpoint {file!r} does not match `like` at {where}: expected {_node_desc(expected)}, "
            f"found {_node_desc(found)}"
        )
    kids = _children_keys(expected)
    for key, e, f in zip(kids, expected["c"], found["c"]):
        _compare(e, f, path + (key,), file)


def _children_keys(node: dict) -> list:
    t = node["t"]
    if t in ("dict", "odict"):
        return [tree_util.DictKey(k) for k in node["keys"]]
    if t == "other":
        return [tree_util.DictKey(n) for n in node["names"]]
    return [tree_util.SequenceKey(i) for i in range(len(node.get("c", ())))]


def _rebuild(node: dict, arrays: dict, file: str, path: tuple = ()):
    t = node["t"]
    if t == "leaf":
        return _from_stored(arrays[node["name"]], node.get("py"))
    if t == "none":
        return None
    kids = _children_keys(node)
    children = [_rebuild(c, arrays, file, path + (k,)) for k, c in zip(kids, node["c"])]
    if t == "dict":
        return dict(zip(node["keys"], children))
    if t == "odict":
        return collections.OrderedDict(zip(node["keys"], children))
    if t == "list":
        return children
    if t == "tuple":
        return tuple(children)
    where = tree_util.keystr(path) or "the root"
    raise CheckpointError(
        f"checkpoint {file!r} holds a {node['type']} node at {where}, which cannot be rebuilt "
        "from the file alone; pass `like=` a tree of the wanted structure"
    )


def _from_stored(a: np.ndarray, py: str | None):
    if py in ("bool", "int", "float", "complex"):
        return {"bool": bool, "int": int, "float": float, "complex": complex}[py](a.item())
    if py == "npscalar":
        return a[()]
    return a


# --------------------------------------------------------------------------------------------
# Leaves to host arrays


def _to_host(path: tuple, leaf) -> np.ndarray:
    where = tree_util.keystr(path) or "the root"
    if is_cupy_array(leaf):
        leaf = leaf.get()
    if isinstance(leaf, (np.ndarray, np.generic, bool, int, float, complex)):
        try:
            a = np.asarray(leaf)
        except OverflowError as exc:
            raise CheckpointError(f"cannot save the leaf at {where}: {exc}") from None
        if a.dtype.kind in "OUSVMm":
            raise CheckpointError(
                f"cannot save the leaf at {where}: arrays of dtype {a.dtype} are not supported"
            )
        return a
    raise CheckpointError(
        f"cannot save the leaf at {where}: {type(leaf).__name__} is not an array or a number"
    )


def _prepare(tree: Any):
    """(structure JSON string, [(path, name, host array)]) of a tree to save."""
    tree = stop_gradient(tree)
    entries: list = []
    structure = _encode(tree, (), entries)
    seen: dict = {}
    out = []
    for path, name, leaf in entries:
        if name == STRUCTURE_KEY:
            raise CheckpointError(f"cannot save: the name {STRUCTURE_KEY!r} is reserved")
        if name in seen:
            raise CheckpointError(
                f"cannot save: the leaves at {tree_util.keystr(seen[name])} and "
                f"{tree_util.keystr(path)} both get the name {name!r}"
            )
        seen[name] = path
        out.append((path, name, _to_host(path, leaf)))
    text = json.dumps({"version": _VERSION, "tree": structure}, separators=(",", ":"))
    return text, out


def _format_of(path: str, format: str | None) -> str:
    if format is not None:
        if format not in ("npz", "safetensors"):
            raise ValueError(f"unknown checkpoint format {format!r}; expected 'npz' or 'safetensors'")
        return format
    lower = path.lower()
    if lower.endswith(".npz"):
        return "npz"
    if lower.endswith(".safetensors"):
        return "safetensors"
    raise ValueError(
        f"cannot tell the checkpoint format of {path!r}: use a .npz or .safetensors suffix "
        "(or pass format='npz' / 'safetensors')"
    )


# --------------------------------------------------------------------------------------------
# npz


def _array_bytes(a: np.ndarray) -> bytes:
    buf = _pyio.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


def _write_npz(f, structure: str, entries: list) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        z.writestr(STRUCTURE_KEY + ".npy", _array_bytes(np.array(structure)))
        for _, name, a in entries:
            z.writestr(name + ".npy", _array_bytes(a))


def _read_npz(path: str):
    arrays = {}
    structure = None
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            value = data[key]
            if not isinstance(value, np.ndarray):
                raise CheckpointError(f"checkpoint {path!r}: the entry {key!r} is not an array")
            if key == STRUCTURE_KEY:
                structure = str(value[()])
            else:
                arrays[key] = value
    return arrays, structure


# --------------------------------------------------------------------------------------------
# safetensors

_ST_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"), "I8": np.dtype("<i1"),
    "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8"),
}
_ST_NAMES = {(d.kind, d.itemsize): name for name, d in _ST_DTYPES.items()}
_MAX_HEADER = 100_000_000


def _st_dtype_name(path: tuple, a: np.ndarray) -> str:
    name = _ST_NAMES.get((a.dtype.kind, a.dtype.itemsize))
    if name is None:
        where = tree_util.keystr(path) or "the root"
        raise CheckpointError(
            f"cannot save the leaf at {where} to .safetensors: dtype {a.dtype} has no safetensors "
            "equivalent (use .npz)"
        )
    return name


def _tensor_bytes(a: np.ndarray) -> memoryview:
    a = np.asarray(a, dtype=a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype, order="C")
    return memoryview(a.reshape(-1).view(np.uint8))


def _write_safetensors(f, structure: str, entries: list) -> None:
    names = [(path, name, a, _st_dtype_name(path, a)) for path, name, a in entries]
    # Largest items first: with the header padded to 8 bytes, every tensor starts aligned.
    order = sorted(range(len(names)), key=lambda i: -names[i][2].dtype.itemsize)
    header: dict = {"__metadata__": {"format": "np", METADATA_KEY: structure}}
    offset = 0
    for i in order:
        _, name, a, dt = names[i]
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for i in order:
        f.write(_tensor_bytes(names[i][2]))


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _read_safetensors(path: str):
    with open(path, "rb") as f:
        data = f.read()

    def bad(why: str):
        return CheckpointError(f"checkpoint {path!r} is not a valid .safetensors file: {why}")

    if len(data) < 8:
        raise bad(f"it is {len(data)} bytes long, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER or 8 + n > len(data):
        raise bad(f"the header length {n} runs past the end of the file ({len(data)} bytes)")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"the header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise bad("__metadata__ is not an object")
    buffer = memoryview(data)[8 + n :]
    arrays = {}
    spans = []
    for name, info in header.items():
        try:
            dt_name, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            shape = tuple(int(s) for s in shape)
            begin, end = int(begin), int(end)
        except (TypeError, KeyError, ValueError) as exc:
            raise bad(f"the entry {name!r} is malformed ({exc!r})") from None
        if any(s < 0 for s in shape) or not 0 <= begin <= end <= len(buffer):
            raise bad(f"the entry {name!r} has offsets [{begin}, {end}] outside the data "
                      f"({len(buffer)} bytes) or a negative shape {shape}")
        if dt_name == "BF16":
            dtype = np.dtype("<u2")
        elif dt_name in _ST_DTYPES:
            dtype = _ST_DTYPES[dt_name]
        else:
            raise CheckpointError(f"checkpoint {path!r}: the entry {name!r} has dtype {dt_name}, "
                                  "which NumPy cannot represent")
        count = int(np.prod(shape, dtype=np.int64))
        if count * dtype.itemsize != end - begin:
            raise bad(f"the entry {name!r} of dtype {dt_name} and shape {list(shape)} needs "
                      f"{count * dtype.itemsize} bytes but has {end - begin}")
        a = np.frombuffer(buffer[begin:end], dtype=dtype, count=count).reshape(shape)
        a = a.astype(dtype.newbyteorder("="), copy=True)
        if dt_name == "BF16":
            a = _bf16_to_f32(a)
        arrays[name] = a
        spans.append((begin, end))
    spans.sort()
    pos = 0
    for begin, end in spans:
        if begin != pos:
            raise bad("the tensors' data does not tile the data section")
        pos = end
    if pos != len(buffer):
        raise bad(f"the data section has {len(buffer)} bytes but the tensors cover {pos}")
    structure = meta.get(METADATA_KEY)
    return arrays, structure


# --------------------------------------------------------------------------------------------
# Public API


def save(path: str | os.PathLike, tree: Any, *, format: str | None = None) -> None:
    """Write `tree` (a pytree of arrays and numbers) to `path` (.npz or .safetensors), atomically."""
    path = os.fspath(path)
    fmt = _format_of(path, format)
    structure, entries = _prepare(tree)
    if fmt == "npz":
        atomic_write(path, lambda f: _write_npz(f, structure, entries))
    else:
        for p, _, a in entries:
            _st_dtype_name(p, a)  # refuse unsupported dtypes before touching the disk
        atomic_write(path, lambda f: _write_safetensors(f, structure, entries))


def _read(path: str, fmt: str):
    try:
        if fmt == "npz":
            arrays, structure = _read_npz(path)
        else:
            arrays, structure = _read_safetensors(path)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise
    except Exception as exc:  # zip, npy-header and decoding failures of a damaged file
        raise CheckpointError(
            f"checkpoint {path!r} is truncated or corrupt: {type(exc).__name__}: {exc}"
        ) from exc
    if structure is not None:
        try:
            doc = json.loads(structure)
            tree_json = doc["tree"]
            entries: list = []
            _collect_leaf_names(tree_json, entries)
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path!r} has a corrupt structure entry ({exc!r})") from None
        missing = [n for n in entries if n not in arrays]
        if missing or len(entries) != len(arrays):
            extra = sorted(set(arrays) - set(entries))
            raise CheckpointError(
                f"checkpoint {path!r} is inconsistent: its structure names entries "
                f"missing from the file {missing[:5]} / the file has unnamed entries {extra[:5]}"
            )
        return arrays, tree_json
    return arrays, None


def _collect_leaf_names(node: dict, out: list) -> None:
    if node["t"] == "leaf":
        out.append(node["name"])
        return
    for c in node.get("c", ()):
        _collect_leaf_names(c, out)


def _describe_array(a) -> str:
    return f"{np.dtype(a.dtype).name}{list(a.shape)}"


def _expected(leaf):
    """(kind, dtype or None, shape) that a `like` leaf asks for."""
    kind = _py_kind(leaf)
    if kind in ("bool", "int", "float", "complex"):
        return kind, None, ()
    leaf = stop_gradient(leaf)
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return "array", np.dtype(leaf.dtype), tuple(leaf.shape)
    raise CheckpointError(
        f"`like` has a leaf of type {type(leaf).__name__}, which is neither an array nor a number"
    )


_PY_KINDS = {"bool": "b", "int": "iu", "float": "f", "complex": "c"}


def _match_leaf(path: tuple, name: str, like_leaf, arrays: dict, file: str, convert: bool = True):
    where = tree_util.keystr(path) or "the root"
    kind, dtype, shape = _expected(like_leaf)
    want = f"{kind} scalar" if dtype is None else f"{dtype.name}{list(shape)}"
    if name not in arrays:
        raise CheckpointMismatchError(
            f"checkpoint {file!r} does not match `like` at {where} (entry {name!r}): "
            f"expected {want}, found no such entry"
        )
    a = arrays[name]
    if dtype is None:
        ok = a.shape == () and a.dtype.kind in _PY_KINDS[kind]
    else:
        ok = a.shape == shape and a.dtype == dtype
    if not ok:
        raise CheckpointMismatchError(
            f"checkpoint {file!r} does not match `like` at {where} (entry {name!r}): "
            f"expected {want}, found {_describe_array(a)}"
        )
    if not convert:
        return None
    if dtype is None:
        return {"bool": bool, "int": int, "float": float, "complex": complex}[kind](a.item())
    if isinstance(like_leaf, np.generic):
        return a[()]
    if is_cupy_array(stop_gradient(like_leaf)):
        return to_device(a, "gpu")
    return a


def load(path: str | os.PathLike, like: Any = None, *, device: str | None = None,
         format: str | None = None) -> Any:
    """Read a checkpoint written by `save` (or any .npz / .safetensors file of arrays).

    Without `like`: the saved tree, rebuilt from the stored structure (dicts, lists, tuples,
    OrderedDicts, None); a file without one (written by another program) gives a flat dict from
    entry name to array. With `like`: a tree of `like`'s structure, after checking structure, shapes
    and dtypes (CheckpointMismatchError names the first entry that differs), all on the host, before
    anything is moved to a device. Arrays are NumPy arrays unless `device='gpu'` or the matching
    `like` leaf is a CuPy array; `device='cpu'` puts everything on the host.
    """
    path = os.fspath(path)
    fmt = _format_of(path, format)
    if device not in (None, "cpu", "gpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; expected 'cpu', 'gpu' or None")
    arrays, tree_json = _read(path, fmt)
    if like is None:
        result = arrays if tree_json is None else _rebuild(tree_json, arrays, path)
    else:
        entries: list = []
        expected = _encode(stop_gradient(like), (), entries)
        if tree_json is not None:
            _compare_in_order(expected, tree_json, entries, arrays, path)
        leaves = [_match_leaf(p, n, leaf, arrays, path) for p, n, leaf in entries]
        if tree_json is None:
            wanted = {n for _, n, _ in entries}
            extra = sorted(set(arrays) - wanted)
            if extra:
                raise CheckpointMismatchError(
                    f"checkpoint {path!r} does not match `like`: the file has entries that `like` "
                    f"lacks, e.g. {extra[:5]}"
                )
        result = tree_util.unflatten(tree_util.structure(like), leaves)
    if device is not None:
        result = to_device(result, device)
    return result


def _compare_in_order(expected: dict, found: dict, entries: list, arrays: dict, file: str) -> None:
    """Walk both structures in flatten order, checking containers and leaves as they come, so the
    error names the first entry that differs."""
    leaf_iter = iter(entries)

    def walk(e: dict, f: dict, path: tuple):
        if e["t"] == "leaf" and f["t"] == "leaf":
            p, name, like_leaf = next(leaf_iter)
            _match_leaf(p, f["name"], like_leaf, arrays, file, convert=False)
            return
        if e["t"] == "leaf" or f["t"] == "leaf":
            where = tree_util.keystr(path) or "the root"
            raise CheckpointMismatchError(
                f"checkpoint {file!r} does not match `like` at {where}: expected {_node_desc(e)}, "
                f"found {_node_desc(f)}"
            )
        _compare(_shallow(e), _shallow(f), path, file)
        for key, ec, fc in zip(_children_keys(e), e["c"], f["c"]):
            walk(ec, fc, path + (key,))

    walk(expected, found, ())


def _shallow(node: dict) -> dict:
    """The node with its children replaced by leaves, so `_compare` checks one level only."""
    out = dict(node)
    if "c" in out:
        out["c"] = [{"t": "leaf"}] * len(out["c"])
    return out
