"""Recurrences over whole sequences, one primitive each: Elman RNN, LSTM and GRU.

Each function takes the input projection of every time step at once, `projected = x @ w_ih + b_ih`
of shape (N, T, G) (batch first; one `dense` call before the recurrence), the initial carry, and
the recurrent weight `w_hh` (H, G) and bias `b_hh` (G,); it returns the outputs (N, T, H) and the
final carry. Gates follow PyTorch's order (LSTM: i, f, g, o; GRU: r, z, n).

The forward pass is a plain loop over time that writes every hidden state into one preallocated
(N, T, H) array (the output; nothing else is kept). The backward pass is hand-written and computes
the cotangents of all inputs together: gate activations (LSTM, GRU) are recomputed from the kept
hidden states, a loop back over time accumulates the carry's cotangent while it fills the (N, T, G)
cotangent of `projected`, returned as a whole, and `w_hh`'s cotangent is then one matrix product
over all steps. Large temporaries are avoided on purpose: a fresh (N, T, G) array costs page
faults on first touch, which can cost more than the arithmetic.

Fast path and higher order: when nothing is traced at an enclosing level (the cotangent, the
outputs and the arguments are all plain arrays, the usual case), the backward loop runs in raw
array code (NumPy or CuPy, whichever holds the inputs). When an enclosing transform is active
(grad of grad, `fnn.hessian`, or `fnn.jvp`, which transposes a VJP), some of them are traced
values; the cotangents are then taken with `fnn.vjp` of an equivalent per-step formulation
written with fnn.numpy (the same math), so the enclosing trace records differentiable operations.
"""

from __future__ import annotations

from fnn.autodiff.tracer import Primitive, defvjp, is_traced
from fnn.backend import get_array_module
import fnn.numpy as fnp

__all__ = ["rnn_sequence", "lstm_sequence", "gru_sequence"]


def _shape(a):
    return tuple(getattr(a, "shape", ()))


class _Sequence(Primitive):
    """A several-result primitive whose backward computes the cotangents of all its arguments in
    one pass (`joint(g, ans, *args) -> one cotangent per argument`) instead of one rule each."""

    def __init__(self, fun, joint, name):
        super().__init__(fun, name=name, multiple_results=True)
        self.joint = joint
        n_args = fun.__code__.co_argcount
        # Per-argument rules, for completeness (the backward pass below never calls them).
        defvjp(self, *[self._rule(i) for i in range(n_args)])

    def _rule(self, i):
        return lambda g, ans, *args: self.joint(g, ans, *args)[i]

    def backward(self, node, g):
        grads = self.joint(g.to_tuple(node.ans), node.ans, *node.args)
        return [grads[i] for i in node.argnums]


def _any_traced(*groups):
    for group in groups:
        for v in group:
            if is_traced(v):
                return True
    return False


def _reference_vjp(step_loop, g, args):
    """Cotangents of `step_loop(*args)` (a per-step formulation in fnn.numpy) applied to `g`."""
    from fnn.autodiff.transforms import vjp  # noqa: PLC0415 (only for higher-order derivatives)

    _, vjp_fn = vjp(step_loop, *args)
    return vjp_fn(tuple(g))


def _prev_outer(h0, y, d):
    """sum over n, t of outer(h_{t-1}[n], d[n, t]): the cotangent of w_hh from the cotangents d
    (N, T, G) of the step pre-activations, with h_{-1} = h0 and h_t = y[:, t].

    Without forming [h0, y[:, :-1]] (a copy of the whole sequence): with y and d as (N*T)-row
    matrices, row k of y pairs with row k+1 of d, which is right except where a row of y ends one
    sequence and the row of d starts the next; those N-1 pairs are taken off again, and h0's
    pairs with the first steps added."""
    n, t, h = y.shape
    out = h0.T @ d[:, 0]
    if t > 1:
        yf = y.reshape(n * t, h)
        df = d.reshape(n * t, d.shape[-1])
        out += yf[:-1].T @ df[1:]
        out -= y[:-1, -1].T @ d[1:, 0]
    return out


