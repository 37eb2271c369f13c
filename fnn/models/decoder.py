"""A small causal Transformer decoder (GPT-2's shape) for language modelling, and `generate`.

    ids (N, L) -> token + learned position embeddings -> dropout
    -> depth x pre-norm causal blocks (LayerNorm, masked self-attention, residual;
                                       LayerNorm, GELU MLP, residual)
    -> LayerNorm -> LM head -> (N, L, vocab_size) logits

The LM head is tied to the token embedding table by default (`tie_embeddings=True`, as GPT-2:
logits = h @ token_table.T, no bias); with `tie_embeddings=False` it is a separate bias-free
(dim, vocab) weight. Initialisation as GPT-2's: weights and tables N(0, 0.02^2), biases zero, and the
two projections back into the residual stream (attention output, MLP output) N(0, (0.02 /
sqrt(2 * depth))^2). Dropout acts on the embeddings, the attention weights and each sublayer's
output (not between the MLP's layers, as GPT-2). The MLP's GELU is exact unless
`approximate_gelu=True` (GPT-2 used the tanh form).

`gpt2_small()` (vocab 50257, 1024 positions, dim 768, 12 layers) has GPT-2's 124,439,808
parameters: 50257*768 + 1024*768 + 12 * 7,087,872 + 2*768.

`decode(params, ids, cache)` evaluates new positions after cached ones (a key/value cache per
block), so `generate` computes each position once.

Position i's logits depend on ids[:, :i+1] only: the logits at i predict ids[:, i+1], so a training
loss is `softmax_cross_entropy(logits[:, :-1], ids[:, 1:])`.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import numpy as np

import fnn.numpy as fnp
from fnn import random
from fnn.autodiff.tracer import strip
from fnn.backend import get_array_module, to_numpy
from fnn.models._transformer import (TransformerBlock, check_key, drop, layer_norm_params, mlp_activation,
                                      summary_rows)
from fnn.nn import initializers as init
from fnn.nn.functional.dense import dense
from fnn.nn.functional.embedding import embedding
from fnn.nn.functional.normalization import layer_norm
from fnn.nn.module import Module, ShapeDtype

__all__ = ["CausalTransformer", "causal_transformer", "gpt", "gpt2_small", "generate"]


@attrs.frozen
class CausalTransformer(Module):
    """A GPT-style decoder-only language model; `apply` maps ids (N, L) to (N, L, vocab) logits."""

    kind = "causal_transformer"
    vocab_size: int = attrs.field(default=None)
    max_len: int = attrs.field(default=256, kw_only=True)
    dim: int = attrs.field(default=256, kw_only=True)
    depth: int = attrs.field(default=4, kw_only=True)
    num_heads: int = attrs.field(default=4, kw_only=True)
    mlp_dim: int | None = attrs.field(default=None, kw_only=True)  # 4 * dim
    dropout_rate: float = attrs.field(default=0.1, kw_only=True)
    tie_embeddings: bool = attrs.field(default=True, kw_only=True)
    approximate_gelu: bool = attrs.field(default=False, kw_only=True)
    eps: float = attrs.field(default=1e-5, kw_only=True)
    init_std: float = attrs.field(default=0.02, kw_only=True)

    def __attrs_post_init__(self):
        if self.vocab_size is None:
            raise ValueError("CausalTransformer: vocab_size is required")
        if self.dim % self.num_heads:
            raise ValueError(f"CausalTransformer: dim {self.dim} is not divisible by num_heads "
                             f"{self.num_heads}")

    def block(self) -> TransformerBlock:
        return TransformerBlock(self.num_heads, mlp_dim=self.mlp_dim or 4 * self.dim,
                                dropout_rate=self.dropout_rate, attention_dropout_rate=self.dropout_rate,
                                inner_dropout=False, norm_first=True, causal=True, eps=self.eps,
                                activation=mlp_activation(self.approximate_gelu),
                                init_scheme="normal", init_std=self.init_std,
                                proj_std=self.init_std / math.sqrt(2 * self.depth))

    def _check(self, shape, dtype) -> None:
        if len(shape) != 2 or np.dtype(dtype).kind not in "iu":
            raise self.shape_error(f"expects integer token ids of shape (N, L), got shape "
                                   f"{tuple(shape)} and dtype {dtype}")
        if shape[1] > self.max_len:
            raise self.shape_error(f"sequences of length {shape[1]} exceed max_len {self.max_len}")

    def init_with_output(self, key, spec):
        self._check(spec.shape, spec.dtype)
        d, dt = self.dim, np.float32
        n, length = spec.shape
        k = random.split(key, 3 + self.depth)
        normal = init.normal(self.init_std)
        seq = ShapeDtype((n, length, d), dt)
        params = {
            "token_embedding": {"table": normal(k[0], (self.vocab_size, d), dt)},
            "position_embedding": {"table": normal(k[1], (self.max_len, d), dt)},
            "blocks": {f"layer_{i}": self.block().init_with_output(k[3 + i], seq)[0]
                       for i in range(self.depth)},
            "norm": layer_norm_params(d, dt),
        }
        if not self.tie_embeddings:
            params["lm_head"] = {"w": normal(k[2], (d, self.vocab_size), dt)}
        return params, {}, ShapeDtype((n, length, self.vocab_size), dt)

    def summary_rows(self, key, spec, path):
        params, _, out = self.init_with_output(key, spec)
        seq = out.shape[:2] + (self.dim,)
        groups = [("embeddings", "Embeddings", seq,
                   [params["token_embedding"], params["position_embedding"]])]
        groups += [(f"blocks.{name}", "TransformerBlock (causal)", seq, p)
                   for name, p in params["blocks"].items()]
        groups += [("norm", "LayerNorm", seq, params["norm"]),
                   ("lm_head", "Dense" if "lm_head" in params else "Dense (tied to the token table)",
                    out.shape, params.get("lm_head", {}))]
        return summary_rows(path, groups), out

    def features(self, params, ids, *, key=None, train=False):
        """The final LayerNorm's output (N, L, dim)."""
        ids = strip(ids)
        self._check(ids.shape, ids.dtype)
        check_key("CausalTransformer", key, train, self.dropout_rate)
        tok = params["token_embedding"]["table"]
        xp = get_array_module(tok)
        h = embedding(ids, tok) + embedding(xp.arange(ids.shape[1]), params["position_embedding"]["table"])
        h = drop(h, self.dropout_rate, key, self.depth, train)
        block = self.block()
        for i in range(self.depth):
            h, _ = block.apply(params["blocks"][f"layer_{i}"], {}, h,
                               key=None if key is None else random.fold_in(key, i), train=train)
        return layer_norm(h, params["norm"]["scale"], params["norm"]["bias"], eps=self.eps)

    def _logits(self, params, h):
        if self.tie_embeddings:
            w = fnp.transpose(params["token_embedding"]["table"])
        else:
            w = params["lm_head"]["w"]
        return dense(h, w)

    def apply(self, params, state, x, *, key=None, train=False):
        return self._logits(params, self.features(params, x, key=key, train=train)), state

    def decode(self, params, ids, cache=None):
        """Incremental decoding (evaluation mode): logits (N, n, vocab) of the new tokens `ids`
        (N, n) that follow the positions in `cache` (None at the start), and the cache extended
        by them (per block the keys and values of every position so far, and the length).

        Feeding a sequence in pieces gives the logits `apply` gives for the whole (to rounding);
        each step of `generate` then costs one position's work instead of a full forward pass.
        Positions are limited to `max_len`."""
        ids = strip(ids)
        if len(ids.shape) != 2 or ids.dtype.kind not in "iu":
            raise self.shape_error(f"decode expects integer token ids of shape (N, n), got shape "
                                   f"{tuple(ids.shape)} and dtype {ids.dtype}")
        start = 0 if cache is None else cache["length"]
        n = ids.shape[1]
        if start + n > self.max_len:
            raise self.shape_error(f"decode: {start} cached and {n} new positions exceed max_len "
                                   f"{self.max_len}")
        tok = params["token_embedding"]["table"]
        xp = get_array_module(tok)
        h = embedding(ids, tok) + embedding(xp.arange(start, start + n), params["position_embedding"]["table"])
        block = self.block()
        new_cache = {"length": start + n}
        for i in range(self.depth):
            name = f"layer_{i}"
            h, new_cache[name] = block.decode(params["blocks"][name], h,
                                              None if cache is None else cache[name])
        h = layer_norm(h, params["norm"]["scale"], params["norm"]["bias"], eps=self.eps)
        return self._logits(params, h), new_cache


