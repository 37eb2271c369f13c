"""Shared pieces of the classic CNNs (lenet, alexnet, vgg, nin, googlenet)."""

from __future__ import annotations

import attrs

from fnn import nn

__all__ = ["scaled", "indexed"]


def scaled(n: int, width_multiplier: float) -> int:
    """A channel or feature count `n` times the width multiplier, rounded, at least 1."""
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}")
    return max(1, int(round(n * width_multiplier)))


def indexed(layers, name: str | None = None) -> nn.Sequential:
    """An nn.Sequential whose children are named '0', '1', ... as in a torch.nn.Sequential, so
    params read `features.0.w` where torchvision's state_dict has `features.0.weight`."""
    return nn.Sequential([attrs.evolve(layer, name=str(i)) for i, layer in enumerate(layers)], name=name)
