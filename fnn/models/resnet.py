"""ResNets (He et al. 2015, "Deep Residual Learning"), torchvision's layout: BasicBlock for 18/34,
Bottleneck with the stride on the 3x3 conv (v1.5) for 50/101/152, plus ResNeXt and Wide ResNet.

Parameter names follow torchvision's state_dict (`layer1.0.conv1.w`, `layer2.0.downsample.0.w`,
`fc.w`), so a torchvision checkpoint maps onto `params` key by key (weight -> w, BN weight -> scale).
`small_input=True` gives the CIFAR-style stem (3x3 stride-1 conv, no max-pool) for 28-32 px images.
"""

from __future__ import annotations

from typing import Sequence

import attrs

from fnn import random
from fnn.nn import initializers as init
from fnn.nn.combinators import Sequential
from fnn.nn.functional.activations import relu
from fnn.nn.layers import BatchNorm, Conv2d, Dense, Flatten, GlobalAvgPool, MaxPool2d, ReLU
from fnn.nn.module import Module

__all__ = ["ResidualBlock", "basic_block", "bottleneck", "resnet", "resnet18", "resnet34", "resnet50",
           "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2"]

# torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu") for every conv; weight (out, in, kh, kw)
_CONV_INIT = init.he_normal(in_axis=1, out_axis=0, mode="fan_out")


def _conv(out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
          name: str | None = None) -> Conv2d:
    return Conv2d(out_channels, kernel, stride=stride, padding=kernel // 2, groups=groups, use_bias=False,
                  w_init=_CONV_INIT, name=name)


def _bn(name: str) -> BatchNorm:
    return BatchNorm(momentum=0.1, eps=1e-5, name=name)


@attrs.frozen
class ResidualBlock(Module):
    """`relu(body(x) + downsample(x))`, with `downsample` the identity when it is None.

    The body's children sit directly in this block's params (`conv1`, `bn1`, ...) and the projection
    under `downsample`, as in torchvision's BasicBlock / Bottleneck."""

    kind = "block"
    body: Sequential = attrs.field(default=None)
    downsample: Module | None = attrs.field(default=None)

    def __attrs_post_init__(self):
        if "downsample" in self.body.names:
            raise ValueError("ResidualBlock: no child of the body may be named 'downsample'")

    def init_with_output(self, key, spec):
        k_body, k_down = random.split(key)
        params, state, out = self.body.init_with_output(k_body, spec)
        short = spec
        if self.downsample is not None:
            p, s, short = self.downsample.init_with_output(k_down, spec)
            if p:
                params["downsample"] = p
            if s:
                state["downsample"] = s
        if tuple(short.shape) != tuple(out.shape):
            raise self.shape_error(f"the body's output {out.shape} and the shortcut's {short.shape} differ; "
                                   "give the block a downsample projection")
        return params, state, out

    def apply(self, params, state, x, *, key=None, train=False):
        k_body, k_down = (None, None) if key is None else random.split(key)
        y, new_state = self.body.apply(params, state, x, key=k_body, train=train)
        if self.downsample is not None:
            x, s = self.downsample.apply(params.get("downsample", {}), state.get("downsample", {}), x,
                                         key=k_down, train=train)
            if s:
                new_state = {**new_state, "downsample": s}
        return relu(y + x), new_state

    def summary_rows(self, key, spec, path):
        k_body, k_down = random.split(key)
        rows, out = self.body.summary_rows(k_body, spec, path)
        if self.downsample is not None:
            down_rows, _ = self.downsample.summary_rows(k_down, spec, f"{path}.downsample")
            rows += down_rows
        rows.append((f"{path}.add_relu", "Add+ReLU", out.shape, 0, 0))
        return rows, out


def _downsample(in_channels: int, out_channels: int, stride: int) -> Sequential | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return Sequential([_conv(out_channels, 1, stride, name="0"), _bn("1")])


def basic_block(in_channels: int, planes: int, stride: int = 1, *, groups: int = 1,
                base_width: int = 64, name: str | None = None) -> ResidualBlock:
    """torchvision's BasicBlock (expansion 1): 3x3 conv (stride) - BN - ReLU - 3x3 conv - BN, + shortcut."""
    if groups != 1 or base_width != 64:
        raise ValueError("basic_block supports only groups=1 and width_per_group=64 (as torchvision)")
    body = Sequential([_conv(planes, 3, stride, name="conv1"), _bn("bn1"), ReLU(name="relu"),
                       _conv(planes, 3, name="conv2"), _bn("bn2")])
    return ResidualBlock(body, _downsample(in_channels, planes, stride), name=name)


basic_block.expansion = 1


def bottleneck(in_channels: int, planes: int, stride: int = 1, *, groups: int = 1,
               base_width: int = 64, name: str | None = None) -> ResidualBlock:
    """torchvision's Bottleneck (expansion 4, v1.5): 1x1 - 3x3 (stride, groups) - 1x1, each with BN."""
    width = int(planes * (base_width / 64.0)) * groups
    out = planes * 4
    body = Sequential([_conv(width, 1, name="conv1"), _bn("bn1"), ReLU(name="relu1"),
                       _conv(width, 3, stride, groups=groups, name="conv2"), _bn("bn2"), ReLU(name="relu2"),
                       _conv(out, 1, name="conv3"), _bn("bn3")])
    return ResidualBlock(body, _downsample(in_channels, out, stride), name=name)


