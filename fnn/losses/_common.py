"""Checks and reductions shared by the losses.

Every loss validates its inputs up front and names itself, and both shapes, in the error, so a
mistake surfaces where it was made instead of as a broadcasting surprise further on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import fnn.numpy as fnp
from fnn.autodiff.tracer import strip
from fnn.backend import checks_values, get_array_module

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str, loss: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{loss}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def reduce(per_example: Any, reduction: str) -> Any:
    """Apply `reduction` ('mean', 'sum' or 'none') to a differentiable array of losses."""
    if reduction == "mean":
        return fnp.mean(per_example)
    if reduction == "sum":
        return fnp.sum(per_example)
    return per_example


def shape_of(x: Any) -> tuple:
    return tuple(getattr(x, "shape", ()))


def as_array(x: Any, like: Any) -> Any:
    """`x` as an array of the module serving `like` (lists and scalars welcome); traced values and
    arrays pass through unchanged."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return x
    return get_array_module(like).asarray(x)


def check_float(x: Any, loss: str, what: str) -> None:
    if isinstance(strip(x), float):  # Python floats (and NumPy float scalars) are welcome
        return
    dtype = getattr(x, "dtype", None)
    if dtype is None or dtype.kind != "f":
        raise TypeError(f"{loss}: {what} must be a floating-point array, got dtype {dtype}")


def class_axis(ndim: int, axis: int, loss: str, what: str) -> int:
    """`axis` made non-negative; an error naming the loss if `what` has no such axis."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"{loss}: class axis {axis} is out of range for {what} with {ndim} "
                         "dimension(s)")
    return axis % ndim


_UNSIGNED = {n: np.dtype(f"u{n}") for n in (1, 2, 4, 8)}  # the unsigned type of each integer width


def check_int_labels(labels: Any, scores_shape: tuple, axis: int, loss: str, what: str) -> int:
    """Validate integer class ids against `scores_shape` (class axis `axis`); returns the class count.

    The labels' shape must be the scores' shape without the class axis, and every id must lie in
    [0, num_classes).
    """
    expected = scores_shape[:axis] + scores_shape[axis + 1:]
    num_classes = scores_shape[axis]
    if shape_of(labels) != expected:
        raise ValueError(
            f"{loss}: integer labels of shape {shape_of(labels)} do not match {what} of shape "
            f"{scores_shape}; expected labels of shape {expected} (the {what}' shape without "
            f"the class axis {axis})")
    values = strip(labels)
    if values.size and checks_values(values):  # (on the GPU only when asked: a synchronisation)
        # One reduction, not a min and a max: seen as unsigned, a negative id is larger than
        # any class count, so the largest id alone says whether all are in range.
        dtype = values.dtype
        unsigned = values if dtype.kind == "u" else values.view(_UNSIGNED[dtype.itemsize])
        if int(unsigned.max()) >= num_classes:
            lo, hi = int(values.min()), int(values.max())
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{loss}: label {bad} is out of range for {num_classes} classes (valid ids are "
                f"0..{num_classes - 1}); labels shape {shape_of(labels)}, {what} shape "
                f"{scores_shape}")
    return num_classes


def is_integer_labels(labels: Any) -> bool:
    dtype = getattr(labels, "dtype", None)
    return dtype is not None and dtype.kind in "iu"


def onehot(labels: Any, num_classes: int, axis: int, dtype: Any) -> Any:
    """A plain one-hot array (no gradient) with the classes along `axis` of the result."""
    labels = strip(labels)
    xp = get_array_module(labels)
    ndim = labels.ndim + 1
    shape = [1] * ndim
    shape[axis] = num_classes
    ids = xp.arange(num_classes).reshape(shape)
    return (xp.expand_dims(labels, axis) == ids).astype(dtype)


def check_same_shape(a: Any, b: Any, loss: str, a_name: str, b_name: str,
                     allow_scalar_b: bool = True) -> None:
    """Refuse silent broadcasting between a prediction and its target (a (N, 1) against (N,)
    mistake would otherwise give an (N, N) loss). A scalar `b` is allowed when `allow_scalar_b`."""
    sa, sb = shape_of(a), shape_of(b)
    if sa != sb and not (allow_scalar_b and sb == ()):
        raise ValueError(f"{loss}: {a_name} of shape {sa} and {b_name} of shape {sb} must have the "
                         "same shape")