def causal_transformer(vocab_size: int, max_len: int = 256, dim: int = 256, depth: int = 4,
                       num_heads: int = 4, mlp_dim: int | None = None, dropout_rate: float = 0.1,
                       tie_embeddings: bool = True, *, approximate_gelu: bool = False) -> CausalTransformer:
    """A GPT-style causal Transformer language model (see the module doc); mlp_dim defaults to 4*dim."""
    return CausalTransformer(vocab_size, max_len=max_len, dim=dim, depth=depth, num_heads=num_heads,
                             mlp_dim=mlp_dim, dropout_rate=dropout_rate, tie_embeddings=tie_embeddings,
                             approximate_gelu=approximate_gelu)


gpt = causal_transformer


def gpt2_small(vocab_size: int = 50257, max_len: int = 1024, dropout_rate: float = 0.1) -> CausalTransformer:
    """GPT-2 small's shape: dim 768, 12 layers, 12 heads, tied head, tanh GELU (124,439,808 parameters)."""
    return CausalTransformer(vocab_size, max_len=max_len, dim=768, depth=12, num_heads=12,
                             dropout_rate=dropout_rate, approximate_gelu=True)


def generate(model: CausalTransformer, params: dict, state: dict, prompt_ids: Any, steps: int, key: Any,
             temperature: float = 1.0, top_k: int | None = None, use_cache: bool = True,
             suppress_ids: Any = None) -> Any:
    """Sample `steps` tokens after `prompt_ids` ((L,) or (N, L) ints); returns the prompt and the
    new tokens, (L + steps,) or (N, L + steps), in the prompt's array module.

    Each step takes the model's logits at the last position in evaluation mode, divides them by
    `temperature` (0 means greedy), keeps the `top_k` largest (ties with the k-th kept too) and
    samples by the Gumbel-max trick with `fold_in(key, step)`: the same key gives the same text.
    With `use_cache` the logits come from `model.decode` with a key/value cache (the prompt once,
    then one position per step) while the text fits in `model.max_len` positions; beyond that,
    and with `use_cache=False`, each step runs the model on the last `max_len` tokens.
    `suppress_ids` (token ids, e.g. padding and other special tokens) are never produced: their
    logits are set to -inf before anything else (HuggingFace's `suppress_tokens`).
    """
    if steps < 0:
        raise ValueError(f"generate: steps must be >= 0, got {steps}")
    if temperature < 0:
        raise ValueError(f"generate: temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"generate: top_k must be a positive int or None, got {top_k}")
    out_xp = get_array_module(prompt_ids) if hasattr(prompt_ids, "dtype") else np
    ids = np.asarray(to_numpy(prompt_ids))
    squeeze = ids.ndim == 1
    ids = ids[None] if squeeze else ids
    if ids.ndim != 2 or ids.dtype.kind not in "iu" or ids.shape[1] == 0:
        raise ValueError(f"generate: prompt_ids must be a non-empty (L,) or (N, L) integer array, "
                         f"got shape {ids.shape} and dtype {ids.dtype}")
    suppress = None
    if suppress_ids is not None:
        suppress = np.unique(np.asarray(suppress_ids, dtype=np.int64).ravel())
        if suppress.size and (suppress[0] < 0 or suppress[-1] >= model.vocab_size):
            raise ValueError(f"generate: suppress_ids must lie in [0, {model.vocab_size}), got "
                             f"{suppress.tolist()}")
        if suppress.size >= model.vocab_size:
            raise ValueError("generate: suppress_ids leaves no token to sample")
    cache = None
    for step in range(steps):
        if use_cache and ids.shape[1] <= model.max_len:
            new = ids if cache is None else ids[:, cache["length"]:]
            logits, cache = model.decode(params, new, cache)
        else:
            cache = None
            logits, _ = model.apply(params, state, ids[:, -model.max_len:], train=False)
        last = np.array(to_numpy(strip(logits)[:, -1, :]), dtype=np.float64)
        if suppress is not None:
            last[:, suppress] = -np.inf
        if temperature == 0:
            nxt = np.argmax(last, axis=-1)
        else:
            last = last / temperature
            if top_k is not None and top_k < last.shape[-1]:
                kth = np.sort(last, axis=-1)[:, -top_k][:, None]
                last = np.where(last < kth, -np.inf, last)
            u = random.uniform(random.fold_in(key, step), last.shape, np.float64,
                               minval=np.finfo(np.float64).tiny, maxval=1.0)
            nxt = np.argmax(last - np.log(-np.log(u)), axis=-1)
        ids = np.concatenate([ids, nxt[:, None].astype(ids.dtype)], axis=1)
    ids = ids[0] if squeeze else ids
    return ids if out_xp is np else out_xp.asarray(ids)
