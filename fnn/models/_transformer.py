"""The Transformer block shared by the zoo's ViT, BERT and causal decoder.

`TransformerBlock` is `fnn.nn.TransformerEncoderLayer` with the few knobs the reference models
need and that layer does not have: dropout on the attention weights, the choice of whether the MLP
drops after its activation (PyTorch and torchvision do; HuggingFace's BERT and GPT-2 do not), and
the reference initialisations (torchvision's ViT, or N(0, std) weights with zero biases as BERT and
GPT-2). Its params have the same names as TransformerEncoderLayer's:

    {"norm1": {scale, bias}, "attention": {wq, bq, wk, bk, wv, bv, wo, bo},
     "norm2": {scale, bias}, "linear1": {w, b}, "linear2": {w, b}}

The input is `h` (N, L, d) or `(h, mask)` with a boolean mask, True where attention is allowed,
broadcastable to (N, L, L) (a padding mask is (N, 1, L)).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs

from fnn import random
from fnn.autodiff.tracer import strip
from fnn.backend import get_array_module
from fnn.nn import initializers as init
from fnn.nn.functional import activations as A
from fnn.nn.functional.attention import cached_self_attention, causal_mask, multi_head_attention
from fnn.nn.functional.dense import dense
from fnn.nn.functional.dropout import dropout
from fnn.nn.functional.normalization import layer_norm
from fnn.nn.module import Module

__all__ = ["TransformerBlock", "layer_norm_params", "drop", "check_key", "summary_rows", "gelu_tanh",
           "mlp_activation"]


def gelu_tanh(x):
    """GELU by its tanh approximation (GPT-2's, BERT's original code, HuggingFace's "gelu_new"):
    within about 1e-3 of the exact GELU, and several times cheaper on a CPU than its erf."""
    return A.gelu(x, approximate="tanh")


def mlp_activation(approximate_gelu: bool) -> Callable | None:
    """A model's `approximate_gelu` option as a TransformerBlock activation (None: exact GELU)."""
    return gelu_tanh if approximate_gelu else None


def layer_norm_params(d: int, dtype) -> dict:
    return {"scale": init.ones(None, (d,), dtype), "bias": init.zeros(None, (d,), dtype)}


def check_key(model: str, key: Any, train: bool, rate: float) -> None:
    if train and rate > 0.0 and key is None:
        raise ValueError(f"{model}: apply(..., train=True) with dropout needs a random key: "
                         "pass key=fnn.random.key(...)")


def drop(x, rate: float, key: Any, i: int, train: bool):
    """Dropout of `x` with the i-th stream of `key` while training; the identity otherwise."""
    if not train or rate == 0.0:
        return x
    return dropout(x, rate, random.fold_in(key, i))


@attrs.frozen
class TransformerBlock(Module):
    """Self-attention and an MLP, each with a residual and a LayerNorm (before the sublayer when
    `norm_first`, after the residual otherwise).

    `init_scheme`: 'torchvision' (ViT: PyTorch's MultiheadAttention init, Xavier-uniform MLP weights
    and N(0, 1e-6) MLP biases) or 'normal' (every weight N(0, init_std), biases zero, the two
    projections back into the residual stream N(0, proj_std or init_std): BERT, GPT-2).
    """

    kind = "block"
    num_heads: int = attrs.field(default=8)
    mlp_dim: int = attrs.field(default=2048, kw_only=True)
    dropout_rate: float = attrs.field(default=0.0, kw_only=True)
    attention_dropout_rate: float = attrs.field(default=0.0, kw_only=True)
    inner_dropout: bool = attrs.field(default=True, kw_only=True)
    norm_first: bool = attrs.field(default=True, kw_only=True)
    causal: bool = attrs.field(default=False, kw_only=True)
    eps: float = attrs.field(default=1e-5, kw_only=True)
    activation: Callable | None = attrs.field(default=None, kw_only=True)  # exact GELU when None
    init_scheme: str = attrs.field(default="torchvision", kw_only=True)
    init_std: float = attrs.field(default=0.02, kw_only=True)
    proj_std: float | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self):
        if self.init_scheme not in ("torchvision", "normal"):
            raise ValueError(f"TransformerBlock: init_scheme must be 'torchvision' or 'normal', "
                             f"got {self.init_scheme!r}")

    def init_with_output(self, key, spec):
        if len(spec.shape) != 3:
            raise self.shape_error(f"expects inputs of shape (N, L, d), got shape {spec.shape}")
        d, f, dt = spec.shape[-1], self.mlp_dim, spec.dtype
        if d % self.num_heads:
            raise self.shape_error(f"d_model {d} is not divisible by num_heads {self.num_heads}")
        k = random.split(key, 8)
        zeros = init.zeros
        if self.init_scheme == "torchvision":
            limit = math.sqrt(6.0 / (d + 3 * d))  # PyTorch's packed (3d, d) Xavier in-projection
            qkv_w = init.uniform(limit, low=-limit)
            out_w = init.torch_default_uniform(d)
            w1, w2 = init.xavier_uniform(), init.xavier_uniform()
            b_mlp = init.normal(1e-6)
        else:
            qkv_w = w1 = init.normal(self.init_std)
            out_w = w2 = init.normal(self.init_std if self.proj_std is None else self.proj_std)
            b_mlp = zeros
        attention = {"wq": qkv_w(k[0], (d, d), dt), "bq": zeros(None, (d,), dt),
                     "wk": qkv_w(k[1], (d, d), dt), "bk": zeros(None, (d,), dt),
                     "wv": qkv_w(k[2], (d, d), dt), "bv": zeros(None, (d,), dt),
                     "wo": out_w(k[3], (d, d), dt), "bo": zeros(None, (d,), dt)}
        params = {
            "norm1": layer_norm_params(d, dt),
            "attention": attention,
            "norm2": layer_norm_params(d, dt),
            "linear1": {"w": w1(k[4], (d, f), dt), "b": b_mlp(k[5], (f,), dt)},
            "linear2": {"w": w2(k[6], (f, d), dt), "b": b_mlp(k[7], (d,), dt)},
        }
        return params, {}, spec

    def apply(self, params, state, x, *, key=None, train=False):
        h, mask = x if isinstance(x, tuple) else (x, None)
        check_key("TransformerBlock", key, train, max(self.dropout_rate, self.attention_dropout_rate))
        if self.causal:
            causal = causal_mask(h.shape[-2])
            if mask is not None:
                mask = strip(mask)
                causal = get_array_module(mask).asarray(causal) & mask
            mask = causal
        act = self.activation or A.gelu
        rate = self.dropout_rate

        def attention(z):
            att_rate = self.attention_dropout_rate if train else 0.0
            y = multi_head_attention(z, z, params["attention"], self.num_heads, mask,
                                     dropout_rate=att_rate,
                                     key=random.fold_in(key, 0) if att_rate else None)
            return drop(y, rate, key, 1, train)

        def mlp(z):
            p1, p2 = params["linear1"], params["linear2"]
            z = act(dense(z, p1["w"], p1["b"]))
            if self.inner_dropout:
                z = drop(z, rate, key, 2, train)
            return drop(dense(z, p2["w"], p2["b"]), rate, key, 3, train)

        return self._sublayers(params, h, attention, mlp), state

    def _sublayers(self, params, h, attention, mlp):
        """The residual layout around the two sublayers: pre-norm (x + f(norm(x))) or post-norm
        (norm(x + f(x)))."""
        def norm(z, p):
            return layer_norm(z, p["scale"], p["bias"], eps=self.eps)

        if self.norm_first:
            h = h + attention(norm(h, params["norm1"]))
            return h + mlp(norm(h, params["norm2"]))
        h = norm(h + attention(h), params["norm1"])
        return norm(h + mlp(h), params["norm2"])

    def decode(self, params, h, cache=None):
        """Evaluation-mode output for positions h (N, n, d) that follow the positions whose keys
        and values are in `cache` (None: none), and the cache extended by these: a causal block
        fed token by token computes each position's keys and values once. See
        `fnn.nn.functional.cached_self_attention`."""
        if not self.causal:
            raise ValueError("TransformerBlock.decode: only a causal block decodes incrementally")
        act = self.activation or A.gelu
        new_cache = {}

        def attention(z):
            y, new_cache["kv"] = cached_self_attention(z, params["attention"], self.num_heads, cache)
            return y

        def mlp(z):
            p1, p2 = params["linear1"], params["linear2"]
            return dense(act(dense(z, p1["w"], p1["b"])), p2["w"], p2["b"])

        return self._sublayers(params, h, attention, mlp), new_cache["kv"]


def summary_rows(path: str, groups: list) -> list:
    """`fnn.summary` rows from (name, type, output shape, params) groups of a model."""
    from fnn.nn.module import count_params  # noqa: PLC0415

    return [(f"{path}.{name}" if path else name, kind, tuple(shape), count_params(p), 0)
            for name, kind, shape, p in groups]