def _prev_states(xp, h0, y):
    """[h0, y_0, ..., y_{T-2}]: the state entering every step, (N, T, H)."""
    hs = xp.empty(y.shape, y.dtype)
    hs[:, 0] = h0
    hs[:, 1:] = y[:, :-1]
    return hs


def _sigmoid(xp, a, out=None):
    """Logistic sigmoid 1 / (1 + exp(-a)), in place when out is a. The argument is first clipped
    to where exp neither overflows nor makes the result subnormal (beyond that range the sigmoid
    is 0 or 1 to the dtype's precision). Written with exp because NumPy's float32 exp is
    vectorised where its tanh may not be."""
    bound = _EXP_BOUND.get(a.dtype)
    if bound is None:
        import numpy  # noqa: PLC0415 (finfo of a dtype; the same for CuPy arrays)

        info = numpy.finfo(a.dtype)
        bound = float(min(numpy.log(info.max), -numpy.log(info.tiny))) - 1.0
        _EXP_BOUND[a.dtype] = bound
    out = xp.clip(a, -bound, bound, out=out)
    xp.negative(out, out=out)
    xp.exp(out, out=out)
    out += 1.0
    xp.reciprocal(out, out=out)
    return out


_EXP_BOUND: dict = {}


# --- Elman RNN ---------------------------------------------------------------------------------

def _rnn_fun(projected, h0, w_hh, b_hh):
    xp = get_array_module(projected, h0, w_hh, b_hh)
    n, t, h = projected.shape
    dtype = xp.result_type(projected, h0, w_hh, b_hh)
    ys = xp.empty((n, t, h), dtype)
    tmp = xp.empty((n, h), dtype)
    h_prev = h0
    # Small per-step adds rather than one (N, T, H) temporary projected + b_hh: a fresh large
    # array costs page faults on first touch, which outweigh 2 * T small ufunc calls.
    for i in range(t):
        xp.matmul(h_prev, w_hh, out=tmp)
        tmp += projected[:, i]
        tmp += b_hh
        h_prev = ys[:, i]
        xp.tanh(tmp, out=h_prev)
    return ys, h_prev


def _rnn_steps(projected, h0, w_hh, b_hh):
    h = h0
    outs = []
    for x_t in fnp.unstack(projected, axis=1):
        h = fnp.tanh(x_t + fnp.matmul(h, w_hh) + b_hh)
        outs.append(h)
    return fnp.stack(outs, axis=1), h


def _rnn_joint(g, ans, projected, h0, w_hh, b_hh):
    gy, gh = g
    y = ans[0]
    args = (projected, h0, w_hh, b_hh)
    if _any_traced(g, ans, args):
        return _reference_vjp(_rnn_steps, g, args)
    xp = get_array_module(y, gy)
    n, t, h = y.shape
    da = xp.multiply(y, y)                    # tanh' = 1 - y^2 for every step (one new array),
    xp.subtract(1.0, da, out=da)              # then scaled in place by the loop below
    carry = xp.array(gh, dtype=da.dtype, copy=True)
    carry += gy[:, t - 1]
    w_t = w_hh.T
    for i in range(t - 1, -1, -1):
        d = da[:, i]
        d *= carry
        if i:
            xp.matmul(d, w_t, out=carry)
            carry += gy[:, i - 1]
    dh0 = da[:, 0] @ w_t
    dw = _prev_outer(h0, y, da)
    db = da.reshape(n * t, h).sum(axis=0)
    return da, dh0, dw, db


_rnn = _Sequence(_rnn_fun, _rnn_joint, "fnn.nn.functional.rnn_sequence")


def _check(name, projected, carries, w_hh, b_hh, gates):
    ps, ws = _shape(projected), _shape(w_hh)
    if len(ps) != 3:
        raise ValueError(f"{name}: projected must be (N, T, {gates}*H), got shape {ps}")
    if len(ws) != 2 or ws[1] != gates * ws[0]:
        raise ValueError(f"{name}: w_hh must be (H, {gates}*H), got shape {ws}")
    n, t, g = ps
    h = ws[0]
    if g != gates * h:
        raise ValueError(f"{name}: projected has {g} features on its last axis but w_hh {ws} needs "
                         f"{gates * h}")
    if t < 1:
        raise ValueError(f"{name}: the sequence must have at least one time step, got shape {ps}")
    if _shape(b_hh) != (gates * h,):
        raise ValueError(f"{name}: b_hh must have shape ({gates * h},), got {_shape(b_hh)}")
    for what, c in carries:
        if _shape(c) != (n, h):
            raise ValueError(f"{name}: {what} must have shape ({n}, {h}), got {_shape(c)}")


