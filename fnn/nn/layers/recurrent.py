"""Recurrent layers over whole sequences, batch first: RNN (Elman), LSTM, GRU.

Input (N, T, features), output (N, T, hidden). The input may be `(x, carry0)` to give an initial
state (h for RNN and GRU, (h, c) for LSTM); with `return_carry=True` the output is `(y, carry)`.
Gates follow PyTorch's order (LSTM: i, f, g, o; GRU: r, z, n) and its two biases, with weights in
fnn's dense layout (in, out): `w_ih` (features, gates*hidden), `w_hh` (hidden, gates*hidden).
The input projection of all time steps is one matrix product before the loop over time.
"""

from __future__ import annotations

import attrs

from fnn import numpy as fnp
from fnn import random
from fnn.nn import initializers as init
from fnn.nn.functional import activations as A
from fnn.nn.functional.dense import dense
from fnn.nn.module import Module, ShapeDtype

__all__ = ["RNN", "LSTM", "GRU"]


@attrs.frozen
class _Recurrent(Module):
    hidden_size: int = attrs.field(default=None)
    return_carry: bool = attrs.field(default=False, kw_only=True)

    gates = 1

    def init_with_output(self, key, spec):
        if len(spec.shape) != 3:
            raise self.shape_error(f"expects inputs of shape (N, T, features), got shape {spec.shape}")
        features, h, g = spec.shape[2], self.hidden_size, self.gates * self.hidden_size
        uniform = init.torch_default_uniform(h)  # PyTorch: U(-1/sqrt(hidden), 1/sqrt(hidden))
        k = random.split(key, 4)
        params = {
            "w_ih": uniform(k[0], (features, g), spec.dtype),
            "w_hh": uniform(k[1], (h, g), spec.dtype),
            "b_ih": uniform(k[2], (g,), spec.dtype),
            "b_hh": uniform(k[3], (g,), spec.dtype),
        }
        out = ShapeDtype(spec.shape[:2] + (h,), spec.dtype)
        return params, {}, out

    def _initial_carry(self, x):
        return fnp.zeros_like(x[:, 0, :1], shape=(x.shape[0], self.hidden_size))

    def apply(self, params, state, x, *, key=None, train=False):
        carry = None
        if isinstance(x, tuple):
            x, carry = x
        if len(x.shape) != 3 or x.shape[2] != params["w_ih"].shape[0]:
            raise self.shape_error(f"expects inputs of shape (N, T, {params['w_ih'].shape[0]}), got "
                                   f"shape {tuple(x.shape)}")
        projected = dense(x, params["w_ih"], params["b_ih"])  # (N, T, gates*hidden)
        if carry is None:
            carry = self._start(x)
        outputs = []
        for x_t in fnp.unstack(projected, axis=1):
            carry, h = self._step(params, x_t, carry)
            outputs.append(h)
        y = fnp.stack(outputs, axis=1)
        return ((y, carry) if self.return_carry else y), state

    def _start(self, x):
        return self._initial_carry(x)


@attrs.frozen
class RNN(_Recurrent):
    """Elman RNN: h_t = tanh(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh)."""

    kind = "rnn"

    def _step(self, params, x_t, h):
        h = A.tanh(x_t + dense(h, params["w_hh"], params["b_hh"]))
        return h, h


@attrs.frozen
class LSTM(_Recurrent):
    """Long short-term memory; the carry is (h, c)."""

    kind = "lstm"
    gates = 4

    def _start(self, x):
        zeros = self._initial_carry(x)
        return (zeros, zeros)

    def _step(self, params, x_t, carry):
        h, c = carry
        z = x_t + dense(h, params["w_hh"], params["b_hh"])
        i, f, g, o = fnp.split(z, 4, axis=-1)
        c = A.sigmoid(f) * c + A.sigmoid(i) * A.tanh(g)
        h = A.sigmoid(o) * A.tanh(c)
        return (h, c), h


@attrs.frozen
class GRU(_Recurrent):
    """Gated recurrent unit (PyTorch's formulation: the reset gate scales W_hn h + b_hn)."""

    kind = "gru"
    gates = 3

    def _step(self, params, x_t, h):
        hh = dense(h, params["w_hh"], params["b_hh"])
        x_r, x_z, x_n = fnp.split(x_t, 3, axis=-1)
        h_r, h_z, h_n = fnp.split(hh, 3, axis=-1)
        r = A.sigmoid(x_r + h_r)
        z = A.sigmoid(x_z + h_z)
        n = A.tanh(x_n + r * h_n)
        h = (1.0 - z) * n + z * h
        return h, h

