"""Penalties on parameter trees."""

from __future__ import annotations

from typing import Any

import fnn.numpy as fnp
from fnn import tree

__all__ = ["l2"]


def _is_float_leaf(x: Any) -> bool:
    if isinstance(x, float):
        return True
    dtype = getattr(x, "dtype", None)
    return dtype is not None and dtype.kind in "fc"


def l2(params: Any) -> Any:
    """The sum of squares of every floating-point leaf of a pytree: sum_leaves sum(p**2).

    No factor 0.5 is included: weight decay `lam * l2(params)` has gradient `2 * lam * p`; write
    `0.5 * lam * l2(params)` for the `lam * p` convention. Non-floating leaves (integer step
    counts, None) are skipped. An empty tree gives 0.0.
    """
    total = None
    for leaf in tree.leaves(params):
        if not _is_float_leaf(leaf):
            continue
        term = fnp.sum(leaf * leaf)
        total = term if total is None else total + term
    return 0.0 if total is None else total
