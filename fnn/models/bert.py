"""BERT with its masked-language-model head, as HuggingFace's `BertForMaskedLM`.

    ids (N, L) -> token + learned position + segment embeddings -> LayerNorm (eps 1e-12) -> dropout
    -> depth x post-norm blocks (self-attention, residual, LayerNorm; GELU MLP, residual, LayerNorm)
    -> MLM head: Dense(dim, dim) -> GELU -> LayerNorm -> h @ token_table.T + bias -> (N, L, vocab)

The decoder of the MLM head is tied to the token embedding table: the same array is used twice,
so its gradient is the sum of both uses and it is counted once. Dropout (`dropout_rate`) acts on
the embeddings, on the attention weights (`attention_dropout_rate`, by default the same) and on
each sublayer's output before its residual; as in HuggingFace, not between the MLP's two layers.
Initialisation as HuggingFace's: weights and embedding tables N(0, 0.02^2), biases zero,
LayerNorms one and zero. `approximate_gelu=True` uses the tanh form of GELU in the MLPs and the
MLM head, as Google's original BERT code did (HuggingFace's `hidden_act="gelu_new"`).

Inputs: `ids`, `(ids, segment_ids)`, `(ids, segment_ids, attention_mask)` (segment_ids may be
None) or a dict with keys `input_ids`, `token_type_ids`, `attention_mask`. The attention mask is
(N, L) with 1/True for real tokens and 0/False for padding (keys that no query may attend to), or a
boolean (N, L, L) mask, True where attention is allowed.

Parameter count of `bert_base()` (vocab 30522, dim d=768, depth 12, MLP f=3072, 512 positions,
2 segments), the figure HuggingFace reports for BertForMaskedLM (`model.num_parameters()`, the tied
decoder counted once and the decoder's bias shared with `cls.predictions.bias`):

    embeddings  30522*768 + 512*768 + 2*768 + 2*768       =  23,837,184
    per layer   4*(768*768 + 768)                          (q, k, v, output projections)
              + 768*3072 + 3072 + 3072*768 + 768           (MLP)
              + 2 * 2*768                                  (two LayerNorms)  =  7,087,872
    12 layers                                             =  85,054,464
    MLM head    768*768 + 768 + 2*768 + 30522              (dense, LayerNorm, output bias)  = 622,650
    total                                                 = 109,514,298

(BertForMaskedLM has no pooler; BertModel's pooler, another 590,592, is not part of it.)
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

import fnn.numpy as fnp
from fnn import random
from fnn.autodiff.tracer import strip
from fnn.backend import get_array_module
from fnn.models._transformer import (TransformerBlock, check_key, drop, layer_norm_params, mlp_activation,
                                      summary_rows)
from fnn.nn import initializers as init
from fnn.nn.functional.activations import gelu
from fnn.nn.functional.dense import dense
from fnn.nn.functional.embedding import embedding
from fnn.nn.functional.normalization import layer_norm
from fnn.nn.module import Module, ShapeDtype, spec_of

__all__ = ["BERT", "bert", "bert_base", "bert_large", "bert_small", "bert_mini", "bert_tiny",
           "split_bert_inputs"]


def split_bert_inputs(x: Any) -> tuple[Any, Any, Any]:
    """(ids, segment_ids or None, attention mask or None) from any accepted input form."""
    if isinstance(x, dict):
        return x["input_ids"], x.get("token_type_ids"), x.get("attention_mask")
    if isinstance(x, (tuple, list)):
        if not 1 <= len(x) <= 3:
            raise TypeError("BERT: the input is ids, (ids, segment_ids) or (ids, segment_ids, mask)")
        x = tuple(x) + (None,) * (3 - len(x))
        return x[0], x[1], x[2]
    return x, None, None


def _attention_mask(mask: Any, n: int, length: int):
    """A boolean mask broadcastable to (N, L, L): True where attention is allowed."""
    if mask is None:
        return None
    mask = strip(mask)
    if not hasattr(mask, "dtype"):
        mask = np.asarray(mask)
    if mask.dtype != bool:
        mask = mask != 0
    if mask.shape == (n, length):
        return mask[:, None, :]  # padding: no query attends to a padded key
    if mask.shape == (n, length, length):
        return mask
    raise ValueError(f"BERT: the attention mask must be (N, L) = {(n, length)} or (N, L, L), "
                     f"got shape {tuple(mask.shape)}")


@attrs.frozen
class BERT(Module):
    """BERT encoder with the masked-LM head; `apply` returns (N, L, vocab_size) logits and
    `encode` the encoder's (N, L, dim) features. See the module doc."""

    kind = "bert"
    vocab_size: int = attrs.field(default=30522)
    max_len: int = attrs.field(default=512, kw_only=True)
    dim: int = attrs.field(default=768, kw_only=True)
    depth: int = attrs.field(default=12, kw_only=True)
    num_heads: int = attrs.field(default=12, kw_only=True)
    mlp_dim: int = attrs.field(default=3072, kw_only=True)
    type_vocab_size: int = attrs.field(default=2, kw_only=True)
    dropout_rate: float = attrs.field(default=0.1, kw_only=True)
    attention_dropout_rate: float | None = attrs.field(default=None, kw_only=True)  # dropout_rate
    eps: float = attrs.field(default=1e-12, kw_only=True)
    init_std: float = attrs.field(default=0.02, kw_only=True)
    approximate_gelu: bool = attrs.field(default=False, kw_only=True)  # tanh GELU (MLPs and MLM head)

    def __attrs_post_init__(self):
        if self.dim % self.num_heads:
            raise ValueError(f"BERT: dim {self.dim} is not divisible by num_heads {self.num_heads}")

    def _attention_rate(self) -> float:
        return self.dropout_rate if self.attention_dropout_rate is None else self.attention_dropout_rate

    def block(self) -> TransformerBlock:
        return TransformerBlock(self.num_heads, mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
                                attention_dropout_rate=self._attention_rate(), inner_dropout=False,
                                norm_first=False, eps=self.eps, init_scheme="normal",
                                init_std=self.init_std, activation=mlp_activation(self.approximate_gelu))

    def _ids_spec(self, spec: ShapeDtype) -> ShapeDtype:
        if len(spec.shape) != 2 or np.dtype(spec.dtype).kind not in "iu":
            raise self.shape_error(f"expects integer token ids of shape (N, L), got shape {spec.shape} "
                                   f"and dtype {spec.dtype}")
        if spec.shape[1] > self.max_len:
            raise self.shape_error(f"sequences of length {spec.shape[1]} exceed max_len {self.max_len}")
        return spec

    def init(self, key, x):
        params, state, _ = self.init_with_output(key, spec_of(split_bert_inputs(x)[0]))
        return params, state

    def output_spec(self, x):
        return self.init_with_output(random.key(0), spec_of(split_bert_inputs(x)[0]))[2]

    def init_with_output(self, key, spec):
        spec = self._ids_spec(spec)
        d, dt = self.dim, np.float32
        n, length = spec.shape
        k = random.split(key, 5 + self.depth)
        normal = init.normal(self.init_std)
        seq = ShapeDtype((n, length, d), dt)
        params = {
            "embeddings": {
                "token": {"table": normal(k[0], (self.vocab_size, d), dt)},
                "position": {"table": normal(k[1], (self.max_len, d), dt)},
                "segment": {"table": normal(k[2], (self.type_vocab_size, d), dt)},
                "norm": layer_norm_params(d, dt),
            },
            "encoder": {f"layer_{i}": self.block().init_with_output(k[5 + i], seq)[0]
                        for i in range(self.depth)},
            "mlm": {
                "dense": {"w": normal(k[3], (d, d), dt), "b": init.zeros(None, (d,), dt)},
                "norm": layer_norm_params(d, dt),
                "bias": init.zeros(None, (self.vocab_size,), dt),
            },
        }
        return params, {}, ShapeDtype((n, length, self.vocab_size), dt)

    def summary_rows(self, key, spec, path):
        params, _, out = self.init_with_output(key, spec)
        seq = out.shape[:2] + (self.dim,)
        groups = [("embeddings", "Embeddings", seq, params["embeddings"])]
        groups += [(f"encoder.{name}", "TransformerBlock", seq, p) for name, p in params["encoder"].items()]
        groups += [("mlm", "MaskedLMHead (tied decoder)", out.shape, params["mlm"])]
        return summary_rows(path, groups), out

    def encode(self, params, x, *, key=None, train=False):
        """The last encoder layer's output (N, L, dim)."""
        ids, segments, mask = split_bert_inputs(x)
        ids = strip(ids)
        self._ids_spec(spec_of(ids))
        check_key("BERT", key, train, max(self.dropout_rate, self._attention_rate()))
        n, length = ids.shape
        emb = params["embeddings"]
        xp = get_array_module(emb["token"]["table"])
        segments = xp.zeros((n, length), np.int64) if segments is None else strip(segments)
        h = (embedding(ids, emb["token"]["table"])
             + embedding(xp.arange(length), emb["position"]["table"])
             + embedding(segments, emb["segment"]["table"]))
        h = layer_norm(h, emb["norm"]["scale"], emb["norm"]["bias"], eps=self.eps)
        h = drop(h, self.dropout_rate, key, self.depth, train)
        mask = _attention_mask(mask, n, length)
        block = self.block()
        for i in range(self.depth):
            h, _ = block.apply(params["encoder"][f"layer_{i}"], {}, h if mask is None else (h, mask),
                               key=None if key is None else random.fold_in(key, i), train=train)
        return h

    def mlm_logits(self, params, h):
        """The masked-LM head on features h (..., dim): (..., vocab_size) logits, the decoder tied
        to the token embedding table."""
        p = params["mlm"]
        z = gelu(dense(h, p["dense"]["w"], p["dense"]["b"]), approximate="tanh" if self.approximate_gelu else "none")
        z = layer_norm(z, p["norm"]["scale"], p["norm"]["bias"], eps=self.eps)
        table = params["embeddings"]["token"]["table"]
        return dense(z, fnp.transpose(table), p["bias"])

    def apply(self, params, state, x, *, key=None, train=False):
        return self.mlm_logits(params, self.encode(params, x, key=key, train=train)), state


