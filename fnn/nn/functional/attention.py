"""Scaled dot-product attention and its multi-head functional form.

Composed from fnn.numpy's matmul and where and the softmax primitive, so every part has its
hand-written rule and the whole can be differentiated twice.
"""

from __future__ import annotations

import math

import numpy as np

import fnn.numpy as fnp
from fnn.autodiff.tracer import strip
from fnn.backend import get_array_module
from fnn.nn.functional.activations import softmax
from fnn.nn.functional.dense import dense
from fnn.nn.functional.dropout import dropout

__all__ = ["scaled_dot_product_attention", "causal_mask", "multi_head_attention", "cached_self_attention"]


def _shape(a):
    return tuple(getattr(a, "shape", ()))


def causal_mask(length, kv_length=None):
    """A boolean (length, kv_length) mask, True where query i may attend to key j <= i (keys
    aligned to the end when kv_length > length, as for a cache of past keys)."""
    kv_length = length if kv_length is None else kv_length
    return np.tri(length, kv_length, k=kv_length - length, dtype=bool)


def _broadcast_shape(name, a, b, what):
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        raise ValueError(f"{name}: {what}") from None


def scaled_dot_product_attention(q, k, v, mask=None, *, dropout_rate=0.0, key=None):
    """softmax(q @ k^T / sqrt(d) masked) @ v.

    q (..., Lq, d), k (..., Lk, d), v (..., Lk, dv); the leading axes broadcast. `mask` is boolean,
    True where attention is allowed, broadcastable to (..., Lq, Lk); a query row with no allowed key
    gets zero weights (and a zero output), not NaN. `dropout_rate` (the drop probability) applies
    dropout to the attention weights and then needs `key`.
    """
    name = "scaled_dot_product_attention"
    qs, ks, vs = _shape(q), _shape(k), _shape(v)
    if len(qs) < 2 or len(ks) < 2 or len(vs) < 2:
        raise ValueError(f"{name}: q, k and v must have at least 2 axes (..., L, d), got q shape "
                         f"{qs}, k shape {ks}, v shape {vs}")
    if qs[-1] != ks[-1]:
        raise ValueError(f"{name}: queries have {qs[-1]} features but keys have {ks[-1]} "
                         f"(q shape {qs}, k shape {ks})")
    if ks[-2] != vs[-2]:
        raise ValueError(f"{name}: there are {ks[-2]} keys but {vs[-2]} values "
                         f"(k shape {ks}, v shape {vs})")
    batch = _broadcast_shape(name, qs[:-2], ks[:-2],
                             f"the leading axes of q and k do not broadcast (q shape {qs}, k shape {ks})")
    _broadcast_shape(name, batch, vs[:-2],
                     f"the leading axes of k and v do not broadcast (k shape {ks}, v shape {vs})")
    scores = fnp.matmul(q, fnp.swapaxes(k, -1, -2))
    d = qs[-1]
    if d:
        scores = scores * (1.0 / math.sqrt(d))
    if mask is not None:
        xp = get_array_module(q, k, v)
        mask = strip(mask)
        if not hasattr(mask, "dtype"):
            mask = np.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(f"{name}: the mask must be boolean (True where attention is allowed), "
                            f"got dtype {mask.dtype} (mask shape {_shape(mask)})")
        ss = _shape(scores)
        try:
            full = np.broadcast_shapes(_shape(mask), ss)
        except ValueError:
            full = None
        if full != ss:
            raise ValueError(f"{name}: the mask of shape {_shape(mask)} does not broadcast to the "
                             f"scores' shape {ss} (..., Lq, Lk) (q shape {qs}, k shape {ks})")
        if get_array_module(mask) is not xp:
            mask = xp.asarray(mask)
        lowest = 0.5 * float(np.finfo(scores.dtype).min)  # finite: a fully masked row stays NaN-free
        weights = softmax(fnp.where(mask, scores, lowest), axis=-1)
        weights = fnp.where(mask, weights, 0.0)
    else:
        weights = softmax(scores, axis=-1)
    if dropout_rate:
        weights = dropout(weights, dropout_rate, key)
    return fnp.matmul(weights, v)