def rnn_sequence(projected, h0, w_hh, b_hh):
    """Elman RNN over a whole sequence: h_t = tanh(projected_t + h_{t-1} @ w_hh + b_hh).

    `projected` (N, T, H) is the input projection of every step, h0 (N, H), w_hh (H, H),
    b_hh (H,). Returns (outputs (N, T, H), final state h_T (N, H)). One primitive.
    """
    _check("rnn_sequence", projected, [("h0", h0)], w_hh, b_hh, 1)
    return _rnn(projected, h0, w_hh, b_hh)


# --- LSTM --------------------------------------------------------------------------------------

def _lstm_cell(xp, a, c_prev, c_out, tmp, h):
    """One LSTM step after the matrix product, in place: the pre-activations `a` (N, 4H) become
    the gate activations (i, f, g, o), and c_out = f * c_prev + i * g."""
    g = a[:, 2 * h:3 * h]
    xp.tanh(g, out=tmp)
    _sigmoid(xp, a, out=a)                                  # i, f, o (g's columns restored next)
    g[...] = tmp
    xp.multiply(a[:, h:2 * h], c_prev, out=c_out)
    tmp *= a[:, :h]
    c_out += tmp


def _lstm_fun(projected, h0, c0, w_hh, b_hh):
    xp = get_array_module(projected, h0, c0, w_hh, b_hh)
    n, t, g4 = projected.shape
    h = g4 // 4
    dtype = xp.result_type(projected, h0, c0, w_hh, b_hh)
    ys = xp.empty((n, t, h), dtype)
    c = xp.array(c0, dtype=dtype, copy=True)
    a = xp.empty((n, g4), dtype)
    tmp = xp.empty((n, h), dtype)
    h_prev = h0
    for i in range(t):
        xp.matmul(h_prev, w_hh, out=a)
        a += projected[:, i]
        a += b_hh
        _lstm_cell(xp, a, c, c, tmp, h)
        h_prev = ys[:, i]
        xp.tanh(c, out=tmp)
        xp.multiply(a[:, 3 * h:], tmp, out=h_prev)
    return ys, h_prev, c


def _lstm_steps(projected, h0, c0, w_hh, b_hh):
    h, c = h0, c0
    outs = []
    for x_t in fnp.unstack(projected, axis=1):
        z = x_t + fnp.matmul(h, w_hh) + b_hh
        i, f, g, o = fnp.split(z, 4, axis=-1)
        c = _fsigmoid(f) * c + _fsigmoid(i) * fnp.tanh(g)
        h = _fsigmoid(o) * fnp.tanh(c)
        outs.append(h)
    return fnp.stack(outs, axis=1), h, c


def _fsigmoid(x):
    return 0.5 * fnp.tanh(0.5 * x) + 0.5


