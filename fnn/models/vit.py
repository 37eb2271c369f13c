"""Vision Transformer (Dosovitskiy et al., 2020), as torchvision's `VisionTransformer`.

    image (N, C, H, W) -> conv (kernel = stride = patch, with bias) -> (N, n_patches, dim)
    -> [class token; patches] + position embedding (1, 1 + n_patches, dim) -> dropout
    -> depth x pre-norm blocks (LayerNorm eps 1e-6, self-attention, GELU MLP)
    -> LayerNorm -> the class token's features -> Dense head -> (N, num_classes)

Parameters (torchvision's names in brackets): conv_proj [conv_proj], class_token [class_token],
pos_embedding [encoder.pos_embedding], encoder.layer_i [encoder.layers.encoder_layer_i],
norm [encoder.ln], head [heads.head]. `vit_b_16()` has torchvision's 86,567,656 parameters.

Initialisation as torchvision's: conv_proj weights N(0, 1/fan_in) (torchvision truncates at +-2 in
absolute value, i.e. dozens of standard deviations: a plain normal), conv bias zero, class token
zero, position embedding N(0, 0.02^2), attention as PyTorch's MultiheadAttention, MLP weights
Xavier-uniform with N(0, 1e-6^2) biases, and a zero head.

`approximate_gelu=True` puts the tanh approximation of GELU in the MLPs (not torchvision's
choice; on a CPU it makes small ViTs several times faster per step, the network within ~1e-3 per
activation).
"""

from __future__ import annotations

import math

import attrs

import fnn.numpy as fnp
from fnn import random
from fnn.models._transformer import (TransformerBlock, check_key, drop, layer_norm_params, mlp_activation,
                                      summary_rows)
from fnn.nn import initializers as init
from fnn.nn.functional.conv import conv2d
from fnn.nn.functional.dense import dense
from fnn.nn.functional.normalization import layer_norm
from fnn.nn.module import Module, ShapeDtype

__all__ = ["VisionTransformer", "vit", "vit_tiny", "vit_small", "vit_b_16", "vit_b_32", "vit_l_16",
           "vit_l_32", "vit_h_14"]


