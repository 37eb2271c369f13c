"""DenseNets (Huang et al. 2017, "Densely Connected Convolutional Networks"), torchvision's DenseNet-BC
layout: dense layers BN-ReLU-1x1-BN-ReLU-3x3 whose output is concatenated to their input; transitions
BN-ReLU-1x1 conv (compression 0.5)-avgpool 2. Parameter names follow torchvision's state_dict
(`features.denseblock1.denselayer1.conv1.w`, `features.transition1.conv.w`, `classifier.w`).
"""

from __future__ import annotations

from typing import Sequence

import attrs

from fnn import numpy as fnp
from fnn.nn import initializers as init
from fnn.nn.combinators import Sequential
from fnn.nn.layers import (AvgPool2d, BatchNorm, Conv2d, Dense, Dropout, Flatten, GlobalAvgPool,
                           MaxPool2d, ReLU)
from fnn.nn.module import Module, ShapeDtype

__all__ = ["DenseLayer", "dense_layer", "transition", "densenet", "densenet121", "densenet161",
           "densenet169", "densenet201", "densenet_small"]

# torchvision: kaiming_normal_ (fan_in) for convs, BN weight 1 / bias 0, Linear bias 0
_CONV_INIT = init.he_normal(in_axis=1, out_axis=0, mode="fan_in")


def _conv(out_channels: int, kernel: int, name: str, stride: int = 1) -> Conv2d:
    return Conv2d(out_channels, kernel, stride=stride, padding=kernel // 2, use_bias=False, w_init=_CONV_INIT,
                  name=name)


@attrs.frozen
class DenseLayer(Module):
    """`concatenate([x, body(x)], axis=1)`: the input's channels followed by the new features.

    The body's children sit directly in this layer's params (`norm1`, `conv1`, ...), as in
    torchvision's _DenseLayer."""

    kind = "dense_layer"
    body: Sequential = attrs.field(default=None)

    def init_with_output(self, key, spec):
        params, state, new = self.body.init_with_output(key, spec)
        if len(new.shape) != len(spec.shape) or tuple(new.shape[2:]) != tuple(spec.shape[2:]) \
                or new.shape[0] != spec.shape[0]:
            raise self.shape_error(f"the body maps {spec.shape} to {new.shape}; it must keep the batch and "
                                   "spatial sizes to be concatenated on channels")
        out = ShapeDtype((spec.shape[0], spec.shape[1] + new.shape[1]) + tuple(spec.shape[2:]), spec.dtype)
        return params, state, out

    def apply(self, params, state, x, *, key=None, train=False):
        y, new_state = self.body.apply(params, state, x, key=key, train=train)
        return fnp.concatenate([x, y], axis=1), new_state

    def summary_rows(self, key, spec, path):
        rows, _ = self.body.summary_rows(key, spec, path)
        out = self.init_with_output(key, spec)[2]
        rows.append((f"{path}.concat", "Concat", out.shape, 0, 0))
        return rows, out


def dense_layer(growth_rate: int, bn_size: int | None = 4, drop_rate: float = 0.0, *,
                name: str | None = None) -> DenseLayer:
    """torchvision's _DenseLayer: BN-ReLU-1x1 conv (bn_size * growth) -BN-ReLU-3x3 conv (growth)
    [-dropout], concatenated to its input. `bn_size=None` drops the bottleneck: BN-ReLU-3x3 conv,
    the original DenseNet (and d2l's) layer."""
    if bn_size:
        layers = [BatchNorm(name="norm1"), ReLU(name="relu1"), _conv(bn_size * growth_rate, 1, "conv1"),
                  BatchNorm(name="norm2"), ReLU(name="relu2"), _conv(growth_rate, 3, "conv2")]
    else:
        layers = [BatchNorm(name="norm1"), ReLU(name="relu1"), _conv(growth_rate, 3, "conv1")]
    if drop_rate > 0:
        layers.append(Dropout(drop_rate, name="dropout"))
    return DenseLayer(Sequential(layers), name=name)


def transition(out_channels: int, *, name: str | None = None) -> Sequential:
    """torchvision's _Transition: BN-ReLU-1x1 conv-2x2 average pool (stride 2)."""
    return Sequential([BatchNorm(name="norm"), ReLU(name="relu"), _conv(out_channels, 1, "conv"),
                       AvgPool2d(2, stride=2, name="pool")], name=name)