bottleneck.expansion = 4


def resnet(block=basic_block, layers: Sequence[int] = (2, 2, 2, 2), *, num_classes: int = 1000,
           in_channels: int = 3, width_multiplier: float = 1.0, small_input: bool = False,
           groups: int = 1, width_per_group: int = 64) -> Sequential:
    """A ResNet of `block`s (`basic_block` or `bottleneck`), `layers[i]` blocks in stage i+1.

    Stage widths are base * (1, 2, 4, 8) with base = round(64 * width_multiplier); stages 2.. start
    with stride 2. The stem is torchvision's 7x7/2 conv + 3x3/2 max-pool, or with `small_input` a 3x3
    stride-1 conv and no pool (CIFAR-style). Children: conv1, bn1, relu, [maxpool], layer1..layerN,
    avgpool, flatten, fc. `in_channels` documents the expected input; like every fnn layer the stem
    conv takes its input channels from the example given to `init`."""
    expansion = getattr(block, "expansion", 1)
    base = max(1, int(round(64 * width_multiplier)))
    if small_input:
        stem = [_conv(base, 3, name="conv1"), _bn("bn1"), ReLU(name="relu")]
    else:
        stem = [Conv2d(base, 7, stride=2, padding=3, use_bias=False, w_init=_CONV_INIT, name="conv1"),
                _bn("bn1"), ReLU(name="relu"), MaxPool2d(3, stride=2, padding=1, name="maxpool")]
    stages, channels = [], base
    for i, n_blocks in enumerate(layers):
        planes = base * 2 ** i
        blocks = []
        for j in range(n_blocks):
            stride = 2 if (i > 0 and j == 0) else 1
            blocks.append(block(channels, planes, stride, groups=groups, base_width=width_per_group,
                                name=str(j)))
            channels = planes * expansion
        stages.append(Sequential(blocks, name=f"layer{i + 1}"))
    head = [GlobalAvgPool(name="avgpool"), Flatten(name="flatten"), Dense(num_classes, name="fc")]
    del in_channels  # accepted for the zoo's common signature: the stem conv reads it from the input at init
    return Sequential(stem + stages + head)


def resnet18(*, num_classes: int = 1000, in_channels: int = 3, width_multiplier: float = 1.0,
             small_input: bool = False) -> Sequential:
    """ResNet-18: BasicBlock, (2, 2, 2, 2); 11,689,512 parameters at 1000 classes."""
    return resnet(basic_block, (2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels,
                  width_multiplier=width_multiplier, small_input=small_input)


def resnet34(*, num_classes: int = 1000, in_channels: int = 3, width_multiplier: float = 1.0,
             small_input: bool = False) -> Sequential:
    """ResNet-34: BasicBlock, (3, 4, 6, 3); 21,797,672 parameters at 1000 classes."""
    return resnet(basic_block, (3, 4, 6, 3), num_classes=num_classes, in_channels=in_channels,
                  width_multiplier=width_multiplier, small_input=small_input)


def resnet50(*, num_classes: int = 1000, in_channels: int = 3, width_multiplier: float = 1.0,
             small_input: bool = False) -> Sequential:
    """ResNet-50 (v1.5): Bottleneck, (3, 4, 6, 3); 25,557,032 parameters at 1000 classes."""
    return resnet(bottleneck, (3, 4, 6, 3), num_classes=num_classes, in_channels=in_channels,
                  width_multiplier=width_multiplier, small_input=small_input)


def resnet101(*, num_classes: int = 1000, in_channels: int = 3, width_multiplier: float = 1.0,
              small_input: bool = False) -> Sequential:
    """ResNet-101 (v1.5): Bottleneck, (3, 4, 23, 3); 44,549,160 parameters at 1000 classes."""
    return resnet(bottleneck, (3, 4, 23, 3), num_classes=num_classes, in_channels=in_channels,
                  width_multiplier=width_multiplier, small_input=small_input)


def resnet152(*, num_classes: int = 1000, in_channels: int = 3, width_multiplier: float = 1.0,
              small_input: bool = False) -> Sequential:
    """ResNet-152 (v1.5): Bottleneck, (3, 8, 36, 3); 60,192,808 parameters at 1000 classes."""
    return resnet(bottleneck, (3, 8, 36, 3), num_classes=num_classes, in_channels=in_channels,
                  width_multiplier=width_multiplier, small_input=small_input)


def resnext50_32x4d(*, num_classes: int = 1000, in_channels: int = 3,
                    small_input: bool = False) -> Sequential:
    """ResNeXt-50 32x4d: Bottleneck with 32 groups of width 4; 25,028,904 parameters at 1000 classes."""
    return resnet(bottleneck, (3, 4, 6, 3), num_classes=num_classes, in_channels=in_channels,
                  small_input=small_input, groups=32, width_per_group=4)


def wide_resnet50_2(*, num_classes: int = 1000, in_channels: int = 3,
                    small_input: bool = False) -> Sequential:
    """Wide ResNet-50-2: Bottleneck with twice the inner width; 68,883,240 parameters at 1000 classes."""
    return resnet(bottleneck, (3, 4, 6, 3), num_classes=num_classes, in_channels=in_channels,
                  small_input=small_input, width_per_group=128)