def _lstm_joint(g, ans, projected, h0, c0, w_hh, b_hh):
    gy, gh, gc = g
    y = ans[0]
    args = (projected, h0, c0, w_hh, b_hh)
    if _any_traced(g, ans, args):
        return _reference_vjp(_lstm_steps, g, args)
    xp = get_array_module(projected, gy)
    n, t, g4 = projected.shape
    h = g4 // 4
    dtype = y.dtype
    # Recompute the gates and cell states from the hidden states (the outputs), step by step:
    # the gates go into the buffer that the loop back over time overwrites with the cotangents
    # of the pre-activations, so no (N, T, 4H) array is allocated but the one returned.
    da = xp.empty((n, t, g4), dtype)
    cs = xp.empty((n, t + 1, h), dtype)
    cs[:, 0] = c0
    tmp = xp.empty((n, h), dtype)
    for i in range(t):
        a = da[:, i]
        xp.matmul(h0 if i == 0 else y[:, i - 1], w_hh, out=a)
        a += projected[:, i]
        a += b_hh
        _lstm_cell(xp, a, cs[:, i], cs[:, i + 1], tmp, h)
    carry_h = xp.array(gh, dtype=dtype, copy=True)
    carry_c = xp.array(gc, dtype=dtype, copy=True)
    dh = xp.empty((n, h), dtype)
    tc = xp.empty((n, h), dtype)
    u = xp.empty((n, h), dtype)
    w_t = w_hh.T
    for i in range(t - 1, -1, -1):
        d = da[:, i]
        gi, gf, gg, go = d[:, :h], d[:, h:2 * h], d[:, 2 * h:3 * h], d[:, 3 * h:]
        xp.add(gy[:, i], carry_h, out=dh)
        xp.tanh(cs[:, i + 1], out=tc)
        # dc_t = carry_c + dh * o * (1 - tanh(c)^2)
        xp.multiply(tc, tc, out=u)
        xp.subtract(1.0, u, out=u)
        u *= go
        u *= dh
        carry_c += u
        # o: dh * tanh(c) * o * (1 - o)
        dh *= tc
        xp.subtract(1.0, go, out=u)
        u *= dh
        go *= u
        # f: dc * c_{t-1} * f * (1 - f); then the carry dc_{t-1} = dc * f
        xp.subtract(1.0, gf, out=u)
        u *= gf
        u *= cs[:, i]
        carry_c_f = xp.multiply(carry_c, gf, out=dh)        # dh is free again
        xp.multiply(carry_c, u, out=gf)
        # i and g: dc * g * i * (1 - i) and dc * i * (1 - g^2)
        xp.multiply(carry_c, gi, out=tc)                     # dc * i (tc is free)
        xp.subtract(1.0, gi, out=u)
        u *= gi
        u *= gg
        xp.multiply(carry_c, u, out=gi)
        xp.multiply(gg, gg, out=u)
        xp.subtract(1.0, u, out=u)
        xp.multiply(tc, u, out=gg)
        carry_c, dh = carry_c_f, carry_c                     # swap buffers
        xp.matmul(d, w_t, out=carry_h)                       # dh_{t-1}
    dw = _prev_outer(h0, y, da)
    db = da.reshape(n * t, g4).sum(axis=0)
    return da, carry_h, carry_c, dw, db


_lstm = _Sequence(_lstm_fun, _lstm_joint, "fnn.nn.functional.lstm_sequence")


def lstm_sequence(projected, h0, c0, w_hh, b_hh):
    """LSTM over a whole sequence (PyTorch's gate order i, f, g, o):
    z_t = projected_t + h_{t-1} @ w_hh + b_hh, c_t = σ(f) c_{t-1} + σ(i) tanh(g),
    h_t = σ(o) tanh(c_t).

    `projected` (N, T, 4H), h0 and c0 (N, H), w_hh (H, 4H), b_hh (4H,). Returns
    (outputs (N, T, H), (h_T, c_T)). One primitive.
    """
    _check("lstm_sequence", projected, [("h0", h0), ("c0", c0)], w_hh, b_hh, 4)
    y, h, c = _lstm(projected, h0, c0, w_hh, b_hh)
    return y, (h, c)


# --- GRU ---------------------------------------------------------------------------------------

def _gru_fun(projected, h0, w_hh, b_hh):
    xp = get_array_module(projected, h0, w_hh, b_hh)
    n, t, g3 = projected.shape
    h = g3 // 3
    dtype = xp.result_type(projected, h0, w_hh, b_hh)
    ys = xp.empty((n, t, h), dtype)
    hh = xp.empty((n, g3), dtype)
    rz = xp.empty((n, 2 * h), dtype)
    nn_ = xp.empty((n, h), dtype)
    h_prev = h0
    for i in range(t):
        xp.matmul(h_prev, w_hh, out=hh)
        hh += b_hh
        xp.add(projected[:, i, :2 * h], hh[:, :2 * h], out=rz)
        _sigmoid(xp, rz, out=rz)
        xp.multiply(rz[:, :h], hh[:, 2 * h:], out=nn_)
        nn_ += projected[:, i, 2 * h:]
        xp.tanh(nn_, out=nn_)
        out = ys[:, i]
        xp.subtract(h_prev, nn_, out=out)                 # h' = n + z * (h - n)
        out *= rz[:, h:]
        out += nn_
        h_prev = out
    return ys, h_prev


