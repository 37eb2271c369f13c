"""A NumPy-backed stand-in for CuPy, for checking fnn's CuPy code paths on a machine without a GPU.

It keeps CuPy's rules that matter for a library that "follows the arrays": its `ndarray` is not a
NumPy array, mixing it with a NumPy array in an operation raises TypeError, NumPy cannot convert it
implicitly (`np.asarray` raises; `.get()` is the way back), reductions return 0-d arrays rather than
scalars, and every read of a value on the host (`float()`, `bool()`, `.item()`, `.get()`) counts as
a synchronisation, refused inside `cupyx.allow_synchronize(False)`. It has no kernels
(ElementwiseKernel, RawKernel), so code that offers them must fall back to array operations.

The real thing is the arbiter: the parity tests run on a GPU with CuPy where one is lent.
Used by `tests/backends.py` when FNN_FAKE_CUPY=1 puts this folder first on sys.path.
"""

from __future__ import annotations

import contextlib
import types

import numpy as _np

FAKE = True
__version__ = "0.0-fake"


class _SyncState:
    allowed = True
    count = 0


def _synchronize(what: str) -> None:
    _SyncState.count += 1
    if not _SyncState.allowed:
        import cupyx  # noqa: PLC0415

        raise cupyx.DeviceSynchronized(f"device synchronisation by {what} while disallowed")


def _strict(x):
    """The NumPy value of an argument, refusing NumPy arrays as CuPy does."""
    if type(x) is ndarray:
        return x._a
    if isinstance(x, _np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}: a NumPy array mixed with (fake) CuPy arrays")
    if isinstance(x, (list, tuple)):
        return type(x)(_strict(v) for v in x)
    return x


def _lenient(x):
    if type(x) is ndarray:
        return x._a
    if isinstance(x, (list, tuple)):
        return type(x)(_lenient(v) for v in x)
    return x


