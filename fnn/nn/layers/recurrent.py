"""Recurrent layers over whole sequences, batch first: RNN (Elman), LSTM, GRU.

Input (N, T, features), output (N, T, hidden). The input may be `(x, carry0)` to give an initial
state (h for RNN and GRU, (h, c) for LSTM); with `return_carry=True` the output is `(y, carry)`.
Gates follow PyTorch's order (LSTM: i, f, g, o; GRU: r, z, n) and its two biases, with weights in
fnn's dense layout (in, out): `w_ih` (features, gates*hidden), `w_hh` (hidden, gates*hidden).
The input projection of all time steps is one matrix product (one `dense`); the recurrence over
time is then one primitive with a hand-written backward pass (fnn.nn.functional.recurrent).
"""

from __future__ import annotations

import attrs

from fnn import numpy as fnp
from fnn import random
from fnn.nn import initializers as init
from fnn.nn.functional.dense import dense
from fnn.nn.functional.recurrent import gru_sequence, lstm_sequence, rnn_sequence
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
        y, carry = self._sequence(projected, carry, params["w_hh"], params["b_hh"])
        return ((y, carry) if self.return_carry else y), state

    def _start(self, x):
        return self._initial_carry(x)


@attrs.frozen
class RNN(_Recurrent):
    """Elman RNN: h_t = tanh(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh)."""

    kind = "rnn"

    def _sequence(self, projected, h0, w_hh, b_hh):
        return rnn_sequence(projected, h0, w_hh, b_hh)


@attrs.frozen
class LSTM(_Recurrent):
    """Long short-term memory; the carry is (h, c)."""

    kind = "lstm"
    gates = 4

    def _start(self, x):
        zeros = self._initial_carry(x)
        return (zeros, zeros)

    def _sequence(self, projected, carry, w_hh, b_hh):
        h0, c0 = carry
        return lstm_sequence(projected, h0, c0, w_hh, b_hh)


@attrs.frozen
class GRU(_Recurrent):
    """Gated recurrent unit (PyTorch's formulation: the reset gate scales W_hn h + b_hn)."""

    kind = "gru"
    gates = 3

    def _sequence(self, projected, h0, w_hh, b_hh):
        return gru_sequence(projected, h0, w_hh, b_hh)
