"""Products and contractions: dot, matmul, tensordot, einsum as primitives; outer, inner, vdot composed.

All are BLAS-backed in NumPy; their rules (in `vjps.py`) are contractions of the same kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fnn.autodiff.tracer import Box, NoGradientError
from fnn.numpy._wrapping import prim
from fnn.numpy.elementwise import multiply
from fnn.numpy.reductions import sum as sum_
from fnn.numpy.shape import ndim, ravel, reshape, shape


def _tensordot(a, b, axes=2):
    return np.tensordot(a, b, axes)


def _einsum(subscripts, *operands, optimize=False):
    return np.einsum(subscripts, *operands, optimize=optimize)


dot = prim(np.dot)
matmul = prim(np.matmul)
tensordot = prim(_tensordot, name="tensordot")
_einsum_p = prim(_einsum, name="einsum")


def normalize_tensordot_axes(axes: Any, a_ndim: int, b_ndim: int) -> tuple[list[int], list[int]]:
    """tensordot's `axes` argument as two lists of non-negative axes of a and b."""
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        return list(range(a_ndim - n, a_ndim)), list(range(n))
    a_axes, b_axes = axes
    a_axes = [a_axes] if isinstance(a_axes, (int, np.integer)) else list(a_axes)
    b_axes = [b_axes] if isinstance(b_axes, (int, np.integer)) else list(b_axes)
    return [int(x) % a_ndim for x in a_axes], [int(x) % b_ndim for x in b_axes]


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def explicit_einsum(subscripts: str, shapes: list[tuple]) -> tuple[list[str], str]:
    """Input and output subscripts with '...' spelled out as letters and the output made explicit."""
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        lhs, out = subscripts.split("->")
    else:
        lhs, out = subscripts, None
    inputs = lhs.split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"einsum: {len(inputs)} operand subscripts for {len(shapes)} operands")
    used = set(subscripts) - set(".,->")
    free = [c for c in _LETTERS if c not in used]
    n_ell = 0
    for spec, s in zip(inputs, shapes):
        if "..." in spec:
            n_ell = max(n_ell, len(s) - (len(spec) - 3))
    ell = "".join(free[:n_ell])
    expanded = []
    for spec, s in zip(inputs, shapes):
        if "..." in spec:
            k = len(s) - (len(spec) - 3)
            spec = spec.replace("...", ell[n_ell - k:] if k else "")
        expanded.append(spec)
    if out is None:
        counts: dict[str, int] = {}
        for spec in expanded:
            for c in spec:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    return expanded, out


def einsum(subscripts: str, *operands: Any, optimize: Any = False) -> Any:
    """Einstein summation (subscript form). Differentiable unless an operand repeats a subscript."""
    if any(type(op) is Box for op in operands):
        inputs, _ = explicit_einsum(subscripts, [shape(op) for op in operands])
        for spec, op in zip(inputs, operands):
            if type(op) is Box and len(set(spec)) != len(spec):
                raise NoGradientError(
                    f"fnn.numpy.einsum: operand subscripts {spec!r} repeat an index (a diagonal); "
                    "this has no gradient rule. Use fnp.diagonal or fnp.trace first."
                )
    return _einsum_p(subscripts, *operands, optimize=optimize)


def outer(a: Any, b: Any) -> Any:
    """Outer product of two vectors (inputs are flattened)."""
    return multiply(reshape(a, (-1, 1)), ravel(b))


def inner(a: Any, b: Any) -> Any:
    """Inner product over the last axes."""
    if ndim(a) == 0 or ndim(b) == 0:
        return multiply(a, b)
    return tensordot(a, b, ([-1], [-1]))


def vdot(a: Any, b: Any) -> Any:
    """Dot product of the flattened inputs."""
    return sum_(multiply(ravel(a), ravel(b)))
