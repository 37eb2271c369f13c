"""Normalisation layers: BatchNorm (with running statistics in `state`), LayerNorm, GroupNorm."""

from __future__ import annotations

import attrs
import numpy as np

from fnn.autodiff.tracer import strip
from fnn.nn.functional import normalization as F
from fnn.nn import initializers as init
from fnn.nn.module import Module

__all__ = ["BatchNorm", "LayerNorm", "GroupNorm"]


def _scale_and_bias(features: int, dtype, affine: bool) -> dict:
    if not affine:
        return {}
    return {"scale": init.ones(None, (features,), dtype), "bias": init.zeros(None, (features,), dtype)}


@attrs.frozen
class BatchNorm(Module):
    """Batch normalisation over every axis but axis 1 (channels), as PyTorch's BatchNorm1d/2d.

    Training (`train=True`) normalises with the batch statistics and updates the running ones in
    `state`: `running = (1 - momentum) * running + momentum * batch`, the variance unbiased (PyTorch's
    convention). Evaluation normalises with the running statistics.
    """

    kind = "batch_norm"
    momentum: float = attrs.field(default=0.1)
    eps: float = attrs.field(default=1e-5, kw_only=True)
    affine: bool = attrs.field(default=True, kw_only=True)

    def init_with_output(self, key, spec):
        if len(spec.shape) < 2:
            raise self.shape_error(f"expects inputs of shape (N, C, ...), got shape {spec.shape}")
        c = spec.shape[1]
        state = {"mean": init.zeros(None, (c,), spec.dtype), "var": init.ones(None, (c,), spec.dtype)}
        return _scale_and_bias(c, spec.dtype, self.affine), state, spec

    def apply(self, params, state, x, *, key=None, train=False):
        c = state["mean"].shape[0]
        if len(x.shape) < 2 or x.shape[1] != c:
            raise self.shape_error(f"input has shape {tuple(x.shape)} but the layer was built for {c} "
                                   "channels on axis 1")
        scale, bias = params.get("scale"), params.get("bias")
        if not train:
            y = F.batch_norm_inference(x, scale, bias, state["mean"], state["var"], eps=self.eps)
            return y, state
        y = F.batch_norm(x, scale, bias, eps=self.eps)
        mean, var = F.batch_stats(strip(x))
        new_mean, new_var = F.running_average(state["mean"], state["var"], mean, var, strip(x).size // c,
                                              self.momentum)
        return y, {"mean": new_mean, "var": new_var}


@attrs.frozen
class LayerNorm(Module):
    """Normalisation over the last axis, with a learned scale and bias of that size."""

    kind = "layer_norm"
    eps: float = attrs.field(default=1e-5, kw_only=True)
    affine: bool = attrs.field(default=True, kw_only=True)

    def init_with_output(self, key, spec):
        return _scale_and_bias(spec.shape[-1], spec.dtype, self.affine), {}, spec

    def apply(self, params, state, x, *, key=None, train=False):
        if "scale" in params and x.shape[-1] != params["scale"].shape[0]:
            raise self.shape_error(f"input has shape {tuple(x.shape)} but the layer normalises "
                                   f"{params['scale'].shape[0]} features on the last axis")
        return F.layer_norm(x, params.get("scale"), params.get("bias"), eps=self.eps), state


@attrs.frozen
class GroupNorm(Module):
    """Normalisation over groups of channels (axis 1) and the spatial axes."""

    kind = "group_norm"
    num_groups: int = attrs.field(default=32)
    eps: float = attrs.field(default=1e-5, kw_only=True)
    affine: bool = attrs.field(default=True, kw_only=True)

    def init_with_output(self, key, spec):
        if len(spec.shape) < 2 or spec.shape[1] % self.num_groups:
            raise self.shape_error(f"input shape {spec.shape}: channels (axis 1) must split into "
                                   f"{self.num_groups} groups")
        return _scale_and_bias(spec.shape[1], spec.dtype, self.affine), {}, spec

    def apply(self, params, state, x, *, key=None, train=False):
        return F.group_norm(x, self.num_groups, params.get("scale"), params.get("bias"),
                            eps=self.eps), state
