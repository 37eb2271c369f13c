"""The dense (fully connected) layer as one primitive: y = x @ w + b, weights laid out (in, out).

The rules have three forms with the same math: NumPy's operators when the arrays are plain
NumPy ones (first-order gradients on the CPU, the hot path: not even a function call on top);
`fnn.backend.matmul` when nothing is traced but the arrays may be CuPy's; and fnn.numpy calls
when an enclosing transform differentiates the rule itself (grad of grad).
"""

from __future__ import annotations

import math

import numpy as np

import fnn.numpy as fnp
from fnn.autodiff.tracer import any_traced, defvjp, primitive
from fnn.backend import matmul

__all__ = ["dense"]


def _shape(a):
    return tuple(getattr(a, "shape", ()))


def _dense_fun(x, w, b):
    y = np.matmul(x, w) if type(x) is np.ndarray else matmul(x, w)
    if b is not None:
        y += b
    return y


_dense = primitive(_dense_fun, name="fnn.nn.functional.dense")

#: The primitive without `dense`'s argument checks, for callers that have made them (the Dense
#: layer checks its input against its weights on every call already).
dense_unchecked = _dense


def _x_rule(g, ans, x, w, b):
    if type(g) is np.ndarray and type(w) is np.ndarray:
        return g @ w.T
    if not any_traced(g, w):
        return matmul(g, w.T)
    return fnp.matmul(g, fnp.transpose(w))


def _w_rule(g, ans, x, w, b):
    if type(g) is np.ndarray and type(x) is np.ndarray and x.ndim == 2:
        return x.T @ g  # a transposed operand is a BLAS flag, not a copy
    if not any_traced(g, x):
        if x.ndim == 2:
            return matmul(x.T, g)  # a transposed operand is a BLAS flag, not a copy
        rows = math.prod(x.shape[:-1])  # (not -1: reshape(-1, 0) of an empty array is ambiguous)
        return matmul(x.reshape(rows, x.shape[-1]).T, g.reshape(rows, g.shape[-1]))
    x_shape, n_out = _shape(x), _shape(g)[-1]
    rows = math.prod(x_shape[:-1])
    return fnp.matmul(fnp.transpose(fnp.reshape(x, (rows, x_shape[-1]))), fnp.reshape(g, (rows, n_out)))


def _b_rule(g, ans, x, w, b):
    if type(g) is np.ndarray and g.ndim == 2:
        return np.add.reduce(g, axis=0)  # (g.sum would add a Python-level wrapper)
    if not any_traced(g):
        g2 = g if g.ndim == 2 else g.reshape(math.prod(g.shape[:-1]), g.shape[-1])
        return np.add.reduce(g2, axis=0) if type(g2) is np.ndarray else g2.sum(axis=0)
    g_shape = _shape(g)
    return fnp.sum(fnp.reshape(g, (math.prod(g_shape[:-1]), g_shape[-1])), axis=0)


defvjp(_dense, _x_rule, _w_rule, _b_rule, reads=[(1,), (0,), ()], fresh=True)  # g @ w.T: new


def dense(x, w, b=None):
    """x @ w + b for x of shape (..., in), w of shape (in, out) and b of shape (out,) or None.

    One primitive with hand-written rules: the tape keeps w for x's cotangent (g @ w.T) and x for
    w's (x reshaped to 2-D, transposed, @ g); b's cotangent (g summed over the leading axes) needs
    neither.
    """
    xs, ws = getattr(x, "shape", ()), getattr(w, "shape", ())
    if len(ws) != 2:
        raise ValueError(f"dense: the weight must be 2-D (in, out), got w shape {ws} (x shape {xs})")
    if len(xs) < 1:
        raise ValueError(f"dense: the input must have a feature axis, got x shape {xs} (w shape {ws})")
    if xs[-1] != ws[0]:
        raise ValueError(f"dense: input has {xs[-1]} features but the weight expects {ws[0]} "
                         f"(x shape {xs}, w shape {ws})")
    if b is not None and _shape(b) != (ws[1],):
        raise ValueError(f"dense: the bias must have shape ({ws[1]},) to match the weight's "
                         f"{ws[1]} outputs, got b shape {_shape(b)} (w shape {ws})")
    return _dense(x, w, b)
