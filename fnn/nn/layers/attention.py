"""Attention layers: MultiHeadAttention and TransformerEncoderLayer (PyTorch's defaults)."""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs

from fnn import random
from fnn.nn import initializers as init
from fnn.nn.functional import activations as A
from fnn.nn.functional.attention import causal_mask, multi_head_attention
from fnn.nn.functional.dense import dense
from fnn.nn.functional.dropout import dropout
from fnn.nn.functional.normalization import layer_norm
from fnn.nn.module import Module

__all__ = ["MultiHeadAttention", "TransformerEncoderLayer"]


def _split_inputs(x: Any) -> tuple[Any, Any, Any]:
    """`x` (self-attention), `(queries, keys_values)` or `(queries, keys_values, mask)`."""
    if isinstance(x, tuple):
        if len(x) == 2:
            return x[0], x[1], None
        if len(x) == 3:
            return x
        raise TypeError("attention input: x, (x_q, x_kv) or (x_q, x_kv, mask)")
    return x, x, None


@attrs.frozen
class MultiHeadAttention(Module):
    """Multi-head scaled dot-product attention over (N, L, d_model) inputs.

    The input is `x` (self-attention), `(x_q, x_kv)` or `(x_q, x_kv, mask)` with a boolean mask
    that is True where attention is allowed. `causal=True` adds a causal mask. Projections are
    (d_model, d_model) in the dense layout: Xavier-uniform in-projections and zero biases, as
    PyTorch's nn.MultiheadAttention.
    """

    kind = "attention"
    num_heads: int = attrs.field(default=1)
    causal: bool = attrs.field(default=False, kw_only=True)
    use_bias: bool = attrs.field(default=True, kw_only=True)

    def init_with_output(self, key, spec):
        d = spec.shape[-1]
        if d % self.num_heads:
            raise self.shape_error(f"d_model {d} (input shape {spec.shape}) is not divisible by "
                                   f"num_heads {self.num_heads}")
        k = random.split(key, 4)
        # PyTorch draws the packed (3d, d) in-projection with Xavier: fans d and 3d
        limit = math.sqrt(6.0 / (d + 3 * d))

        xavier = init.uniform(limit, low=-limit)

        params = {"wq": xavier(k[0], (d, d), spec.dtype), "wk": xavier(k[1], (d, d), spec.dtype),
                  "wv": xavier(k[2], (d, d), spec.dtype),
                  "wo": init.torch_default_uniform(d)(k[3], (d, d), spec.dtype)}
        if self.use_bias:
            for name in ("bq", "bk", "bv", "bo"):
                params[name] = init.zeros(None, (d,), spec.dtype)
        return params, {}, spec

    def apply(self, params, state, x, *, key=None, train=False):
        x_q, x_kv, mask = _split_inputs(x)
        d = params["wq"].shape[0]
        if x_q.shape[-1] != d or x_kv.shape[-1] != d:
            raise self.shape_error(f"inputs of shapes {tuple(x_q.shape)} and {tuple(x_kv.shape)} do not "
                                   f"fit d_model {d}")
        if self.causal:
            causal = causal_mask(x_q.shape[-2], x_kv.shape[-2])
            mask = causal if mask is None else (mask & causal)
        return multi_head_attention(x_q, x_kv, params, self.num_heads, mask=mask), state


@attrs.frozen
class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with dropout, a residual and LayerNorm
    (post-norm unless `norm_first`), as PyTorch's nn.TransformerEncoderLayer (batch first)."""

    kind = "encoder_layer"
    num_heads: int = attrs.field(default=8)
    dim_feedforward: int = attrs.field(default=2048, kw_only=True)
    dropout_rate: float = attrs.field(default=0.1, kw_only=True)
    activation: Callable = attrs.field(default=None, kw_only=True)
    norm_first: bool = attrs.field(default=False, kw_only=True)
    causal: bool = attrs.field(default=False, kw_only=True)
    eps: float = attrs.field(default=1e-5, kw_only=True)

    def _attention(self) -> MultiHeadAttention:
        return MultiHeadAttention(self.num_heads, causal=self.causal)

    def init_with_output(self, key, spec):
        d = spec.shape[-1]
        k = random.split(key, 5)
        attn, _, _ = self._attention().init_with_output(k[0], spec)
        params = {
            "attention": attn,
            "norm1": {"scale": init.ones(None, (d,), spec.dtype), "bias": init.zeros(None, (d,), spec.dtype)},
            "linear1": {"w": init.torch_default_uniform(d)(k[1], (d, self.dim_feedforward), spec.dtype),
                        "b": init.torch_default_uniform(d)(k[2], (self.dim_feedforward,), spec.dtype)},
            "linear2": {"w": init.torch_default_uniform(self.dim_feedforward)(
                            k[3], (self.dim_feedforward, d), spec.dtype),
                        "b": init.torch_default_uniform(self.dim_feedforward)(k[4], (d,), spec.dtype)},
            "norm2": {"scale": init.ones(None, (d,), spec.dtype), "bias": init.zeros(None, (d,), spec.dtype)},
        }
        return params, {}, spec

    def _drop(self, x, key, i, train):
        if not train or self.dropout_rate == 0.0:
            return x
        if key is None:
            raise ValueError("TransformerEncoderLayer: apply(..., train=True) needs a random key")
        return dropout(x, self.dropout_rate, random.fold_in(key, i))

    def apply(self, params, state, x, *, key=None, train=False):
        x_in, _, mask = _split_inputs(x)
        act = self.activation or A.relu

        def attention_block(h):
            y, _ = self._attention().apply(params["attention"], {}, (h, h, mask))
            return self._drop(y, key, 0, train)

        def feed_forward(h):
            p1, p2 = params["linear1"], params["linear2"]
            h = self._drop(act(dense(h, p1["w"], p1["b"])), key, 1, train)
            return self._drop(dense(h, p2["w"], p2["b"]), key, 2, train)

        def norm(h, p):
            return layer_norm(h, p["scale"], p["bias"], eps=self.eps)

        h = x_in
        if self.norm_first:
            h = h + attention_block(norm(h, params["norm1"]))
            h = h + feed_forward(norm(h, params["norm2"]))
        else:
            h = norm(h + attention_block(h), params["norm1"])
            h = norm(h + feed_forward(h), params["norm2"])
        return h, state