def densenet(growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
             num_init_features: int = 64, bn_size: int | None = 4, drop_rate: float = 0.0, *,
             compression: float = 0.5, num_classes: int = 1000, in_channels: int = 3,
             small_input: bool = False) -> Sequential:
    """A DenseNet: a stem, dense blocks of `block_config[i]` layers each adding `growth_rate` channels,
    transitions between blocks that multiply the channels by `compression` and halve the resolution,
    then BN, ReLU, global average pool and a linear classifier.

    The stem is torchvision's 7x7/2 conv + BN + ReLU + 3x3/2 max-pool, or with `small_input` (28-32 px)
    a 3x3 stride-1 conv + BN + ReLU and no pool. Children: `features` (conv0, norm0, relu0, [pool0],
    denseblock1, transition1, ..., norm5), relu, avgpool, flatten, classifier. `in_channels` documents
    the expected input; the stem conv takes its input channels from the example given to `init`."""
    del in_channels
    if small_input:
        stem = [_conv(num_init_features, 3, "conv0"), BatchNorm(name="norm0"), ReLU(name="relu0")]
    else:
        stem = [Conv2d(num_init_features, 7, stride=2, padding=3, use_bias=False, w_init=_CONV_INIT,
                       name="conv0"),
                BatchNorm(name="norm0"), ReLU(name="relu0"), MaxPool2d(3, stride=2, padding=1, name="pool0")]
    features, channels = list(stem), num_init_features
    for i, n_layers in enumerate(block_config):
        features.append(Sequential([dense_layer(growth_rate, bn_size, drop_rate, name=f"denselayer{j + 1}")
                                    for j in range(n_layers)], name=f"denseblock{i + 1}"))
        channels += n_layers * growth_rate
        if i != len(block_config) - 1:
            channels = int(channels * compression)
            features.append(transition(channels, name=f"transition{i + 1}"))
    features.append(BatchNorm(name=f"norm{len(block_config) + 1}"))
    return Sequential([Sequential(features, name="features"), ReLU(name="relu"),
                       GlobalAvgPool(name="avgpool"), Flatten(name="flatten"),
                       Dense(num_classes, b_init=init.zeros, name="classifier")])


def densenet121(*, num_classes: int = 1000, in_channels: int = 3, drop_rate: float = 0.0,
                small_input: bool = False) -> Sequential:
    """DenseNet-121: growth 32, blocks (6, 12, 24, 16), 64 stem features; 7,978,856 parameters."""
    return densenet(32, (6, 12, 24, 16), 64, 4, drop_rate, num_classes=num_classes, in_channels=in_channels,
                    small_input=small_input)


def densenet161(*, num_classes: int = 1000, in_channels: int = 3, drop_rate: float = 0.0,
                small_input: bool = False) -> Sequential:
    """DenseNet-161: growth 48, blocks (6, 12, 36, 24), 96 stem features; 28,681,000 parameters."""
    return densenet(48, (6, 12, 36, 24), 96, 4, drop_rate, num_classes=num_classes, in_channels=in_channels,
                    small_input=small_input)


def densenet169(*, num_classes: int = 1000, in_channels: int = 3, drop_rate: float = 0.0,
                small_input: bool = False) -> Sequential:
    """DenseNet-169: growth 32, blocks (6, 12, 32, 32), 64 stem features; 14,149,480 parameters."""
    return densenet(32, (6, 12, 32, 32), 64, 4, drop_rate, num_classes=num_classes, in_channels=in_channels,
                    small_input=small_input)


def densenet201(*, num_classes: int = 1000, in_channels: int = 3, drop_rate: float = 0.0,
                small_input: bool = False) -> Sequential:
    """DenseNet-201: growth 32, blocks (6, 12, 48, 32), 64 stem features; 20,013,928 parameters."""
    return densenet(32, (6, 12, 48, 32), 64, 4, drop_rate, num_classes=num_classes, in_channels=in_channels,
                    small_input=small_input)


def densenet_small(*, num_classes: int = 10, in_channels: int = 3, growth_rate: int = 12,
                   block_config: Sequence[int] = (4, 4, 4), num_init_features: int = 24,
                   bn_size: int | None = 4, drop_rate: float = 0.0) -> Sequential:
    """A small DenseNet-BC for 28x28 / 32x32 images (CIFAR / Fashion-MNIST, d2l-sized): 3x3 stem,
    three blocks of four layers, growth 12; 102,778 parameters at 10 classes."""
    return densenet(growth_rate, block_config, num_init_features, bn_size, drop_rate, num_classes=num_classes,
                    in_channels=in_channels, small_input=True)
