"""Make a traced value behave like an ndarray: operators, methods, and NumPy's protocols.

`np.exp(x)` or `np.sum(x)` on a traced `x` reaches `Box.__array_ufunc__` / `__array_function__`,
which dispatch to the fnn.numpy function of the same name, so existing NumPy code can be
differentiated unchanged. A NumPy function fnn has no rule for raises an error naming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fnn.autodiff.tracer import Box, NoGradientError, Primitive, bind2
from fnn.numpy import contractions as C
from fnn.numpy import elementwise as E
from fnn.numpy import helpers as H
from fnn.numpy import indexing as I
from fnn.numpy import reductions as R
from fnn.numpy import shape as S


def _value_compare(np_op):
    def compare(self, other):
        return np_op(self._value if type(self) is Box else self, getattr(other, "_value", other))
    return compare


def _operator(prim: Primitive, reflected: bool = False):
    """`Box.__op__` for primitive `prim`: `self` is traced, so the call binds at once (no scan for
    the newest trace as in `Primitive.__call__`, no bound-method object): about a microsecond less
    per operator, which a Python loop over time steps pays hundreds of times per step."""
    if reflected:
        def method(self, other):
            top = self._trace
            if type(other) is Box and other._trace > top:
                top = other._trace
            return bind2(prim, top, other, self)
    else:
        def method(self, other):
            top = self._trace
            if type(other) is Box and other._trace > top:
                top = other._trace
            return bind2(prim, top, self, other)
    method.__name__ = prim.name
    return method


def _op(fun):
    """The operator method for `fun`: direct binding when it is a primitive."""
    return _operator(fun) if isinstance(fun, Primitive) else fun


def _flip_args(fun):
    if isinstance(fun, Primitive):
        return _operator(fun, reflected=True)
    return lambda self, other: fun(other, self)


def _shape_args(args):
    """`x.reshape(2, 3)` and `x.reshape((2, 3))` both mean the shape (2, 3)."""
    return args[0] if len(args) == 1 else args


def _transpose_method(self, *axes):
    return S.transpose(self, None if not axes else _shape_args(axes))


def _reduction_method(fun):
    def method(self, axis=None, *args, **kwargs):
        return fun(self, axis, *args, **kwargs)
    return method


def _array_error(self, dtype=None, copy=None):
    raise TypeError(
        "fnn: a traced value cannot be turned into a plain NumPy array (np.asarray / np.array) "
        "inside a differentiated function: the gradient would be lost. Use fnn.numpy functions, "
        "or fnn.stop_gradient(x) if no gradient should flow."
    )


_METHODS: dict[str, Any] = {
    # arithmetic
    "__add__": _op(E.add), "__radd__": _flip_args(E.add),
    "__sub__": _op(E.subtract), "__rsub__": _flip_args(E.subtract),
    "__mul__": _op(E.multiply), "__rmul__": _flip_args(E.multiply),
    "__truediv__": _op(E.divide), "__rtruediv__": _flip_args(E.divide),
    "__pow__": _op(E.power), "__rpow__": _flip_args(E.power),
    "__mod__": _op(E.mod), "__rmod__": _flip_args(E.mod),
    "__floordiv__": H.floor_divide, "__rfloordiv__": _flip_args(H.floor_divide),
    "__matmul__": _op(C.matmul), "__rmatmul__": _flip_args(C.matmul),
    "__neg__": E.negative, "__pos__": E.positive, "__abs__": E.absolute,
    # comparisons give plain boolean arrays
    "__lt__": _value_compare(np.less), "__le__": _value_compare(np.less_equal),
    "__gt__": _value_compare(np.greater), "__ge__": _value_compare(np.greater_equal),
    "__eq__": _value_compare(np.equal), "__ne__": _value_compare(np.not_equal),
    # indexing
    "__getitem__": I.index, "__setitem__": I.setitem_error,
    "__len__": lambda self: len(self._value),
    "__iter__": lambda self: (I.getitem(self, i) for i in range(len(self._value))),
    # conversions read the value (no gradient: the caller asked for a plain number)
    "__bool__": lambda self: bool(self._value),
    "__float__": lambda self: float(self._value),
    "__int__": lambda self: int(self._value),
    "__complex__": lambda self: complex(self._value),
    "__array__": _array_error,
    "item": lambda self, *args: np.asarray(self._value).item(*args) if not hasattr(self._value, "item")
    else self._value.item(*args),
    "tolist": lambda self: self._value.tolist(),
    # ndarray methods
    "reshape": lambda self, *shape, order="C": S.reshape(self, _shape_args(shape), order),
    "transpose": _transpose_method,
    "flatten": lambda self, order="C": S.ravel(self, order),
    "ravel": lambda self, order="C": S.ravel(self, order),
    "squeeze": lambda self, axis=None: S.squeeze(self, axis),
    "swapaxes": S.swapaxes,
    "astype": lambda self, dtype, *args, **kwargs: S.astype(self, dtype),
    "copy": lambda self, *args, **kwargs: self,
    "sum": _reduction_method(R.sum), "mean": _reduction_method(R.mean),
    "prod": _reduction_method(R.prod), "max": _reduction_method(R.max), "min": _reduction_method(R.min),
    "var": _reduction_method(R.var), "std": _reduction_method(R.std),
    "cumsum": _reduction_method(R.cumsum), "cumprod": _reduction_method(R.cumprod),
    "argmax": _reduction_method(H.argmax), "argmin": _reduction_method(H.argmin),
    "argsort": lambda self, axis=-1, *args, **kwargs: H.argsort(self, axis, *args, **kwargs),
    "all": _reduction_method(H.all), "any": _reduction_method(H.any),
    "clip": lambda self, min=None, max=None: E.clip(self, min, max),
    "dot": C.dot, "take": S.take, "repeat": S.repeat, "diagonal": S.diagonal, "trace": S.trace,
    "nonzero": lambda self: H.nonzero(self),
    "round": lambda self, decimals=0: H.round(self, decimals),
    "conj": lambda self: self, "conjugate": lambda self: self,
}


def _install_methods() -> None:
    for name, fun in _METHODS.items():
        setattr(Box, name, fun)
    Box.T = property(lambda self: S.transpose(self))
    Box.mT = property(lambda self: S.swapaxes(self, -1, -2))
    Box.at = property(lambda self: I.at(self))
    Box.real = property(lambda self: self)
    Box.__array_ufunc__ = _array_ufunc
    Box.__array_function__ = _array_function


# --- NumPy protocols --------------------------------------------------------------------------------

_UFUNC_REDUCE = {np.add: R.sum, np.multiply: R.prod, np.maximum: R.max, np.minimum: R.min}
_UFUNC_ACCUMULATE = {np.add: R.cumsum, np.multiply: R.cumprod}
_ufuncs: dict = {}
_functions: dict = {}


def register_dispatch(namespace: dict, linalg_namespace: dict) -> None:
    """Map NumPy's functions and ufuncs to the fnn.numpy functions of the same names."""
    for name, fun in namespace.items():
        np_obj = getattr(np, name, None)
        if np_obj is None or name.startswith("_") or not callable(fun):
            continue
        if isinstance(np_obj, np.ufunc):
            _ufuncs[np_obj] = fun
        elif callable(np_obj) and not isinstance(np_obj, type):
            _functions[np_obj] = fun
    for name, fun in linalg_namespace.items():
        np_obj = getattr(np.linalg, name, None)
        if np_obj is not None and callable(fun) and not name.startswith("_"):
            _functions[np_obj] = fun


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    if kwargs.get("out") is not None:
        raise TypeError(
            f"fnn: numpy.{ufunc.__name__}(..., out=...) cannot write a traced value into an array; "
            "arrays are immutable here: use the returned value (x = x + y, not x += y on a NumPy array)"
        )
    if method == "__call__" and ufunc in _ufuncs:
        return _ufuncs[ufunc](*inputs, **kwargs)
    if method == "reduce" and ufunc in _UFUNC_REDUCE:
        return _UFUNC_REDUCE[ufunc](*inputs, **kwargs)
    if method == "accumulate" and ufunc in _UFUNC_ACCUMULATE:
        return _UFUNC_ACCUMULATE[ufunc](*inputs, **kwargs)
    where = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    raise NoGradientError(f"{where} has no gradient rule (VJP) in fnn, and a traced value was passed to it")


def _array_function(self, func, types, args, kwargs):
    fun = _functions.get(func)
    if fun is None:
        module = getattr(func, "__module__", "numpy") or "numpy"
        raise NoGradientError(
            f"{module}.{func.__name__} has no gradient rule (VJP) in fnn, and a traced value was "
            "passed to it. Use a differentiable fnn.numpy function, fnn.stop_gradient, or define a "
            "rule with fnn.primitive and fnn.defvjp."
        )
    return fun(*args, **kwargs)