@attrs.frozen
class VisionTransformer(Module):
    """A ViT classifier over (N, in_channels, image_size, image_size) images; see the module doc."""

    kind = "vit"
    image_size: int = attrs.field(default=224)
    patch_size: int = attrs.field(default=16)
    in_channels: int = attrs.field(default=3, kw_only=True)
    num_classes: int = attrs.field(default=1000, kw_only=True)
    dim: int = attrs.field(default=768, kw_only=True)
    depth: int = attrs.field(default=12, kw_only=True)
    num_heads: int = attrs.field(default=12, kw_only=True)
    mlp_dim: int = attrs.field(default=3072, kw_only=True)
    dropout_rate: float = attrs.field(default=0.0, kw_only=True)
    attention_dropout_rate: float = attrs.field(default=0.0, kw_only=True)
    eps: float = attrs.field(default=1e-6, kw_only=True)
    approximate_gelu: bool = attrs.field(default=False, kw_only=True)  # tanh GELU in the MLPs

    def __attrs_post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"VisionTransformer: image_size {self.image_size} is not a multiple of "
                             f"patch_size {self.patch_size}")
        if self.dim % self.num_heads:
            raise ValueError(f"VisionTransformer: dim {self.dim} is not divisible by num_heads "
                             f"{self.num_heads}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def block(self) -> TransformerBlock:
        return TransformerBlock(self.num_heads, mlp_dim=self.mlp_dim, dropout_rate=self.dropout_rate,
                                attention_dropout_rate=self.attention_dropout_rate, inner_dropout=True,
                                norm_first=True, eps=self.eps, init_scheme="torchvision",
                                activation=mlp_activation(self.approximate_gelu))

    def _check(self, shape) -> None:
        want = (self.in_channels, self.image_size, self.image_size)
        if len(shape) != 4 or tuple(shape[1:]) != want:
            raise self.shape_error(f"expects images of shape (N, {want[0]}, {want[1]}, {want[2]}), "
                                   f"got shape {tuple(shape)}")

    def init_with_output(self, key, spec):
        self._check(spec.shape)
        d, p, dt = self.dim, self.patch_size, spec.dtype
        fan_in = self.in_channels * p * p
        k = random.split(key, 3 + self.depth)
        seq = ShapeDtype((spec.shape[0], 1 + self.num_patches, d), dt)
        params = {
            "conv_proj": {"w": init.normal(math.sqrt(1.0 / fan_in))(k[0], (d, self.in_channels, p, p), dt),
                          "b": init.zeros(None, (d,), dt)},
            "class_token": init.zeros(None, (1, 1, d), dt),
            "pos_embedding": init.normal(0.02)(k[1], (1, 1 + self.num_patches, d), dt),
            "encoder": {f"layer_{i}": self.block().init_with_output(k[3 + i], seq)[0]
                        for i in range(self.depth)},
            "norm": layer_norm_params(d, dt),
            "head": {"w": init.zeros(None, (d, self.num_classes), dt),
                     "b": init.zeros(None, (self.num_classes,), dt)},
        }
        return params, {}, ShapeDtype((spec.shape[0], self.num_classes), dt)

    def summary_rows(self, key, spec, path):
        params, _, out = self.init_with_output(key, spec)
        n, seq = spec.shape[0], (spec.shape[0], 1 + self.num_patches, self.dim)
        groups = [("conv_proj", "PatchEmbedding", (n, self.num_patches, self.dim), params["conv_proj"]),
                  ("class_token+pos_embedding", "Embedding", seq,
                   [params["class_token"], params["pos_embedding"]])]
        groups += [(f"encoder.{name}", "TransformerBlock", seq, p) for name, p in params["encoder"].items()]
        groups += [("norm", "LayerNorm", seq, params["norm"]), ("head", "Dense", out.shape, params["head"])]
        return summary_rows(path, groups), out

    def features(self, params, x, *, key=None, train=False):
        """The final LayerNorm's output (N, 1 + n_patches, dim); token 0 is the class token."""
        self._check(x.shape)
        check_key("VisionTransformer", key, train, max(self.dropout_rate, self.attention_dropout_rate))
        n, d = x.shape[0], self.dim
        conv = params["conv_proj"]
        h = conv2d(x, conv["w"], conv["b"], stride=self.patch_size)      # (N, d, H/p, W/p)
        h = fnp.swapaxes(fnp.reshape(h, (n, d, self.num_patches)), 1, 2)  # (N, n_patches, d)
        cls = fnp.broadcast_to(params["class_token"], (n, 1, d))
        h = fnp.concatenate([cls, h], axis=1) + params["pos_embedding"]
        h = drop(h, self.dropout_rate, key, self.depth, train)
        block = self.block()
        for i in range(self.depth):
            h, _ = block.apply(params["encoder"][f"layer_{i}"], {}, h,
                               key=None if key is None else random.fold_in(key, i), train=train)
        return layer_norm(h, params["norm"]["scale"], params["norm"]["bias"], eps=self.eps)

    def apply(self, params, state, x, *, key=None, train=False):
        h = self.features(params, x, key=key, train=train)
        head = params["head"]
        return dense(h[:, 0], head["w"], head["b"]), state


def vit(image_size: int = 224, patch_size: int = 16, in_channels: int = 3, num_classes: int = 1000,
        dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_dim: int = 3072,
        dropout_rate: float = 0.0, attention_dropout_rate: float = 0.0, *,
        approximate_gelu: bool = False) -> VisionTransformer:
    """A Vision Transformer (torchvision's VisionTransformer); the defaults are ViT-B/16.
    `approximate_gelu=True`: the tanh form of GELU in the MLPs."""
    return VisionTransformer(image_size, patch_size, in_channels=in_channels, num_classes=num_classes,
                             dim=dim, depth=depth, num_heads=num_heads, mlp_dim=mlp_dim,
                             dropout_rate=dropout_rate, attention_dropout_rate=attention_dropout_rate,
                             approximate_gelu=approximate_gelu)


def _config(dim, depth, heads, mlp, default_patch):
    def make(image_size: int = 224, patch_size: int = default_patch, in_channels: int = 3,
             num_classes: int = 1000, dropout_rate: float = 0.0,
             attention_dropout_rate: float = 0.0, *, approximate_gelu: bool = False) -> VisionTransformer:
        return vit(image_size, patch_size, in_channels, num_classes, dim, depth, heads, mlp,
                   dropout_rate, attention_dropout_rate, approximate_gelu=approximate_gelu)
    make.__doc__ = (f"ViT with dim {dim}, depth {depth}, {heads} heads, MLP {mlp} "
                    f"(default patch {default_patch}).")
    return make


vit_tiny = _config(192, 12, 3, 768, 16)     # DeiT-Ti / timm's vit_tiny: 5.7M parameters at 224/16
vit_small = _config(384, 12, 6, 1536, 16)   # DeiT-S / timm's vit_small: 22M parameters at 224/16
vit_b_16 = _config(768, 12, 12, 3072, 16)   # torchvision: 86,567,656 parameters
vit_b_32 = _config(768, 12, 12, 3072, 32)   # torchvision: 88,224,232
vit_l_16 = _config(1024, 24, 16, 4096, 16)  # torchvision: 304,326,632
vit_l_32 = _config(1024, 24, 16, 4096, 32)  # torchvision: 306,535,400
vit_h_14 = _config(1280, 32, 16, 5120, 14)  # torchvision: 632,045,800 at 224 (633,470,440 at 518)
for _name in ("vit_tiny", "vit_small", "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"):
    globals()[_name].__name__ = globals()[_name].__qualname__ = _name
del _name
