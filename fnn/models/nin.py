"""Network in Network (Lin, Chen & Yan 2013, arXiv:1312.4400) as d2l builds it: NiN blocks (a conv
and two 1x1 convs, each + ReLU), max-pools, dropout, a last block to the classes, global pooling."""

from __future__ import annotations

from fnn import nn
from fnn.models._classic import indexed, scaled

__all__ = ["nin", "nin_block"]


def nin_block(out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, *,
              final_relu: bool = True, name: str | None = None) -> nn.Sequential:
    """conv `kernel_size` (stride, padding), ReLU, conv 1x1, ReLU, conv 1x1, ReLU; children '0'..'5'
    (without the last ReLU when `final_relu` is False: children '0'..'4')."""
    layers = [
        nn.Conv2d(out_channels, kernel_size, stride=stride, padding=padding), nn.ReLU(),
        nn.Conv2d(out_channels, 1), nn.ReLU(),
        nn.Conv2d(out_channels, 1),
    ]
    if final_relu:
        layers.append(nn.ReLU())
    return indexed(layers, name=name)


def nin(num_classes: int = 1000, in_channels: int = 3, *, small_input: bool = False,
        width_multiplier: float = 1.0, dropout: float = 0.5, final_relu: bool = True) -> nn.Sequential:
    """d2l's NiN for 224x224 inputs: block 96@11x11 s4, max-pool 3/2, block 256@5x5 p2, pool,
    block 384@3x3 p1, pool, dropout, block `num_classes`@3x3 p1, adaptive average pool to 1x1,
    flatten; children '0'..'9' as d2l's nn.Sequential. As in d2l the last block ends with a
    ReLU (non-negative logits). 7,439,608 parameters at 224x224x3 and 1000 classes; d2l's
    Fashion-MNIST network is `nin(10)` on 1-channel images (1,992,166).

    `small_input=True` is for 28x28 / 32x32 images: a 3x3 stride-1 first block (pad 1), the same
    pools (32 -> 15 -> 7 -> 3, 28 -> 13 -> 6 -> 2). `width_multiplier` scales 96, 256 and 384.

    `final_relu=False` ends the last block in its 1x1 convolution, so the logits may be negative.
    With the ReLU, a class whose last-layer output goes negative for every input has a logit of 0
    and no gradient from then on: it is never predicted again. Narrow NiNs show it (at width x0.25
    on Fashion-MNIST, two of ten classes died within five epochs); the parameters are the same.

    `in_channels` documents the expected input (the zoo's common signature): like every fnn
    layer, the first conv takes its input channels from the example given to `init`.
    """
    del in_channels

    def w(n):
        return scaled(n, width_multiplier)

    first = nin_block(w(96), 3, 1, 1) if small_input else nin_block(w(96), 11, 4, 0)
    return indexed([
        first, nn.MaxPool2d(3, stride=2),
        nin_block(w(256), 5, 1, 2), nn.MaxPool2d(3, stride=2),
        nin_block(w(384), 3, 1, 1), nn.MaxPool2d(3, stride=2),
        nn.Dropout(dropout),
        nin_block(num_classes, 3, 1, 1, final_relu=final_relu),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ])