def _split_heads(x, num_heads):
    s = _shape(x)
    return fnp.swapaxes(fnp.reshape(x, s[:-1] + (num_heads, s[-1] // num_heads)), -2, -3)


def _merge_heads(x):
    s = _shape(x)  # (..., h, L, dh)
    moved = fnp.swapaxes(x, -2, -3)
    return fnp.reshape(moved, s[:-3] + (s[-2], s[-3] * s[-1]))


def multi_head_attention(x_q, x_kv, params, num_heads, mask=None, *, dropout_rate=0.0, key=None):
    """Multi-head attention: project x_q (..., Lq, d_model) and x_kv (..., Lk, d_model) with
    params['wq'], ['wk'], ['wv'] (each (d_model, d_model), dense (in, out) layout, optional biases
    'bq', 'bk', 'bv'), attend in `num_heads` heads of size d_model // num_heads, merge the heads and
    project with params['wo'] (and 'bo').

    `mask` (boolean, True where allowed) is (Lq, Lk), or (..., Lq, Lk) with the batch axes of x_q,
    in which case it is applied to every head; a mask with an explicit head axis
    (..., num_heads or 1, Lq, Lk) is taken as it is when it has one axis more than x_q.
    """
    name = "multi_head_attention"
    qs, kvs = _shape(x_q), _shape(x_kv)
    for needed in ("wq", "wk", "wv", "wo"):
        if needed not in params:
            raise KeyError(f"{name}: params has no {needed!r} (it has {sorted(params)})")
    if len(qs) < 2 or len(kvs) < 2:
        raise ValueError(f"{name}: inputs must be (..., L, d_model), got x_q shape {qs}, "
                         f"x_kv shape {kvs}")
    d_model = _shape(params["wq"])[-1]
    if not isinstance(num_heads, (int, np.integer)) or num_heads < 1 or d_model % num_heads:
        raise ValueError(f"{name}: num_heads={num_heads!r} must be a positive divisor of d_model="
                         f"{d_model} (wq shape {_shape(params['wq'])})")
    q = _split_heads(dense(x_q, params["wq"], params.get("bq")), num_heads)
    k = _split_heads(dense(x_kv, params["wk"], params.get("bk")), num_heads)
    v = _split_heads(dense(x_kv, params["wv"], params.get("bv")), num_heads)
    if mask is not None:
        mask = strip(mask)
        if not hasattr(mask, "ndim"):
            mask = np.asarray(mask)
        if mask.ndim >= 3 and mask.ndim < len(qs) + 1:
            mask = mask[..., None, :, :]
    out = scaled_dot_product_attention(q, k, v, mask, dropout_rate=dropout_rate, key=key)
    return dense(_merge_heads(out), params["wo"], params.get("bo"))


def cached_self_attention(x, params, num_heads, cache=None):
    """Causal multi-head self-attention of new positions over earlier ones, for decoding token by
    token: x (..., n, d_model) are the positions that follow those in `cache` (a dict with the
    earlier keys and values, "k" and "v" of shape (..., num_heads, L, d_model // num_heads), or
    None when there are none). Each new position attends to every cached one and to the new ones
    up to itself. Returns (output (..., n, d_model), the cache extended by the new positions).

    With the whole sequence at once and no cache this equals `multi_head_attention(x, x, params,
    num_heads, causal_mask(n))`; fed in pieces, each piece's keys and values are computed once.
    """
    name = "cached_self_attention"
    xs = _shape(x)
    d_model = _shape(params["wq"])[-1]
    if len(xs) < 2 or xs[-1] != _shape(params["wq"])[0]:
        raise ValueError(f"{name}: x must be (..., n, d_model) matching wq {_shape(params['wq'])}, "
                         f"got x shape {xs}")
    if not isinstance(num_heads, (int, np.integer)) or num_heads < 1 or d_model % num_heads:
        raise ValueError(f"{name}: num_heads={num_heads!r} must be a positive divisor of d_model={d_model}")
    q = _split_heads(dense(x, params["wq"], params.get("bq")), num_heads)
    k = _split_heads(dense(x, params["wk"], params.get("bk")), num_heads)
    v = _split_heads(dense(x, params["wv"], params.get("bv")), num_heads)
    if cache is not None:
        want = _shape(q)[:-2]
        if _shape(cache["k"])[:-2] != want or _shape(cache["k"])[-1] != _shape(q)[-1]:
            raise ValueError(f"{name}: the cache's keys have shape {_shape(cache['k'])}, which does not "
                             f"fit the new positions' {_shape(k)}")
        k = fnp.concatenate([cache["k"], k], axis=-2)
        v = fnp.concatenate([cache["v"], v], axis=-2)
    mask = causal_mask(xs[-2], _shape(k)[-2])
    out = scaled_dot_product_attention(q, k, v, mask)
    return dense(_merge_heads(out), params["wo"], params.get("bo")), {"k": k, "v": v}
