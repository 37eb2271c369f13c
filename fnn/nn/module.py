"""The model protocol: a layer is a frozen description with a pure `init` and a pure `apply`.

    params, state = layer.init(key, x)          # x: an example array, or a ShapeDtype spec
    y, state = layer.apply(params, state, x, key=None, train=False)

`params` (trained) and `state` (not trained: BatchNorm's running statistics) are nested dicts that
a person can read; `{}` when a layer has none. Nothing is mutated: `apply` returns the new state.
Shapes are inferred at init from the example input, which may be a `ShapeDtype` so that nothing
large is allocated.

A new layer subclasses `Module` (as an attrs frozen class) and implements `init_with_output`
(returning params, state and the output's ShapeDtype) and `apply`; see `fnn/nn/layers/`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np

from fnn import tree as tree_util

__all__ = ["Module", "ShapeDtype", "ShapeError", "spec_of", "count_params"]


@attrs.frozen
class ShapeDtype:
    """The shape and dtype of an array, standing in for it where only those matter."""

    shape: tuple = attrs.field(converter=tuple)
    dtype: np.dtype = attrs.field(default=np.float32, converter=np.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"ShapeDtype({self.shape}, {self.dtype})"


tree_util.register_leaf(ShapeDtype)  # it stands in for an array: a leaf, as arrays are


class ShapeError(ValueError):
    """An input does not fit a layer. The message names the layer and both shapes."""


def spec_of(x: Any) -> ShapeDtype:
    """The ShapeDtype of an array (or of a ShapeDtype)."""
    if isinstance(x, ShapeDtype):
        return x
    return ShapeDtype(tuple(x.shape), x.dtype)


def count_params(tree: Any) -> int:
    """The number of scalars in a pytree of arrays."""
    from fnn import tree as tree_util  # noqa: PLC0415

    return sum(int(np.prod(leaf.shape)) for leaf in tree_util.leaves(tree) if hasattr(leaf, "shape"))


@attrs.frozen
class Module:
    """Base class of layers. `kind` names a layer inside containers (`dense_0`, `conv_1`, ...)
    unless the layer is given a `name`."""

    kind: ClassVar[str] = "module"
    name: str | None = attrs.field(default=None, kw_only=True)

    def init(self, key: Any, x: Any) -> tuple[dict, dict]:
        """Parameters and state for inputs like `x` (an array or a ShapeDtype)."""
        params, state, _ = self.init_with_output(key, spec_of(x))
        return params, state

    def init_shapes(self, x: Any, key: Any = None) -> tuple[dict, dict]:
        """The shapes of `init`'s parameters and state, as trees of ShapeDtype, without allocating
        them (the initializers answer with shapes; see `initializers.shapes_only`). Counts,
        summaries and checkpoint checks of large models need nothing more."""
        from fnn import random  # noqa: PLC0415
        from fnn.nn.initializers import shapes_only  # noqa: PLC0415

        with shapes_only():
            return self.init(random.key(0) if key is None else key, x)

    def init_with_output(self, key: Any, spec: ShapeDtype) -> tuple[dict, dict, ShapeDtype]:
        """(params, state, output spec) for an input of `spec`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement init_with_output")

    def apply(self, params: dict, state: dict, x: Any, *, key: Any = None,
              train: bool = False) -> tuple[Any, dict]:
        """(output, new state). `key` feeds randomness (dropout) when `train` is True."""
        raise NotImplementedError(f"{type(self).__name__} does not implement apply")

    def output_spec(self, x: Any) -> ShapeDtype:
        """The ShapeDtype of this layer's output for inputs like `x` (no parameters allocated)."""
        from fnn import random  # noqa: PLC0415
        from fnn.nn.initializers import shapes_only  # noqa: PLC0415

        with shapes_only():
            return self.init_with_output(random.key(0), spec_of(x))[2]

    def summary_rows(self, key: Any, spec: ShapeDtype, path: str) -> tuple[list, ShapeDtype]:
        """Rows (path, type, output shape, parameter count, state count) for `fnn.summary`,
        and the output spec. Containers override this to list their children."""
        params, state, out = self.init_with_output(key, spec)
        return [(path, self.type_name(), out.shape, count_params(params), count_params(state))], out

    def type_name(self) -> str:
        """The layer's type as a summary shows it."""
        return type(self).__name__

    def display_name(self) -> str:
        return self.name or self.kind

    def shape_error(self, message: str) -> ShapeError:
        """A ShapeError whose message starts with this layer's type."""
        return ShapeError(f"{type(self).__name__}: {message}")
