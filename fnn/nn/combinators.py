"""Layers made of layers: Sequential, Residual, Parallel, Concat, and Lambda for plain functions.

Children are named by their `name` or `kind` and position (`conv_0`, `relu_1`, `dense_2`), and
their params and state sit under those names, so a checkpoint or a summary reads like the model.
An input that does not fit a child raises a ShapeError that names the path to it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import attrs
import numpy as np

from fnn import random
from fnn.nn.module import Module, ShapeError, spec_of

__all__ = ["Sequential", "Residual", "Parallel", "Concat", "Lambda", "as_module"]


@attrs.frozen
class Lambda(Module):
    """A function without parameters as a layer: `Lambda(fnp.tanh)`."""

    kind = "lambda"
    fn: Callable = attrs.field(default=None)

    def display_name(self) -> str:
        return self.name or getattr(self.fn, "__name__", "lambda").strip("<>")

    def init_with_output(self, key, spec):
        y = self.fn(np.zeros(spec.shape, spec.dtype))  # the output shape, by running fn once
        return {}, {}, spec_of(y)

    def apply(self, params, state, x, *, key=None, train=False):
        return self.fn(x), state


def as_module(layer: Any) -> Module:
    """A Module as it is; a plain function wrapped in Lambda."""
    if isinstance(layer, Module):
        return layer
    if callable(layer):
        return Lambda(fn=layer)
    raise TypeError(f"expected a layer (fnn.nn.Module) or a function, got {type(layer).__name__}")


def _child_names(layers: Sequence[Module]) -> tuple[str, ...]:
    names = tuple(layer.name or f"{layer.display_name()}_{i}" for i, layer in enumerate(layers))
    if len(set(names)) != len(names):
        raise ValueError(f"two layers share a name: {names}")
    return names


def _within(name: str, exc: ShapeError) -> ShapeError:
    return ShapeError(f"{name}: {exc}")


def _child_key(key: Any, i: int) -> Any:
    return None if key is None else random.fold_in(key, i)


@attrs.frozen
class Sequential(Module):
    """Layers applied one after another. Plain functions are accepted as layers."""

    kind = "sequential"
    layers: tuple = attrs.field(default=(), converter=lambda ls: tuple(as_module(layer) for layer in ls))
    names: tuple = attrs.field(init=False, eq=False, repr=False)  # the children's names, computed once

    def __attrs_post_init__(self):
        object.__setattr__(self, "names", _child_names(self.layers))

    def init_with_output(self, key, spec):
        params, state = {}, {}
        for i, (name, layer) in enumerate(zip(self.names, self.layers)):
            try:
                p, s, spec = layer.init_with_output(random.fold_in(key, i), spec)
            except ShapeError as exc:
                raise _within(name, exc) from None
            if p:
                params[name] = p
            if s:
                state[name] = s
        return params, state, spec

    def apply(self, params, state, x, *, key=None, train=False):
        new_state = {}
        for i, (name, layer) in enumerate(zip(self.names, self.layers)):
            try:
                x, s = layer.apply(params.get(name, {}), state.get(name, {}), x,
                                   key=None if key is None else random.fold_in(key, i), train=train)
            except ShapeError as exc:
                raise _within(name, exc) from None
            if s:
                new_state[name] = s
        return x, new_state

    def summary_rows(self, key, spec, path):
        rows = []
        for i, (name, layer) in enumerate(zip(self.names, self.layers)):
            child_rows, spec = layer.summary_rows(random.fold_in(key, i), spec,
                                                  f"{path}.{name}" if path else name)
            rows.extend(child_rows)
        return rows, spec


@attrs.frozen
class Residual(Module):
    """`body(x) + x`, or `body(x) + shortcut(x)` with a projection (e.g. a strided 1x1 conv)."""

    kind = "residual"
    body: Module = attrs.field(default=None, converter=as_module)
    shortcut: Module | None = attrs.field(default=None)

    def init_with_output(self, key, spec):
        k_body, k_short = random.split(key)
        params, state = {}, {}
        p, s, out = self.body.init_with_output(k_body, spec)
        if p:
            params["body"] = p
        if s:
            state["body"] = s
        short = spec
        if self.shortcut is not None:
            p, s, short = as_module(self.shortcut).init_with_output(k_short, spec)
            if p:
                params["shortcut"] = p
            if s:
                state["shortcut"] = s
        if tuple(short.shape) != tuple(out.shape):
            raise self.shape_error(f"the body's output {out.shape} and the shortcut's {short.shape} "
                                   "differ; give Residual a shortcut projection")
        return params, state, out

    def apply(self, params, state, x, *, key=None, train=False):
        y, s_body = self.body.apply(params.get("body", {}), state.get("body", {}), x,
                                    key=_child_key(key, 0), train=train)
        new_state = {"body": s_body} if s_body else {}
        if self.shortcut is not None:
            x, s_short = as_module(self.shortcut).apply(params.get("shortcut", {}), state.get("shortcut", {}),
                                                        x, key=_child_key(key, 1), train=train)
            if s_short:
                new_state["shortcut"] = s_short
        return y + x, new_state


@attrs.frozen
class Parallel(Module):
    """The same input through several branches; the outputs as a tuple (or `combine(*outputs)`)."""

    kind = "parallel"
    branches: tuple = attrs.field(default=(), converter=lambda bs: tuple(as_module(b) for b in bs))
    combine: Callable | None = attrs.field(default=None)
    names: tuple = attrs.field(init=False, eq=False, repr=False)  # the branches' names, computed once

    def __attrs_post_init__(self):
        object.__setattr__(self, "names", _child_names(self.branches))

    def _combine(self, outputs):
        return tuple(outputs) if self.combine is None else self.combine(*outputs)

    def init_with_output(self, key, spec):
        params, state, outs = {}, {}, []
        for i, (name, branch) in enumerate(zip(self.names, self.branches)):
            try:
                p, s, out = branch.init_with_output(random.fold_in(key, i), spec)
            except ShapeError as exc:
                raise _within(name, exc) from None
            if p:
                params[name] = p
            if s:
                state[name] = s
            outs.append(np.zeros(out.shape, out.dtype))
        combined = self._combine(outs)
        out_spec = tuple(map(spec_of, combined)) if isinstance(combined, tuple) else spec_of(combined)
        return params, state, out_spec

    def apply(self, params, state, x, *, key=None, train=False):
        outs, new_state = [], {}
        for i, (name, branch) in enumerate(zip(self.names, self.branches)):
            try:
                y, s = branch.apply(params.get(name, {}), state.get(name, {}), x,
                                    key=_child_key(key, i), train=train)
            except ShapeError as exc:
                raise _within(name, exc) from None
            outs.append(y)
            if s:
                new_state[name] = s
        return self._combine(outs), new_state


def Concat(branches: Sequence[Any], axis: int = 1, *, name: str | None = None) -> Parallel:  # noqa: N802
    """Branches whose outputs are joined along `axis` (channels, for NCHW): an Inception block."""
    from fnn import numpy as fnp  # noqa: PLC0415

    return Parallel(branches=branches, combine=lambda *ys: fnp.concatenate(ys, axis=axis), name=name)

