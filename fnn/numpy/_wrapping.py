"""How NumPy functions enter fnn.numpy: as primitives, as gradient-free helpers, or guarded.

- `prim(fun, name)`: a differentiable primitive; its rules are registered in `vjps.py`.
- `nondiff(np_fun)`: a function whose output carries no gradient (argmax, comparisons, zeros...):
  traced arguments are read through, and the result is a plain array.
- `guarded(np_fun)`: a NumPy function fnn has no rule for; it runs on plain arrays and raises a
  `NoGradientError` naming itself when handed a traced value.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from fnn.autodiff.tracer import Box, NoGradientError, Primitive, primitive, strip


def prim(fun: Callable, name: str | None = None, **options: Any) -> Primitive:
    """A primitive named `fnn.numpy.<name>` (the name appears in error messages)."""
    return primitive(fun, name=f"fnn.numpy.{name or fun.__name__}", **options)


def has_box(obj: Any) -> bool:
    """True if a traced value appears in `obj` or in a list, tuple or dict inside it."""
    if type(obj) is Box:
        return True
    if isinstance(obj, (list, tuple)):
        return any(has_box(o) for o in obj)
    if isinstance(obj, dict):
        return any(has_box(o) for o in obj.values())
    return False


def strip_all(obj: Any) -> Any:
    """`obj` with every traced value (also inside lists, tuples and dicts) replaced by its array."""
    if type(obj) is Box:
        return strip(obj)
    if isinstance(obj, list):
        return [strip_all(o) for o in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(strip_all(o) for o in obj)
    if isinstance(obj, dict):
        return {k: strip_all(v) for k, v in obj.items()}
    return obj


def nondiff(np_fun: Callable, name: str | None = None) -> Callable:
    """`np_fun` made to accept traced values; its result carries no gradient."""

    @functools.wraps(np_fun)
    def no_gradient(*args, **kwargs):
        if has_box(args) or has_box(kwargs):
            args, kwargs = strip_all(args), strip_all(kwargs)
        return np_fun(*args, **kwargs)

    no_gradient.__name__ = name or getattr(np_fun, "__name__", "function")
    return no_gradient


def guarded(np_fun: Callable, qualname: str) -> Callable:
    """`np_fun` for plain arrays; a clear NoGradientError for traced ones."""

    @functools.wraps(np_fun)
    def no_rule(*args, **kwargs):
        if has_box(args) or has_box(kwargs):
            raise NoGradientError(
                f"{qualname} has no gradient rule (VJP) in fnn, and a traced value was passed to it. "
                "Use a differentiable fnn.numpy function instead, wrap the argument in "
                "fnn.stop_gradient if no gradient should flow, or define one with fnn.primitive "
                "and fnn.defvjp."
            )
        return np_fun(*args, **kwargs)

    return no_rule
