"""AlexNet as torchvision builds it (Krizhevsky et al. 2012 and "One weird trick", arXiv:1404.5997:
64-192-384-256-256 channels), plus a small-input variant for 28x28 / 32x32 images."""

from __future__ import annotations

from fnn import nn
from fnn.models._classic import indexed, scaled

__all__ = ["alexnet"]


def alexnet(num_classes: int = 1000, in_channels: int = 3, *, small_input: bool = False,
            width_multiplier: float = 1.0, dropout: float = 0.5) -> nn.Sequential:
    """torchvision's AlexNet: `features` (conv 64@11x11 s4 p2, max-pool 3/2, conv 192@5x5 p2,
    pool, conv 384, 256, 256 @3x3 p1, pool), `avgpool` (adaptive, to 6x6), `flatten`,
    `classifier` (dropout, 4096, ReLU, dropout, 4096, ReLU, `num_classes`): 61,100,840
    parameters at 1000 classes. Inner children are numbered as torchvision's (`features.0.w`).

    `small_input=True` is for 28x28 / 32x32 images: a 3x3 stride-1 first conv, 2x2 max-pools
    (ceil_mode, so both sizes end at 4x4), no adaptive pool, and a classifier of 1024-1024 on the
    flattened 256x4x4 map. `width_multiplier` scales every channel and hidden-feature count.
    `in_channels` documents the expected input (the zoo's common signature): like every fnn
    layer, the first conv takes its input channels from the example given to `init`.
    """
    del in_channels

    def w(n):
        return scaled(n, width_multiplier)

    if small_input:
        features = indexed([
            nn.Conv2d(w(64), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(w(192), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(w(384), 3, padding=1), nn.ReLU(),
            nn.Conv2d(w(256), 3, padding=1), nn.ReLU(),
            nn.Conv2d(w(256), 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        ], name="features")
        hidden, pool = w(1024), []
    else:
        features = indexed([
            nn.Conv2d(w(64), 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(w(192), 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, stride=2),
            nn.Conv2d(w(384), 3, padding=1), nn.ReLU(),
            nn.Conv2d(w(256), 3, padding=1), nn.ReLU(),
            nn.Conv2d(w(256), 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, stride=2),
        ], name="features")
        hidden, pool = w(4096), [nn.AdaptiveAvgPool2d(6, name="avgpool")]
    classifier = indexed([
        nn.Dropout(dropout), nn.Dense(hidden), nn.ReLU(),
        nn.Dropout(dropout), nn.Dense(hidden), nn.ReLU(),
        nn.Dense(num_classes),
    ], name="classifier")
    return nn.Sequential([features, *pool, nn.Flatten(name="flatten"), classifier])