def bert(vocab_size: int = 30522, max_len: int = 512, dim: int = 768, depth: int = 12,
         num_heads: int = 12, mlp_dim: int = 3072, type_vocab_size: int = 2,
         dropout_rate: float = 0.1, *, approximate_gelu: bool = False) -> BERT:
    """BERT with the masked-LM head (HuggingFace's BertForMaskedLM); the defaults are BERT-base.
    `approximate_gelu=True`: the tanh form of GELU (Google's original code, HuggingFace's "gelu_new")."""
    return BERT(vocab_size, max_len=max_len, dim=dim, depth=depth, num_heads=num_heads,
                mlp_dim=mlp_dim, type_vocab_size=type_vocab_size, dropout_rate=dropout_rate,
                approximate_gelu=approximate_gelu)


def _config(name: str, dim: int, depth: int, heads: int, mlp: int, doc: str):
    """A named BERT size: `name(vocab_size=30522, max_len=512, dropout_rate=0.1, *, approximate_gelu=False)`."""
    def make(vocab_size: int = 30522, max_len: int = 512, dropout_rate: float = 0.1, *,
             approximate_gelu: bool = False) -> BERT:
        return bert(vocab_size, max_len, dim, depth, heads, mlp, dropout_rate=dropout_rate,
                    approximate_gelu=approximate_gelu)
    make.__name__ = make.__qualname__ = name
    make.__doc__ = doc
    return make


bert_base = _config("bert_base", 768, 12, 12, 3072,
                    "BERT-base: dim 768, 12 layers, 12 heads, MLP 3072 (109,514,298 parameters at vocab 30522).")
bert_large = _config("bert_large", 1024, 24, 16, 4096, "BERT-large: dim 1024, 24 layers, 16 heads, MLP 4096.")
bert_small = _config("bert_small", 512, 4, 8, 2048,
                     "BERT-small (Turc et al., 2019): dim 512, 4 layers, 8 heads, MLP 2048.")
bert_mini = _config("bert_mini", 256, 4, 4, 1024,
                    "BERT-mini (Turc et al., 2019): dim 256, 4 layers, 4 heads, MLP 1024.")
bert_tiny = _config("bert_tiny", 128, 2, 2, 512,
                    "BERT-tiny (Turc et al., 2019): dim 128, 2 layers, 2 heads, MLP 512.")