def _gru_steps(projected, h0, w_hh, b_hh):
    h = h0
    outs = []
    for x_t in fnp.unstack(projected, axis=1):
        hh = fnp.matmul(h, w_hh) + b_hh
        x_r, x_z, x_n = fnp.split(x_t, 3, axis=-1)
        h_r, h_z, h_n = fnp.split(hh, 3, axis=-1)
        r = _fsigmoid(x_r + h_r)
        z = _fsigmoid(x_z + h_z)
        n = fnp.tanh(x_n + r * h_n)
        h = n + z * (h - n)
        outs.append(h)
    return fnp.stack(outs, axis=1), h


def _gru_joint(g, ans, projected, h0, w_hh, b_hh):
    gy, gh = g
    y = ans[0]
    args = (projected, h0, w_hh, b_hh)
    if _any_traced(g, ans, args):
        return _reference_vjp(_gru_steps, g, args)
    xp = get_array_module(projected, gy)
    n, t, g3 = projected.shape
    h = g3 // 3
    hs_prev = _prev_states(xp, h0, y)                     # (N, T, H)
    dtype = hs_prev.dtype
    hs_prev2 = hs_prev.reshape(n * t, h)
    hh = (hs_prev2 @ w_hh).reshape(n, t, g3)
    hh += b_hh
    rz = _sigmoid(xp, projected[:, :, :2 * h] + hh[:, :, :2 * h])
    r, z = rz[:, :, :h], rz[:, :, h:]
    hn = hh[:, :, 2 * h:]
    nv = xp.tanh(projected[:, :, 2 * h:] + r * hn)
    # d(preactivation)/dh_t for the three gates, all steps at once: dP_t = dh_t * coef_t.
    coef = xp.empty((n, t, 3, h), dtype)
    coef[:, :, 2] = (1.0 - z) * (1.0 - nv * nv)                 # n
    coef[:, :, 1] = (hs_prev - nv) * z * (1.0 - z)              # z
    coef[:, :, 0] = coef[:, :, 2] * hn * r * (1.0 - r)          # r
    dp = xp.empty((n, t, 3, h), dtype)
    dhh = xp.empty((n, t, 3, h), dtype)
    carry = xp.array(gh, dtype=dtype, copy=True)
    dh = xp.empty((n, h), dtype)
    w_t = w_hh.T
    for i in range(t - 1, -1, -1):
        xp.add(gy[:, i], carry, out=dh)
        d = dp[:, i]
        xp.multiply(coef[:, i], dh[:, None, :], out=d)
        e = dhh[:, i]
        e[:, :2] = d[:, :2]
        xp.multiply(d[:, 2], r[:, i], out=e[:, 2])
        xp.matmul(e.reshape(n, g3), w_t, out=carry)
        dh *= z[:, i]
        carry += dh
    dhh2 = dhh.reshape(n * t, g3)
    dw = hs_prev2.T @ dhh2
    db = dhh2.sum(axis=0)
    return dp.reshape(n, t, g3), carry, dw, db


_gru = _Sequence(_gru_fun, _gru_joint, "fnn.nn.functional.gru_sequence")


def gru_sequence(projected, h0, w_hh, b_hh):
    """GRU over a whole sequence (PyTorch's formulation and gate order r, z, n):
    hh = h_{t-1} @ w_hh + b_hh, r = σ(x_r + hh_r), z = σ(x_z + hh_z), n = tanh(x_n + r * hh_n),
    h_t = (1 - z) n + z h_{t-1}.

    `projected` (N, T, 3H), h0 (N, H), w_hh (H, 3H), b_hh (3H,). Returns
    (outputs (N, T, H), final state h_T (N, H)). One primitive.
    """
    _check("gru_sequence", projected, [("h0", h0)], w_hh, b_hh, 3)
    return _gru(projected, h0, w_hh, b_hh)
