"""Hand-written NumPy forward and backward passes: the floor every other stack is compared with.

Convolution is im2col by a loop over kernel offsets plus one matrix product; max pooling keeps the
argmax offset of each window; no loops over pixels. The convolutional workloads keep activations
channel-major, (C, N, H, W), so that every convolution's GEMMs read and write contiguous
(C, N*H*W) matrices and no activation is transposed between layers. Temporaries that are the same
from step to step (padded inputs, column buffers, col2im sums, the SGD update) live in a workspace
owned by the step function and are reused, since a fresh multi-megabyte array costs a page fault
per 4 KB; the gradients returned are fresh arrays. Parameters are flat dicts (see common.py)
updated in place. Every function works in any float dtype (the suite checks the gradients of this
module against central differences in float64).

Each workload function returns (init, step): init(weights) -> params, step(params, batch) ->
(params, loss, grads).
"""

from __future__ import annotations

import numpy as np

from .common import LR, resnet_blocks


def flat_grads(grads):
    return {k: np.asarray(v) for k, v in grads.items()}


class Workspace:
    """Named scratch buffers kept from one step to the next (never returned to the caller)."""

    def __init__(self):
        self.bufs = {}

    def __call__(self, key, shape, dtype, zero=False):
        """The buffer `key` (contents left from the last step); zero=True zeroes it only when it
        is new (for pad borders that no step writes)."""
        b = self.bufs.get(key)
        if b is None or b.shape != tuple(shape) or b.dtype != dtype:
            b = self.bufs[key] = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
        return b


def _sgd(params, grads, lr, ws=None):
    for k, g in grads.items():
        if ws is None:
            params[k] -= lr * g
        else:  # lr * g into a reused buffer: no fresh temporary the size of the weights
            t = ws(f"sgd.{k}", g.shape, g.dtype)
            np.multiply(g, lr, out=t)
            params[k] -= t
    return params


def _init(weights):
    return {k: np.array(v) for k, v in weights.items()}


# ------------------------------------------------------------------------------------------------
# building blocks: forward returns (y, cache); backward returns the input gradient and fills grads


def dense_fwd(x, w, b):
    y = x @ w
    y += b  # in place: y is ours
    return y


def dense_bwd(g, x, w, grads, name, need_dx=True):
    x2 = x.reshape(-1, x.shape[-1])
    g2 = g.reshape(-1, g.shape[-1])
    grads[f"{name}.w"] = x2.T @ g2  # a transposed operand is a BLAS flag, not a copy
    grads[f"{name}.b"] = g2.sum(0)
    return g @ w.T if need_dx else None


def softmax_ce(z, y):
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    n = z.shape[0]
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    s = e.sum(1, keepdims=True)
    loss = np.log(s[:, 0]).sum() - z[np.arange(n), y].sum()
    e /= s * n  # in place: the gradient is e / s / n, minus 1/n at the labels
    e[np.arange(n), y] -= 1.0 / n
    return loss / n, e


# --- convolution on channel-major (C, N, H, W) activations -------------------------------------


