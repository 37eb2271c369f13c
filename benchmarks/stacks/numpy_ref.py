"""Hand-written NumPy forward and backward passes: the floor every other stack is compared with.

Convolution is im2col by a loop over kernel offsets plus one matrix product; max pooling is argmax
plus scatter; no loops over pixels. Parameters are flat dicts (see common.py) updated in place by
`p -= lr * g`. Every function works in any float dtype (the suite checks the gradients of this
module against central differences in float64).

Each workload function returns (init, step): init(weights) -> params, step(params, batch) ->
(params, loss, grads).
"""

from __future__ import annotations

import numpy as np

from .common import LR, resnet_blocks


def flat_grads(grads):
    return {k: np.asarray(v) for k, v in grads.items()}


def _sgd(params, grads, lr):
    for k, g in grads.items():
        params[k] -= lr * g
    return params


def _init(weights):
    return {k: np.array(v) for k, v in weights.items()}


# ------------------------------------------------------------------------------------------------
# building blocks: forward returns (y, cache); backward returns the input gradient and fills grads


def dense_fwd(x, w, b):
    return x @ w + b


def dense_bwd(g, x, w, grads, name, need_dx=True):
    x2 = x.reshape(-1, x.shape[-1])
    g2 = g.reshape(-1, g.shape[-1])
    grads[f"{name}.w"] = x2.T @ g2
    grads[f"{name}.b"] = g2.sum(0)
    return g @ w.T if need_dx else None


def softmax_ce(z, y):
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    n = z.shape[0]
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    s = e.sum(1, keepdims=True)
    loss = np.log(s[:, 0]).sum() - z[np.arange(n), y].sum()
    dz = e / s
    dz[np.arange(n), y] -= 1
    return loss / n, dz / n


def im2col(x, k, stride, pad):
    n, c, h, w = x.shape
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - k) // stride + 1
    ow = (w + 2 * pad - k) // stride + 1
    cols = np.empty((c, k, k, n, oh, ow), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride].transpose(1, 0, 2, 3)
    return cols.reshape(c * k * k, n * oh * ow), oh, ow


