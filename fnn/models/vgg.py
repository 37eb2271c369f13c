"""VGG-11/13/16/19 with and without BatchNorm (Simonyan & Zisserman 2014, configurations A, B, D,
E), as torchvision builds them, plus a small-input variant for 28x28 / 32x32 images."""

from __future__ import annotations

from fnn import nn
from fnn.nn import initializers as init
from fnn.models._classic import indexed, scaled

__all__ = ["vgg", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
           "VGG_CONFIGS"]

# channel counts of the 3x3 convs, "M" a 2x2 max-pool (torchvision's cfgs A, B, D, E)
VGG_CONFIGS = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"),
}

# torchvision's init: kaiming_normal_(fan_out, relu) and zero bias for convs, N(0, 0.01) and zero
# bias for linear layers (BatchNorm: scale 1, bias 0, fnn's default). Conv weights are (out, in, kh, kw).
_CONV_W = init.he_normal(in_axis=1, out_axis=0, mode="fan_out")
_DENSE_W = init.normal(0.01)


def vgg(config: str = "D", num_classes: int = 1000, in_channels: int = 3, *, batch_norm: bool = False,
        small_input: bool = False, width_multiplier: float = 1.0, dropout: float = 0.5) -> nn.Sequential:
    """A VGG of configuration 'A' (11 layers), 'B' (13), 'D' (16) or 'E' (19), or a sequence of
    channel counts and 'M's: `features` (3x3 pad-1 convs [+ BatchNorm] + ReLU, 2x2 max-pools),
    `avgpool` (adaptive, to 7x7), `flatten`, `classifier` (4096, ReLU, dropout, 4096, ReLU,
    dropout, `num_classes`). Inner children are numbered as torchvision's (`features.0.w`).

    `small_input=True` is for 28x28 / 32x32 images: the max-pools round up (ceil_mode, so 28 and 32
    both end at 1x1), there is no 7x7 pool, and the classifier (512-512) reads the flattened
    final feature map. `width_multiplier` scales every channel and hidden-feature count.
    `in_channels` documents the expected input (the zoo's common signature): like every fnn
    layer, the first conv takes its input channels from the example given to `init`.
    """
    del in_channels
    cfg = VGG_CONFIGS[config] if isinstance(config, str) else tuple(config)

    def w(n):
        return scaled(n, width_multiplier)

    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=small_input))
            continue
        layers.append(nn.Conv2d(w(v), 3, padding=1, w_init=_CONV_W, b_init=init.zeros))
        if batch_norm:
            layers.append(nn.BatchNorm())
        layers.append(nn.ReLU())
    hidden = w(512) if small_input else w(4096)
    classifier = indexed([
        nn.Dense(hidden, w_init=_DENSE_W, b_init=init.zeros), nn.ReLU(), nn.Dropout(dropout),
        nn.Dense(hidden, w_init=_DENSE_W, b_init=init.zeros), nn.ReLU(), nn.Dropout(dropout),
        nn.Dense(num_classes, w_init=_DENSE_W, b_init=init.zeros),
    ], name="classifier")
    pool = [] if small_input else [nn.AdaptiveAvgPool2d(7, name="avgpool")]
    return nn.Sequential([indexed(layers, name="features"), *pool, nn.Flatten(name="flatten"),
                          classifier])


def _named(config: str, batch_norm: bool, layers: int):
    def build(num_classes: int = 1000, in_channels: int = 3, *, small_input: bool = False,
              width_multiplier: float = 1.0, dropout: float = 0.5) -> nn.Sequential:
        return vgg(config, num_classes, in_channels, batch_norm=batch_norm, small_input=small_input,
                   width_multiplier=width_multiplier, dropout=dropout)

    build.__name__ = build.__qualname__ = f"vgg{layers}{'_bn' if batch_norm else ''}"
    build.__doc__ = (f"VGG-{layers} (configuration {config}){' with BatchNorm' if batch_norm else ''}, "
                     "torchvision's; see `vgg` for the options.")
    return build


vgg11, vgg13, vgg16, vgg19 = (_named(c, False, n) for c, n in zip("ABDE", (11, 13, 16, 19)))
vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn = (_named(c, True, n) for c, n in zip("ABDE", (11, 13, 16, 19)))
