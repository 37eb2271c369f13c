"""Argument handling shared by the convolution and pooling primitives."""

from __future__ import annotations

from typing import Any


def ints(v: Any, n: int, what: str, fn: str) -> tuple:
    """`v` (an int or a sequence of n ints) as a tuple of n ints; a ValueError naming `fn` otherwise."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * n
    try:
        t = tuple(int(e) for e in v)
    except TypeError:
        t = ()
    if len(t) != n:
        raise ValueError(f"{fn}: {what} must be an int or a tuple of {n} ints, got {v!r}")
    return t
