"""Shape-only initialisation: `Module.init_shapes` gives the shapes and dtypes of `init`'s trees
without allocating them, for every layer of the catalogue."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import fnn
from fnn import nn

S = nn.ShapeDtype

CATALOGUE = [
    (nn.Dense(7), S((4, 5))),
    (nn.Conv1d(3, 3, padding=1), S((2, 4, 9))),
    (nn.Conv2d(4, 3, stride=2, padding=1), S((2, 3, 8, 8))),
    (nn.ConvTranspose2d(4, 3, stride=2), S((2, 3, 5, 5))),
    (nn.BatchNorm(), S((2, 3, 4, 4))),
    (nn.LayerNorm(), S((2, 6))),
    (nn.GroupNorm(2), S((2, 4, 3, 3))),
    (nn.Embedding(11, 4), S((2, 3), np.int64)),
    (nn.RNN(5), S((2, 3, 4))),
    (nn.LSTM(5), S((2, 3, 4))),
    (nn.GRU(5), S((2, 3, 4))),
    (nn.MultiHeadAttention(2), S((2, 3, 4))),
    (nn.TransformerEncoderLayer(2, dim_feedforward=8), S((2, 3, 4))),
    (nn.Sequential([nn.Conv2d(4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dense(3)]), S((1, 2, 8, 8))),
    (nn.Residual(nn.Dense(4), shortcut=nn.Dense(4, use_bias=False)), S((2, 3))),
    (nn.Concat([nn.Conv2d(2, 1), nn.Conv2d(3, 3, padding=1)], axis=1), S((1, 4, 5, 5))),
    (nn.Parallel([nn.Dense(2), nn.Dense(3)]), S((4, 6))),
]


def _shapes(tree):
    return fnn.tree.map(lambda a: (tuple(a.shape), np.dtype(a.dtype)), tree)


@pytest.mark.parametrize("layer, spec", CATALOGUE, ids=lambda v: type(v).__name__)
def test_init_shapes_match_init(layer, spec):
    params, state = layer.init(fnn.random.key(0), spec)
    p_shapes, s_shapes = layer.init_shapes(spec)
    for leaf in fnn.tree.leaves((p_shapes, s_shapes)):
        assert isinstance(leaf, nn.ShapeDtype), type(leaf)
    assert _shapes(p_shapes) == _shapes(params)
    assert _shapes(s_shapes) == _shapes(state)
    assert nn.count_params(p_shapes) == nn.count_params(params)


def test_init_shapes_allocates_nothing_large():
    model = nn.Sequential([nn.Flatten(), nn.Dense(4096), nn.ReLU(), nn.Dense(4096)])  # 29 M parameters
    tracemalloc.start()
    try:
        params, _ = model.init_shapes(S((1, 3, 32, 32)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert nn.count_params(params) == 3072 * 4096 + 4096 + 4096 * 4096 + 4096
    assert peak < 5_000_000, peak  # the arrays would take 117 MB


def test_shape_dtype_is_a_leaf():
    tree = {"w": S((3, 4)), "b": [S((4,))]}
    leaves = fnn.tree.leaves(tree)
    assert leaves == [S((4,)), S((3, 4))]
    assert fnn.tree.map(lambda s: s.shape, tree) == {"w": (3, 4), "b": [(4,)]}