def col2im(dcols, x_shape, k, stride, pad, oh, ow):
    n, c, h, w = x_shape
    dx = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dcols.dtype)
    dcols = dcols.reshape(c, k, k, n, oh, ow)
    for i in range(k):
        for j in range(k):
            dx[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += dcols[:, i, j].transpose(1, 0, 2, 3)
    return dx[:, :, pad:pad + h, pad:pad + w] if pad else dx


def conv_fwd(x, w, b, stride=1, pad=0):
    o, _, k, _ = w.shape
    cols, oh, ow = im2col(x, k, stride, pad)
    y = (w.reshape(o, -1) @ cols).reshape(o, x.shape[0], oh, ow).transpose(1, 0, 2, 3)
    if b is not None:
        y = y + b[None, :, None, None]
    return y, (x.shape, cols, oh, ow, stride, pad)


def conv_bwd(g, cache, w, grads, name, bias=True, need_dx=True):
    x_shape, cols, oh, ow, stride, pad = cache
    o, _, k, _ = w.shape
    g2 = g.transpose(1, 0, 2, 3).reshape(o, -1)
    grads[f"{name}.w"] = (g2 @ cols.T).reshape(w.shape)
    if bias:
        grads[f"{name}.b"] = g2.sum(1)
    if not need_dx:
        return None
    return col2im(w.reshape(o, -1).T @ g2, x_shape, k, stride, pad, oh, ow)


def maxpool2_fwd(x):
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    idx = win.argmax(-1)[..., None]
    return np.take_along_axis(win, idx, -1)[..., 0], (x.shape, idx)


def maxpool2_bwd(g, cache):
    (n, c, h, w), idx = cache
    dwin = np.zeros(g.shape + (4,), g.dtype)
    np.put_along_axis(dwin, idx, g[..., None], -1)
    return dwin.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


def bn_fwd(x, scale, bias, eps=1e-5):
    mean = x.mean((0, 2, 3), keepdims=True)
    xc = x - mean
    var = (xc * xc).mean((0, 2, 3), keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = xc * inv
    return xhat * scale[None, :, None, None] + bias[None, :, None, None], (xhat, inv)


def bn_bwd(g, cache, scale, grads, name):
    xhat, inv = cache
    m = g.size // g.shape[1]
    db = g.sum((0, 2, 3))
    ds = (g * xhat).sum((0, 2, 3))
    grads[f"{name}.scale"] = ds
    grads[f"{name}.bias"] = db
    k = (scale * inv[0, :, 0, 0])[None, :, None, None]
    return k * (g - (db / m)[None, :, None, None] - xhat * (ds / m)[None, :, None, None])


# ------------------------------------------------------------------------------------------------


def mlp(lr=LR["mlp"]):
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
        return _sgd(p, grads, lr), loss, grads
    return _init, step


def lenet(lr=LR["lenet"]):
    def step(p, batch):
        x, y = batch["x"], batch["y"]
        a1, c1 = conv_fwd(x, p["conv1.w"], p["conv1.b"], pad=2)
        r1 = np.maximum(a1, 0)
        m1, pc1 = maxpool2_fwd(r1)
        a2, c2 = conv_fwd(m1, p["conv2.w"], p["conv2.b"])
        r2 = np.maximum(a2, 0)
        m2, pc2 = maxpool2_fwd(r2)
        f = m2.reshape(m2.shape[0], -1)
        a3 = dense_fwd(f, p["fc1.w"], p["fc1.b"])
        h3 = np.maximum(a3, 0)
        a4 = dense_fwd(h3, p["fc2.w"], p["fc2.b"])
        h4 = np.maximum(a4, 0)
        z = dense_fwd(h4, p["fc3.w"], p["fc3.b"])
        loss, dz = softmax_ce(z, y)
        grads = {}
        d = dense_bwd(dz, h4, p["fc3.w"], grads, "fc3") * (a4 > 0)
        d = dense_bwd(d, h3, p["fc2.w"], grads, "fc2") * (a3 > 0)
        d = dense_bwd(d, f, p["fc1.w"], grads, "fc1").reshape(m2.shape)
        d = maxpool2_bwd(d, pc2) * (a2 > 0)
        d = conv_bwd(d, c2, p["conv2.w"], grads, "conv2")
        d = maxpool2_bwd(d, pc1) * (a1 > 0)
        conv_bwd(d, c1, p["conv1.w"], grads, "conv1", need_dx=False)
        return _sgd(p, grads, lr), loss, grads
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

    def step(p, batch):
        x, y = batch["x"], batch["y"]
        tape = []
        a, cs = conv_fwd(x, p["stem.w"], None, 1, 1)
        a, bs = bn_fwd(a, p["stem_bn.scale"], p["stem_bn.bias"])
        h = np.maximum(a, 0)
        stem_mask = a > 0
        for name, cin, cout, stride in blocks:
            pre = f"{name}.body"
            u, c1 = conv_fwd(h, p[f"{pre}.conv1.w"], None, stride, 1)
            u, b1 = bn_fwd(u, p[f"{pre}.bn1.scale"], p[f"{pre}.bn1.bias"])
            m1 = u > 0
            u = u * m1
            u, c2 = conv_fwd(u, p[f"{pre}.conv2.w"], None, 1, 1)
            u, b2 = bn_fwd(u, p[f"{pre}.bn2.scale"], p[f"{pre}.bn2.bias"])
            short = None
            if stride != 1 or cin != cout:
                s, sc = conv_fwd(h, p[f"{name}.shortcut.conv.w"], None, stride, 0)
                s, sb = bn_fwd(s, p[f"{name}.shortcut.bn.scale"], p[f"{name}.shortcut.bn.bias"])
                short = (sc, sb)
                u = u + s
            else:
                u = u + h
            m_out = u > 0
            h = u * m_out
            tape.append((name, c1, b1, m1, c2, b2, short, m_out))
        hw = h.shape[2] * h.shape[3]
        f = h.mean((2, 3))
        z = dense_fwd(f, p["fc.w"], p["fc.b"])
        loss, dz = softmax_ce(z, y)
        grads = {}
        df = dense_bwd(dz, f, p["fc.w"], grads, "fc")
        dh = np.broadcast_to((df / hw)[:, :, None, None], h.shape)
        for name, c1, b1, m1, c2, b2, short, m_out in reversed(tape):
            pre = f"{name}.body"
            du = dh * m_out
            if short is not None:
                sc, sb = short
                ds = bn_bwd(du, sb, p[f"{name}.shortcut.bn.scale"], grads, f"{name}.shortcut.bn")
                dh_in = conv_bwd(ds, sc, p[f"{name}.shortcut.conv.w"], grads, f"{name}.shortcut.conv", bias=False)
            else:
                dh_in = du
            d = bn_bwd(du, b2, p[f"{pre}.bn2.scale"], grads, f"{pre}.bn2")
            d = conv_bwd(d, c2, p[f"{pre}.conv2.w"], grads, f"{pre}.conv2", bias=False) * m1
            d = bn_bwd(d, b1, p[f"{pre}.bn1.scale"], grads, f"{pre}.bn1")
            dh = dh_in + conv_bwd(d, c1, p[f"{pre}.conv1.w"], grads, f"{pre}.conv1", bias=False)
        d = bn_bwd(dh * stem_mask, bs, p["stem_bn.scale"], grads, "stem_bn")
        conv_bwd(d, cs, p["stem.w"], grads, "stem", bias=False, need_dx=False)
        return _sgd(p, grads, lr), loss, grads
    return _init, step


WORKLOADS = {"mlp": mlp, "lenet": lenet, "tiny": tiny, "rnn": rnn, "resnet": resnet}
