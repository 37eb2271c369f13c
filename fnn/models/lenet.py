"""LeNet-5 (LeCun et al. 1998, "Gradient-based learning applied to document recognition") as
commonly built today (d2l, the PyTorch tutorials): ReLU and max pooling unless asked otherwise."""

from __future__ import annotations

from fnn import nn
from fnn.models._classic import scaled

__all__ = ["lenet5"]


def lenet5(num_classes: int = 10, in_channels: int = 1, *, activation: str = "relu",
           pool: str = "max", width_multiplier: float = 1.0) -> nn.Sequential:
    """conv 6@5x5 (pad 2), act, pool 2, conv 16@5x5, act, pool 2, dense 120, act, 84, act,
    `num_classes`: 61,706 parameters for 28x28x1 inputs and 10 classes.

    `activation` is 'relu' or 'tanh' (the 1998 network's squashing), `pool` is 'max' or 'avg'
    (its subsampling); `width_multiplier` scales the 6, 16, 120 and 84. Children are named
    `conv_0`, `relu_1`, `max_pool_2`, ... (the layers of fnn_examples/mnist_lenet.py). For 28x28
    inputs (padding 2 keeps the 1998 network's 32x32 geometry); other sizes work too.
    `in_channels` documents the expected input (the zoo's common signature): like every fnn
    layer, the first conv takes its input channels from the example given to `init`.
    """
    del in_channels
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh}
    pools = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
    if activation not in acts:
        raise ValueError(f"lenet5: activation must be 'relu' or 'tanh', got {activation!r}")
    if pool not in pools:
        raise ValueError(f"lenet5: pool must be 'max' or 'avg', got {pool!r}")
    act, pool_layer = acts[activation], pools[pool]

    def w(n):
        return scaled(n, width_multiplier)

    return nn.Sequential([
        nn.Conv2d(w(6), 5, padding=2), act(), pool_layer(2),
        nn.Conv2d(w(16), 5), act(), pool_layer(2),
        nn.Flatten(), nn.Dense(w(120)), act(), nn.Dense(w(84)), act(), nn.Dense(num_classes),
    ])
