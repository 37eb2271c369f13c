"""GoogLeNet / Inception v1 (Szegedy et al. 2014, "Going Deeper with Convolutions") as torchvision
builds it: BatchNorm'd convs, a 3x3 conv in the "5x5" branch, ceil-mode pools, optional aux heads."""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs

from fnn import nn, random
from fnn.nn import initializers as init
from fnn.models._classic import scaled

__all__ = ["googlenet", "basic_conv2d", "inception", "inception_aux", "GoogLeNetWithAux",
           "GoogLeNetOutputs", "INCEPTION_CONFIGS"]

# torchvision: trunc_normal_(std=0.01) for conv and linear weights
_W_INIT = init.truncated_normal(0.01)

# (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) of each Inception block (the paper's table 1)
INCEPTION_CONFIGS = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}


def basic_conv2d(out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, *,
                 name: str | None = None) -> nn.Sequential:
    """torchvision's BasicConv2d: conv without bias, BatchNorm (eps 0.001), ReLU (`conv`, `bn`, `relu`)."""
    return nn.Sequential([
        nn.Conv2d(out_channels, kernel_size, stride=stride, padding=padding, use_bias=False,
                  w_init=_W_INIT, name="conv"),
        nn.BatchNorm(eps=0.001, name="bn"),
        nn.ReLU(name="relu"),
    ], name=name)


def inception(ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int, *,
              name: str | None = None) -> nn.Parallel:
    """The Inception block: four branches joined on channels, `branch1` (1x1), `branch2` (1x1 then
    3x3), `branch3` (1x1 then 3x3, torchvision's stand-in for the paper's 5x5), `branch4` (3x3/1
    max-pool then 1x1). Output channels: ch1x1 + ch3x3 + ch5x5 + pool_proj."""
    return nn.Concat([
        basic_conv2d(ch1x1, 1, name="branch1"),
        nn.Sequential([basic_conv2d(ch3x3red, 1, name="0"), basic_conv2d(ch3x3, 3, padding=1, name="1")],
                      name="branch2"),
        nn.Sequential([basic_conv2d(ch5x5red, 1, name="0"), basic_conv2d(ch5x5, 3, padding=1, name="1")],
                      name="branch3"),
        nn.Sequential([nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True, name="0"),
                       basic_conv2d(pool_proj, 1, name="1")], name="branch4"),
    ], axis=1, name=name)


def inception_aux(num_classes: int, *, width_multiplier: float = 1.0, dropout: float = 0.7,
                  name: str | None = None) -> nn.Sequential:
    """torchvision's InceptionAux: adaptive average pool to 4x4, BasicConv2d 128@1x1, flatten,
    fc1 1024, ReLU, dropout 0.7, fc2 `num_classes`."""
    return nn.Sequential([
        nn.AdaptiveAvgPool2d(4, name="avgpool"),
        basic_conv2d(scaled(128, width_multiplier), 1, name="conv"),
        nn.Flatten(name="flatten"),
        nn.Dense(scaled(1024, width_multiplier), w_init=_W_INIT, name="fc1"), nn.ReLU(name="relu"),
        nn.Dropout(dropout, name="dropout"),
        nn.Dense(num_classes, w_init=_W_INIT, name="fc2"),
    ], name=name)


class GoogLeNetOutputs(NamedTuple):
    """What GoogLeNet with aux heads returns while training (torchvision's order)."""

    logits: Any
    aux_logits2: Any
    aux_logits1: Any