def _wrap(x):
    if isinstance(x, _np.ndarray):
        out = object.__new__(ndarray)
        out._a = x
        return out
    if isinstance(x, _np.generic) and not isinstance(x, _np.dtype):
        return _wrap(_np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


class _Flags:
    """CuPy's ndarray.flags: contiguity and ownership only (no `writeable`)."""

    __slots__ = ("c_contiguous", "f_contiguous", "owndata")

    def __init__(self, flags):
        self.c_contiguous, self.f_contiguous, self.owndata = flags.c_contiguous, flags.f_contiguous, flags.owndata

    def __getitem__(self, name):
        return getattr(self, {"C_CONTIGUOUS": "c_contiguous", "F_CONTIGUOUS": "f_contiguous",
                              "OWNDATA": "owndata"}.get(name, name))


class ndarray:
    """A device array in name: a NumPy array that refuses to mix with NumPy arrays."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100.0

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = _np.empty(shape, dtype=dtype, order=order)

    # NumPy protocols -------------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if "where" in kwargs:
            raise TypeError("Wrong arguments {'where': ...}: CuPy's ufuncs take no where=")
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_strict(o) for o in out)
        result = getattr(ufunc, method)(*(_strict(i) for i in inputs), **kwargs)
        if out is not None and len(out) == 1:
            return out[0]
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        args = _strict(args)
        kwargs = {k: _strict(v) for k, v in kwargs.items()}
        return _wrap(func(*args, **kwargs))

    # attributes and methods ------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a.flags))
    T = property(lambda self: _wrap(self._a.T))
    mT = property(lambda self: _wrap(_np.swapaxes(self._a, -1, -2)))
    real = property(lambda self: _wrap(self._a.real))
    imag = property(lambda self: _wrap(self._a.imag))
    base = property(lambda self: None if self._a.base is None else _wrap(self._a.base))
    device = property(lambda self: cuda.Device(0))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(self._a, name)
        if not callable(value):
            return _wrap(value)

        def method(*args, **kwargs):
            return _wrap(value(*_strict(args), **{k: _strict(v) for k, v in kwargs.items()}))

        return method

    def get(self, stream=None, order="C", out=None):
        _synchronize("ndarray.get")
        return self._a.copy()

    def item(self, *args):
        _synchronize("ndarray.item")
        return self._a.item(*args)

    def tolist(self):
        _synchronize("ndarray.tolist")
        return self._a.tolist()

    def set(self, arr, stream=None):
        self._a[...] = arr

    def copy(self, order="C"):
        return _wrap(self._a.copy(order=order))

    def __float__(self):
        _synchronize("float()")
        return float(self._a)

    def __int__(self):
        _synchronize("int()")
        return int(self._a)

    def __bool__(self):
        _synchronize("bool()")
        return bool(self._a)

    def __index__(self):
        _synchronize("operator.index")
        return self._a.__index__()

    def __complex__(self):
        _synchronize("complex()")
        return complex(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for row in self._a:
            yield _wrap(row)

    def __getitem__(self, index):
        return _wrap(self._a[_lenient(index)])

    def __setitem__(self, index, value):
        self._a[_lenient(index)] = _lenient(value)

    def __repr__(self):
        return "fake_cupy." + repr(self._a)

    def __str__(self):
        return str(self._a)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return (_wrap, (self._a,))

    def __hash__(self):
        raise TypeError("unhashable type: 'cupy.ndarray'")

    __cuda_array_interface__ = property(lambda self: {"shape": self.shape, "typestr": self.dtype.str,
                                                      "data": (0, False), "version": 3})


def _defer(self, other) -> bool:
    """CuPy hands a binary operator to the other operand when its __array_priority__ is higher."""
    return type(other) is not ndarray and getattr(other, "__array_priority__", 0) > self.__array_priority__


def _binary(op):
    def forward(self, other):
        if _defer(self, other):
            return NotImplemented
        return getattr(_np, op)(self, other)

    def backward(self, other):
        if _defer(self, other):
            return NotImplemented
        return getattr(_np, op)(other, self)

    def inplace(self, other):
        getattr(_np, op)(self._a, _strict(other), out=self._a)
        return self

    return forward, backward, inplace


for _name, _ufunc in [("add", "add"), ("sub", "subtract"), ("mul", "multiply"),
                      ("truediv", "true_divide"), ("floordiv", "floor_divide"), ("mod", "remainder"),
                      ("pow", "power"), ("matmul", "matmul"), ("and", "bitwise_and"),
                      ("or", "bitwise_or"), ("xor", "bitwise_xor"), ("lshift", "left_shift"),
                      ("rshift", "right_shift")]:
    _f, _b, _i = _binary(_ufunc)
    setattr(ndarray, f"__{_name}__", _f)
    setattr(ndarray, f"__r{_name}__", _b)
    if _name != "matmul":
        setattr(ndarray, f"__i{_name}__", _i)

for _name, _ufunc in [("lt", "less"), ("le", "less_equal"), ("gt", "greater"),
                      ("ge", "greater_equal"), ("eq", "equal"), ("ne", "not_equal")]:
    setattr(ndarray, f"__{_name}__", _binary(_ufunc)[0])

for _name, _ufunc in [("neg", "negative"), ("pos", "positive"), ("abs", "absolute"),
                      ("invert", "invert")]:
    setattr(ndarray, f"__{_name}__", (lambda u: lambda self: getattr(_np, u)(self))(_ufunc))


# module functions ------------------------------------------------------------------------------

def asarray(a, dtype=None, order=None, *, blocking=False):
    if type(a) is ndarray:
        return a if dtype is None or _np.dtype(dtype) == a.dtype else a.astype(dtype)
    return _wrap(_np.array(_lenient(a), dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", ndmin=0, *, blocking=False):
    return _wrap(_np.array(_lenient(obj), dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if type(a) is ndarray:
        return a.get()
    return _np.asarray(a)


def get_array_module(*args):
    return __import__(__name__) if any(type(a) is ndarray for a in args) else _np


def fuse(*args, **kwargs):
    if args and callable(args[0]) and len(args) == 1 and not kwargs:
        return args[0]
    return lambda f: f


def __getattr__(name):
    value = getattr(_np, name)
    if isinstance(value, (_np.ufunc, type, _np.dtype)) or not callable(value):
        return value

    def function(*args, **kwargs):
        return _wrap(value(*_strict(args), **{k: _strict(v) for k, v in kwargs.items()}))

    function.__name__ = name
    return function


class _Stream:
    def synchronize(self):
        _synchronize("Stream.synchronize")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Device:
    def __init__(self, index=0):
        self.id = index

    def synchronize(self):
        _synchronize("Device.synchronize")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


cuda = types.SimpleNamespace(
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, getDeviceProperties=lambda i: {"name": b"fake"}),
    Device=_Device,
    Stream=_Stream,
    get_current_stream=lambda: _Stream(),
    Event=None,
)


class _RandomState:
    def __init__(self, seed=None):
        self._rs = _np.random.RandomState(seed)

    def __getattr__(self, name):
        value = getattr(self._rs, name)
        return lambda *a, **k: _wrap(_np.asarray(value(*_strict(a), **k)))


random = types.SimpleNamespace(
    RandomState=_RandomState,
    default_rng=lambda seed=None: _Generator(seed),
)


class _Generator:
    def __init__(self, seed=None):
        self._g = _np.random.default_rng(seed)

    def __getattr__(self, name):
        value = getattr(self._g, name)
        return lambda *a, **k: _wrap(_np.asarray(value(*_strict(a), **k)))


@contextlib.contextmanager
def _unused():  # pragma: no cover
    yield


# cupy.random's Generator API (CuPy >= 9): `Generator(bit_generator)` over a cuRAND device
# generator. Only the methods of the real `cupy.random.Generator` are offered (no permutation,
# choice or shuffle), with its conventions: results are always arrays (0-d for size=None),
# `integers` converts its bounds with int(), `standard_normal` takes float32/float64 only.

class _Philox4x3210:
    """Like cupy.random.Philox4x3210(seed=None, *, size=-1): the seed goes through
    numpy.random.SeedSequence and only 32 bits of it reach cuRAND, as in CuPy."""

    def __init__(self, seed=None, *, size=-1):
        if type(seed) is ndarray:
            seed = seed.get()
        seq = seed if isinstance(seed, _np.random.SeedSequence) else _np.random.SeedSequence(seed)
        self._seed = int(seq.generate_state(1, _np.uint32)[0])
        self._numpy = _np.random.Generator(_np.random.Philox(self._seed))


class _DeviceGenerator:
    """Like cupy.random.Generator (the methods fnn may use, with CuPy's signatures)."""

    def __init__(self, bit_generator):
        self.bit_generator = bit_generator
        self._g = bit_generator._numpy

    def random(self, size=None, dtype=_np.float64, out=None):
        draw = _np.float64 if _np.dtype(dtype).char == "d" else _np.float32
        return _wrap(_np.asarray(self._g.random(size, dtype=draw)).astype(dtype, copy=False))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=_np.float64):
        low, high = _strict(low), _strict(high)
        if size is None:
            size = _np.broadcast(low, high).shape
        u = self.random(size, dtype)._a
        return _wrap(_np.asarray(low + (high - low) * u).astype(dtype, copy=False))

    def standard_normal(self, size=None, dtype=_np.float64, out=None):
        dt = _np.dtype(dtype)
        if dt.char not in ("f", "d"):
            raise TypeError(f"Unsupported dtype {dt.name} for standard_normal")
        return _wrap(_np.asarray(self._g.standard_normal(size, dtype=dt)))

    def standard_exponential(self, size=None, dtype=_np.float64, method="inv", out=None):
        return _wrap(_np.asarray(self._g.standard_exponential(size)).astype(dtype, copy=False))

    def integers(self, low, high=None, size=None, dtype=_np.int64, endpoint=False):
        lo, hi1 = (0, int(low)) if high is None else (int(low), int(high))
        if not endpoint:
            hi1 -= 1
        if lo > hi1:
            raise ValueError("low >= high")
        info = _np.iinfo(dtype)
        if lo < info.min:
            raise ValueError(f"low is out of bounds for {_np.dtype(dtype).name}")
        if hi1 > info.max:
            raise ValueError(f"high is out of bounds for {_np.dtype(dtype).name}")
        return _wrap(_np.asarray(self._g.integers(lo, hi1, size=size, dtype=dtype, endpoint=True)))


random.Generator = _DeviceGenerator
random.Philox4x3210 = _Philox4x3210
