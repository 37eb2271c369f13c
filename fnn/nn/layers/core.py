"""Basic layers: Dense, Flatten, Dropout, Embedding, and activations as layers."""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs
import numpy as np

from fnn import numpy as fnp
from fnn import random
from fnn.nn import initializers as init
from fnn.nn.functional import activations
from fnn.nn.functional.dense import dense_unchecked
from fnn.nn.functional.dropout import dropout
from fnn.nn.functional.embedding import embedding
from fnn.nn.module import Module, ShapeDtype

__all__ = ["Dense", "Flatten", "Dropout", "Embedding", "Activation", "ReLU", "GELU", "Sigmoid",
           "Tanh", "SiLU", "LeakyReLU", "ELU", "Softmax", "LogSoftmax"]


@attrs.frozen
class Dense(Module):
    """y = x @ w + b over the last axis; w has shape (in, out). PyTorch's default init."""

    kind = "dense"
    features: int = attrs.field(default=None)
    use_bias: bool = attrs.field(default=True, kw_only=True)
    w_init: Callable | None = attrs.field(default=None, kw_only=True)
    b_init: Callable | None = attrs.field(default=None, kw_only=True)

    def init_with_output(self, key, spec):
        if len(spec.shape) < 1:
            raise self.shape_error(f"needs inputs with a feature axis, got shape {spec.shape}")
        fan_in = spec.shape[-1]
        k_w, k_b = random.split(key)
        w_init = self.w_init or init.torch_default_uniform(fan_in)
        params = {"w": w_init(k_w, (fan_in, self.features), spec.dtype)}
        if self.use_bias:
            b_init = self.b_init or init.torch_default_uniform(fan_in)
            params["b"] = b_init(k_b, (self.features,), spec.dtype)
        return params, {}, ShapeDtype(spec.shape[:-1] + (self.features,), spec.dtype)

    def apply(self, params, state, x, *, key=None, train=False):
        w = params["w"]
        b = params.get("b")
        x_shape, w_shape = x.shape, w.shape
        if len(w_shape) != 2 or x_shape[-1:] != w_shape[:1] or (b is not None and b.shape != w_shape[1:]):
            raise self.shape_error(self._mismatch(x_shape, w_shape, b))
        return dense_unchecked(x, w, b), state

    @staticmethod
    def _mismatch(x_shape: tuple, w_shape: tuple, b: Any) -> str:
        if len(w_shape) != 2:
            return f"the weight must be 2-D (in, out), got weight shape {w_shape} (input shape {x_shape})"
        if x_shape[-1:] != w_shape[:1]:
            return (f"input has {x_shape[-1] if x_shape else 0} features but the weight expects "
                    f"{w_shape[0]} (input shape {x_shape}, weight shape {w_shape})")
        return f"bias shape {b.shape} does not match the weight's {w_shape[1]} outputs (weight shape {w_shape})"


@attrs.frozen
class Flatten(Module):
    """Flatten every axis from `start_axis` on (the batch axis is kept)."""

    kind = "flatten"
    start_axis: int = attrs.field(default=1)

    def _shape(self, shape):
        start = self.start_axis % max(len(shape), 1)
        return tuple(shape[:start]) + (math.prod(shape[start:]),)

    def init_with_output(self, key, spec):
        return {}, {}, ShapeDtype(self._shape(spec.shape), spec.dtype)

    def apply(self, params, state, x, *, key=None, train=False):
        return fnp.reshape(x, self._shape(x.shape)), state


@attrs.frozen
class Dropout(Module):
    """Zero each element with probability `rate` while training (scaling the rest by 1/(1-rate));
    the identity in evaluation."""

    kind = "dropout"
    rate: float = attrs.field(default=0.5)

    def __attrs_post_init__(self):
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"Dropout: rate is the drop probability, in [0, 1]; got {self.rate}")

    def init_with_output(self, key, spec):
        return {}, {}, spec

    def apply(self, params, state, x, *, key=None, train=False):
        if not train or self.rate == 0.0:
            return x, state
        if key is None:
            raise ValueError("Dropout: apply(..., train=True) needs a random key: pass key=fnn.random.key(...)")
        return dropout(x, self.rate, key), state


@attrs.frozen
class Embedding(Module):
    """A lookup table: integer ids of any shape -> vectors of `features`. N(0, 1) init (PyTorch's)."""

    kind = "embedding"
    num_embeddings: int = attrs.field(default=None)
    features: int = attrs.field(default=None)
    table_init: Callable | None = attrs.field(default=None, kw_only=True)
    dtype: Any = attrs.field(default=np.float32, kw_only=True)

    def init_with_output(self, key, spec):
        if np.dtype(spec.dtype).kind not in "iu":
            raise self.shape_error(f"expects integer ids, got dtype {spec.dtype}")
        table_init = self.table_init or init.normal(1.0)
        params = {"table": table_init(key, (self.num_embeddings, self.features), self.dtype)}
        return params, {}, ShapeDtype(spec.shape + (self.features,), self.dtype)

    def apply(self, params, state, ids, *, key=None, train=False):
        return embedding(ids, params["table"]), state


@attrs.frozen
class Activation(Module):
    """An elementwise function as a layer (shape unchanged)."""

    kind = "activation"
    fn: Callable = attrs.field(default=None)
    label: str | None = attrs.field(default=None, kw_only=True)
    stem: str | None = attrs.field(default=None, kw_only=True)

    def display_name(self) -> str:
        return self.name or self.stem or getattr(self.fn, "__name__", self.kind)

    def type_name(self) -> str:
        return self.label or type(self).__name__

    def init_with_output(self, key, spec):
        return {}, {}, spec

    def apply(self, params, state, x, *, key=None, train=False):
        return self.fn(x), state


def _activation(fn_name: str, label: str, doc: str):
    def make(**kwargs):
        fn = getattr(activations, fn_name)
        options = {k: v for k, v in kwargs.items() if k != "name"}
        bound = (lambda x: fn(x, **options)) if options else fn
        return Activation(fn=bound, name=kwargs.get("name"), label=label, stem=fn_name)

    make.__name__ = make.__qualname__ = label
    make.__doc__ = doc
    return make


ReLU = _activation("relu", "ReLU", "The ReLU layer.")
GELU = _activation("gelu", "GELU", "The GELU layer (exact unless approximate='tanh').")
Sigmoid = _activation("sigmoid", "Sigmoid", "The logistic sigmoid layer.")
Tanh = _activation("tanh", "Tanh", "The tanh layer.")
SiLU = _activation("silu", "SiLU", "The SiLU (swish) layer.")
LeakyReLU = _activation("leaky_relu", "LeakyReLU", "The leaky ReLU layer (negative_slope=0.01).")
ELU = _activation("elu", "ELU", "The ELU layer (alpha=1.0).")
Softmax = _activation("softmax", "Softmax", "Softmax over `axis` (default -1).")
LogSoftmax = _activation("log_softmax", "LogSoftmax", "Log-softmax over `axis` (default -1).")