@attrs.frozen
class GoogLeNetWithAux(nn.Module):
    """The main network `body` (an nn.Sequential) with auxiliary heads fed by the outputs of some
    of its children: `aux` is a tuple of (child name, head). Params and state of the heads sit
    beside the body's children (`aux1`, `aux2`), as in torchvision's state_dict.

    Training (`train=True`) returns GoogLeNetOutputs(logits, aux_logits2, aux_logits1); evaluation
    returns the logits alone and leaves the heads (and their state) untouched, as torchvision does.
    """

    kind = "googlenet"
    body: nn.Sequential = attrs.field(default=None)
    aux: tuple = attrs.field(default=(), converter=tuple)

    def _heads(self):
        return {after: head for after, head in self.aux}

    def init_with_output(self, key, spec):
        params, state = {}, {}
        heads = self._heads()
        n = len(self.body.layers)
        for i, (name, layer) in enumerate(zip(self.body.names, self.body.layers)):
            p, s, spec = layer.init_with_output(random.fold_in(key, i), spec)
            _put(params, state, name, p, s)
            if name in heads:
                head = heads[name]
                p, s, _ = head.init_with_output(random.fold_in(key, n + i), spec)
                _put(params, state, head.name, p, s)
        return params, state, spec

    def apply(self, params, state, x, *, key=None, train=False):
        heads = self._heads()
        n = len(self.body.layers)
        new_state, aux_out = {}, {}
        for i, (name, layer) in enumerate(zip(self.body.names, self.body.layers)):
            k = None if key is None else random.fold_in(key, i)
            x, s = layer.apply(params.get(name, {}), state.get(name, {}), x, key=k, train=train)
            if s:
                new_state[name] = s
            if name in heads:
                head = heads[name]
                if train:
                    k = None if key is None else random.fold_in(key, n + i)
                    aux_out[head.name], s = head.apply(params.get(head.name, {}), state.get(head.name, {}),
                                                       x, key=k, train=train)
                else:
                    s = state.get(head.name, {})
                if s:
                    new_state[head.name] = s
        if not train:
            return x, new_state
        return GoogLeNetOutputs(x, aux_out.get("aux2"), aux_out.get("aux1")), new_state

    def summary_rows(self, key, spec, path):
        heads, rows = self._heads(), []
        n = len(self.body.layers)
        for i, (name, layer) in enumerate(zip(self.body.names, self.body.layers)):
            child_path = f"{path}.{name}" if path else name
            child_rows, spec = layer.summary_rows(random.fold_in(key, i), spec, child_path)
            rows.extend(child_rows)
            if name in heads:
                head = heads[name]
                head_rows, _ = head.summary_rows(random.fold_in(key, n + i), spec,
                                                 f"{path}.{head.name}" if path else head.name)
                rows.extend(head_rows)
        return rows, spec


def _put(params, state, name, p, s):
    if p:
        params[name] = p
    if s:
        state[name] = s


def googlenet(num_classes: int = 1000, in_channels: int = 3, *, aux_logits: bool = False,
              small_input: bool = False, width_multiplier: float = 1.0, dropout: float = 0.2,
              dropout_aux: float = 0.7) -> nn.Module:
    """torchvision's GoogLeNet: conv1 (BasicConv2d 64@7x7 s2 p3), maxpool1 (3/2, ceil_mode), conv2
    (64@1x1), conv3 (192@3x3 p1), maxpool2, inception3a-3b, maxpool3, inception4a-4e, maxpool4
    (2/2), inception5a-5b, avgpool (to 1x1), flatten, dropout 0.2, fc (1024 -> `num_classes`):
    6,624,904 parameters at 1000 classes, an nn.Sequential with those children.

    `aux_logits=True` adds torchvision's two auxiliary heads (`aux1` after inception4a, `aux2`
    after inception4d; 13,004,888 parameters in all) and returns a GoogLeNetWithAux, whose
    training output is GoogLeNetOutputs(logits, aux_logits2, aux_logits1) (weigh the aux losses
    by 0.3, as the paper does). `small_input=True` is for 28x28 / 32x32 images: conv1 is 3x3
    stride 1 and maxpool1 is left out (32 -> 16 -> 8 -> 4 at the last stage, 28 -> 14 -> 7 -> 4).
    `width_multiplier` scales every channel count (and the aux heads' 128 and 1024).
    `in_channels` documents the expected input (the zoo's common signature): like every fnn
    layer, the first conv takes its input channels from the example given to `init`.
    (torchvision's transform_input, for its pretrained weights, has no counterpart here.)
    """
    del in_channels

    def block(name):
        return inception(*(scaled(c, width_multiplier) for c in INCEPTION_CONFIGS[name]), name=name)

    def pool(name, k=3):
        return nn.MaxPool2d(k, stride=2, ceil_mode=True, name=name)

    def w(n):
        return scaled(n, width_multiplier)

    if small_input:
        stem = [basic_conv2d(w(64), 3, padding=1, name="conv1")]
    else:
        stem = [basic_conv2d(w(64), 7, stride=2, padding=3, name="conv1"), pool("maxpool1")]
    body = nn.Sequential([
        *stem,
        basic_conv2d(w(64), 1, name="conv2"),
        basic_conv2d(w(192), 3, padding=1, name="conv3"),
        pool("maxpool2"),
        block("inception3a"), block("inception3b"),
        pool("maxpool3"),
        block("inception4a"), block("inception4b"), block("inception4c"), block("inception4d"),
        block("inception4e"),
        pool("maxpool4", 2),
        block("inception5a"), block("inception5b"),
        nn.AdaptiveAvgPool2d(1, name="avgpool"),
        nn.Flatten(name="flatten"),
        nn.Dropout(dropout, name="dropout"),
        nn.Dense(num_classes, w_init=_W_INIT, name="fc"),
    ])
    if not aux_logits:
        return body
    aux = (("inception4a", inception_aux(num_classes, width_multiplier=width_multiplier,
                                         dropout=dropout_aux, name="aux1")),
           ("inception4d", inception_aux(num_classes, width_multiplier=width_multiplier,
                                         dropout=dropout_aux, name="aux2")))
    return GoogLeNetWithAux(body, aux)