def im2col(x, k, stride, pad, ws, key):
    """Columns (C*k*k, N*OH*OW) of x (C, N, H, W) (any strides: the copy into the padded buffer
    or the columns does the layout change)."""
    c, n, h, w = x.shape
    oh = (h + 2 * pad - k) // stride + 1
    ow = (w + 2 * pad - k) // stride + 1
    if pad:  # reused buffer: its zero border is written once, only the interior every step
        xp = ws(f"{key}.pad", (c, n, h + 2 * pad, w + 2 * pad), x.dtype, zero=True)
        xp[:, :, pad:pad + h, pad:pad + w] = x
    else:
        xp = x
    cols = ws(f"{key}.cols", (c, k, k, n, oh, ow), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
    return cols.reshape(c * k * k, n * oh * ow), oh, ow


def conv_fwd(x, w, b, stride, pad, ws, key):
    """x (C, N, H, W) -> y (O, N, OH, OW): one GEMM straight into the channel-major output."""
    o, _, k, _ = w.shape
    cols, oh, ow = im2col(x, k, stride, pad, ws, key)
    y = w.reshape(o, -1) @ cols
    if b is not None:
        y += b[:, None]
    c, n, h, wd = x.shape
    return y.reshape(o, n, oh, ow), ((c, n, h, wd), cols, oh, ow, stride, pad, key)


def conv_bwd(g, cache, w, grads, name, ws, bias=True, need_dx=True):
    """g (O, N, OH, OW) -> dx (C, N, H, W) (a view of a reused buffer: use it before the next
    step). With stride 1 the col2im runs on "wide rows": g is widened with zero columns to the
    padded width, so that each kernel offset adds one long contiguous run of the flat padded
    image (the zero columns add nothing where a run wraps to the next row)."""
    (c, n, h, wd), cols, oh, ow, stride, pad, key = cache
    o, _, k, _ = w.shape
    g2 = g.reshape(o, -1)
    grads[f"{name}.w"] = (g2 @ cols.T).reshape(w.shape)
    if bias:
        grads[f"{name}.b"] = g2.sum(1)
    if not need_dx:
        return None
    w2t = w.reshape(o, -1).T
    hp, wp = h + 2 * pad, wd + 2 * pad
    if stride == 1:
        if wp != ow:  # widen g to (O, N, OH, WP), zero columns past OW
            gw = ws(f"{key}.gwide", (o, n, oh, wp), g.dtype, zero=True)
            gw[..., :ow] = g
            g2 = gw.reshape(o, -1)
        m = oh * wp
        dcols = (w2t @ g2).reshape(c, k, k, n, m)
        length = max((k - 1) * wp + (k - 1) + m, hp * wp)
        buf = ws(f"{key}.dx", (c, n, length), g.dtype)
        buf.fill(0)
        for i in range(k):
            for j in range(k):
                s0 = i * wp + j
                buf[:, :, s0:s0 + m] += dcols[:, i, j]
        dxp = buf[:, :, :hp * wp].reshape(c, n, hp, wp)
    else:
        dcols = (w2t @ g2).reshape(c, k, k, n, oh, ow)
        dxp = ws(f"{key}.dx", (c, n, hp, wp), g.dtype)
        dxp.fill(0)
        for i in range(k):
            for j in range(k):
                dxp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += dcols[:, i, j]
    return dxp[:, :, pad:pad + h, pad:pad + wd] if pad else dxp


def maxpool2_fwd(x):
    """2x2 max pooling of (C, N, H, W) and the argmax offset (uint8) of each window, kept with
    arithmetic instead of masked writes: a strict `>` marks offsets that beat every earlier one,
    and the largest marked offset is the first maximum."""
    v = [x[:, :, i::2, j::2] for i in (0, 1) for j in (0, 1)]
    best = v[0].copy()
    idx = np.zeros(best.shape, np.uint8)
    for kk in (1, 2, 3):
        mark = np.greater(v[kk], best).view(np.uint8)
        np.maximum(best, v[kk], out=best)
        mark *= kk
        np.maximum(idx, mark, out=idx)
    return best, (x.shape, idx)


def maxpool2_bwd(g, cache):
    """The windows tile the input, so each offset's cells are written once, g * (idx == k): no
    zeroing, no scatter."""
    shape, idx = cache
    dx = np.empty(shape, g.dtype)
    for kk, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        np.multiply(g, idx == kk, out=dx[:, :, i::2, j::2])
    return dx


def _csum(a, b=None):
    """Per-channel sum over a (C, M) matrix of a (or a * b, without the temporary)."""
    return np.einsum("cm->c", a) if b is None else np.einsum("cm,cm->c", a, b)


def bn_fwd(x, scale, bias, eps=1e-5):
    """Batch norm of channel-major x (C, N, H, W): contiguous per-channel rows."""
    c = x.shape[0]
    x2 = x.reshape(c, -1)
    m = x2.shape[1]
    xhat = x2 - (_csum(x2) * (1.0 / m))[:, None]
    inv = 1.0 / np.sqrt(_csum(xhat, xhat) * (1.0 / m) + eps)
    xhat *= inv[:, None]  # in place: the centred input becomes x-hat
    y = xhat * scale[:, None]
    y += bias[:, None]
    return y.reshape(x.shape), (xhat, inv)


def bn_bwd(g, cache, scale, grads, name):
    """dx = k * (g - sum(g) / m - xhat * sum(g * xhat) / m), k = scale * inv_std."""
    xhat, inv = cache
    c, m = xhat.shape
    g2 = g.reshape(c, -1)
    db = _csum(g2)
    ds = _csum(g2, xhat)
    grads[f"{name}.scale"] = ds
    grads[f"{name}.bias"] = db
    k = scale * inv
    dx = g2 * k[:, None]
    t = xhat * (k * ds * (1.0 / m))[:, None]
    dx -= t
    dx -= (k * db * (1.0 / m))[:, None]
    return dx.reshape(g.shape)


def relu_(a):
    """ReLU in place (the pre-activation is ours); returns (a, mask a > 0)."""
    mask = a > 0
    np.maximum(a, 0, out=a)
    return a, mask


# ------------------------------------------------------------------------------------------------


def mlp(lr=LR["mlp"]):
    ws = Workspace()

    def step(p, batch):
        x, y = batch["x"], batch["y"]
        a1 = dense_fwd(x, p["fc1.w"], p["fc1.b"])
        h1 = np.maximum(a1, 0)
        z = dense_fwd(h1, p["fc2.w"], p["fc2.b"])
        loss, dz = softmax_ce(z, y)
        grads = {}
        dh1 = dense_bwd(dz, h1, p["fc2.w"], grads, "fc2")
        dh1 *= a1 > 0
        dense_bwd(dh1, x, p["fc1.w"], grads, "fc1", need_dx=False)
        return _sgd(p, grads, lr, ws), loss, grads
    return _init, step


def lenet(lr=LR["lenet"]):
    ws = Workspace()

    def step(p, batch):
        x, y = batch["x"], batch["y"]
        n = x.shape[0]
        xc = x.transpose(1, 0, 2, 3)  # a view: the padded copy in im2col makes it channel-major
        a1, c1 = conv_fwd(xc, p["conv1.w"], p["conv1.b"], 1, 2, ws, "conv1")
        r1, k1 = relu_(a1)
        m1, pc1 = maxpool2_fwd(r1)
        a2, c2 = conv_fwd(m1, p["conv2.w"], p["conv2.b"], 1, 0, ws, "conv2")
        r2, k2 = relu_(a2)
        m2, pc2 = maxpool2_fwd(r2)
        f = m2.transpose(1, 0, 2, 3).reshape(n, -1)  # (N, C*H*W), the flatten order of the weights
        h3, k3 = relu_(dense_fwd(f, p["fc1.w"], p["fc1.b"]))
        h4, k4 = relu_(dense_fwd(h3, p["fc2.w"], p["fc2.b"]))
        z = dense_fwd(h4, p["fc3.w"], p["fc3.b"])
        loss, dz = softmax_ce(z, y)
        grads = {}
        d = dense_bwd(dz, h4, p["fc3.w"], grads, "fc3")
        d *= k4
        d = dense_bwd(d, h3, p["fc2.w"], grads, "fc2")
        d *= k3
        d = dense_bwd(d, f, p["fc1.w"], grads, "fc1").reshape(n, *m2.shape[:1], *m2.shape[2:])
        d = maxpool2_bwd(d.transpose(1, 0, 2, 3), pc2)
        d *= k2
        d = conv_bwd(d, c2, p["conv2.w"], grads, "conv2", ws)
        d = maxpool2_bwd(d, pc1)
        d *= k1
        conv_bwd(d, c1, p["conv1.w"], grads, "conv1", ws, need_dx=False)
        return _sgd(p, grads, lr, ws), loss, grads
    return _init, step


def tiny(lr=LR["tiny"]):
    def step(p, batch):
        x, y = batch["x"], batch["y"]
        h1 = np.tanh(dense_fwd(x, p["fc1.w"], p["fc1.b"]))
        h2 = np.tanh(dense_fwd(h1, p["fc2.w"], p["fc2.b"]))
        z = dense_fwd(h2, p["fc3.w"], p["fc3.b"])
        n = z.size
        loss = (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).sum() / n
        dz = (1.0 / (1.0 + np.exp(-z)) - y) / n
        grads = {}
        d = dense_bwd(dz, h2, p["fc3.w"], grads, "fc3") * (1 - h2 * h2)
        d = dense_bwd(d, h1, p["fc2.w"], grads, "fc2") * (1 - h1 * h1)
        dense_bwd(d, x, p["fc1.w"], grads, "fc1", need_dx=False)
        return _sgd(p, grads, lr), loss, grads
    return _init, step


def rnn(lr=LR["rnn"]):
    def step(p, batch):
        x, y = batch["x"], batch["y"]
        n, t_len, _ = x.shape
        w_hh = p["rnn.w_hh"]
        xp = x @ p["rnn.w_ih"] + (p["rnn.b_ih"] + p["rnn.b_hh"])  # (N, T, H)
        hs = np.empty((n, t_len + 1, w_hh.shape[0]), x.dtype)    # hs[:, 0] = h_0 = 0
        hs[:, 0] = 0
        for t in range(t_len):
            hs[:, t + 1] = np.tanh(xp[:, t] + hs[:, t] @ w_hh)
        h = hs[:, 1:]
        pred = h @ p["out.w"] + p["out.b"]
        diff = pred - y
        loss = (diff * diff).sum() / diff.size
        dpred = diff * (2.0 / diff.size)
        grads = {}
        dh = dense_bwd(dpred, h, p["out.w"], grads, "out")
        da = np.empty_like(dh)
        carry = np.zeros_like(dh[:, 0])
        for t in range(t_len - 1, -1, -1):
            da[:, t] = (dh[:, t] + carry) * (1 - h[:, t] * h[:, t])
            carry = da[:, t] @ w_hh.T
        da2 = da.reshape(-1, da.shape[-1])
        grads["rnn.w_hh"] = hs[:, :-1].reshape(-1, da.shape[-1]).T @ da2
        grads["rnn.w_ih"] = x.reshape(-1, x.shape[-1]).T @ da2
        grads["rnn.b_ih"] = da2.sum(0)
        grads["rnn.b_hh"] = grads["rnn.b_ih"].copy()
        return _sgd(p, grads, lr), loss, grads
    return _init, step


def resnet(lr=LR["resnet"]):
    blocks = resnet_blocks()
    ws = Workspace()

    def step(p, batch):
        x, y = batch["x"], batch["y"]
        tape = []
        a, cs = conv_fwd(x.transpose(1, 0, 2, 3), p["stem.w"], None, 1, 1, ws, "stem")
        a, bs = bn_fwd(a, p["stem_bn.scale"], p["stem_bn.bias"])
        h, stem_mask = relu_(a)
        for name, cin, cout, stride in blocks:
            pre = f"{name}.body"
            u, c1 = conv_fwd(h, p[f"{pre}.conv1.w"], None, stride, 1, ws, f"{pre}.conv1")
            u, b1 = bn_fwd(u, p[f"{pre}.bn1.scale"], p[f"{pre}.bn1.bias"])
            u, m1 = relu_(u)
            u, c2 = conv_fwd(u, p[f"{pre}.conv2.w"], None, 1, 1, ws, f"{pre}.conv2")
            u, b2 = bn_fwd(u, p[f"{pre}.bn2.scale"], p[f"{pre}.bn2.bias"])
            short = None
            if stride != 1 or cin != cout:
                s, sc = conv_fwd(h, p[f"{name}.shortcut.conv.w"], None, stride, 0, ws, f"{name}.shortcut")
                s, sb = bn_fwd(s, p[f"{name}.shortcut.bn.scale"], p[f"{name}.shortcut.bn.bias"])
                short = (sc, sb)
                u += s
            else:
                u += h
            h, m_out = relu_(u)
            tape.append((name, c1, b1, m1, c2, b2, short, m_out))
        c, n = h.shape[:2]
        hw = h.shape[2] * h.shape[3]
        f = h.reshape(c, n, hw).sum(2).T * (1.0 / hw)  # global average pool -> (N, C)
        z = dense_fwd(f, p["fc.w"], p["fc.b"])
        loss, dz = softmax_ce(z, y)
        grads = {}
        df = dense_bwd(dz, f, p["fc.w"], grads, "fc")
        dh = np.broadcast_to((df.T * (1.0 / hw))[:, :, None, None], h.shape)
        for name, c1, b1, m1, c2, b2, short, m_out in reversed(tape):
            pre = f"{name}.body"
            du = dh * m_out
            if short is not None:
                sc, sb = short
                ds = bn_bwd(du, sb, p[f"{name}.shortcut.bn.scale"], grads, f"{name}.shortcut.bn")
                dh_in = conv_bwd(ds, sc, p[f"{name}.shortcut.conv.w"], grads, f"{name}.shortcut.conv", ws,
                                 bias=False)
            else:
                dh_in = du
            d = bn_bwd(du, b2, p[f"{pre}.bn2.scale"], grads, f"{pre}.bn2")
            d = conv_bwd(d, c2, p[f"{pre}.conv2.w"], grads, f"{pre}.conv2", ws, bias=False) * m1
            d = bn_bwd(d, b1, p[f"{pre}.bn1.scale"], grads, f"{pre}.bn1")
            dh = conv_bwd(d, c1, p[f"{pre}.conv1.w"], grads, f"{pre}.conv1", ws, bias=False) + dh_in
        d = bn_bwd(dh * stem_mask, bs, p["stem_bn.scale"], grads, "stem_bn")
        conv_bwd(d, cs, p["stem.w"], grads, "stem", ws, bias=False, need_dx=False)
        return _sgd(p, grads, lr, ws), loss, grads
    return _init, step


WORKLOADS = {"mlp": mlp, "lenet": lenet, "tiny": tiny, "rnn": rnn, "resnet": resnet}
