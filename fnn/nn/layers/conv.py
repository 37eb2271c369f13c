"""Convolution layers (NCL / NCHW, PyTorch's weight layouts and default init) and pooling layers."""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs

from fnn import random
from fnn.nn import initializers as init
from fnn.nn.functional import conv as F
from fnn.nn.functional import pooling as P
from fnn.nn.module import Module, ShapeDtype

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool",
           "AdaptiveAvgPool2d"]


@attrs.frozen
class _ConvBase(Module):
    out_channels: int = attrs.field(default=None)
    kernel_size: Any = attrs.field(default=3)
    stride: Any = attrs.field(default=1, kw_only=True)
    padding: Any = attrs.field(default=0, kw_only=True)
    dilation: Any = attrs.field(default=1, kw_only=True)
    groups: int = attrs.field(default=1, kw_only=True)
    use_bias: bool = attrs.field(default=True, kw_only=True)
    w_init: Callable | None = attrs.field(default=None, kw_only=True)
    b_init: Callable | None = attrs.field(default=None, kw_only=True)

    spatial_dims = 2

    def _kernel(self) -> tuple:
        k = self.kernel_size
        return (k,) * self.spatial_dims if isinstance(k, int) else tuple(k)

    def _weight_shape(self, in_channels: int) -> tuple:
        return (self.out_channels, in_channels // self.groups) + self._kernel()

    def _check_input(self, shape: tuple) -> int:
        if len(shape) != 2 + self.spatial_dims:
            layout = "(N, C, L)" if self.spatial_dims == 1 else "(N, C, H, W)"
            raise self.shape_error(f"expects inputs of shape {layout}, got shape {shape}")
        if shape[1] % self.groups:
            raise self.shape_error(f"{shape[1]} input channels do not split into {self.groups} groups")
        return shape[1]

    def init_with_output(self, key, spec):
        in_channels = self._check_input(spec.shape)
        w_shape = self._weight_shape(in_channels)
        fan_in = w_shape[1] * math.prod(w_shape[2:])
        k_w, k_b = random.split(key)
        params = {"w": (self.w_init or init.torch_default_uniform(fan_in))(k_w, w_shape, spec.dtype)}
        if self.use_bias:
            params["b"] = (self.b_init or init.torch_default_uniform(fan_in))(k_b, (self.out_channels,),
                                                                              spec.dtype)
        return params, {}, ShapeDtype(self._output_shape(spec, ShapeDtype(w_shape)), spec.dtype)

    def _output_shape(self, spec, w_spec) -> tuple:
        try:
            return F.conv_output_shape(spec, w_spec, stride=self.stride, padding=self.padding,
                                       dilation=self.dilation, groups=self.groups)
        except ValueError as exc:
            raise self.shape_error(str(exc)) from None

    def apply(self, params, state, x, *, key=None, train=False):
        in_channels = self._check_input(tuple(x.shape))
        expected = params["w"].shape[1] * self.groups
        if in_channels != expected:
            raise self.shape_error(f"input has {in_channels} channels but the weight expects {expected} "
                                   f"(input shape {tuple(x.shape)}, weight shape {params['w'].shape})")
        return self._forward(x, params), state


@attrs.frozen
class Conv2d(_ConvBase):
    """2-D convolution: weight (out, in/groups, kh, kw); padding an int, a pair, 'same' or 'valid'."""

    kind = "conv"

    def _forward(self, x, params):
        return F.conv2d(x, params["w"], params.get("b"), stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups)


@attrs.frozen
class Conv1d(_ConvBase):
    """1-D convolution over (N, C, L): weight (out, in/groups, k)."""

    kind = "conv"
    spatial_dims = 1

    def _forward(self, x, params):
        return F.conv1d(x, params["w"], params.get("b"), stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups)


@attrs.frozen
class ConvTranspose2d(_ConvBase):
    """Transposed 2-D convolution: weight (in, out/groups, kh, kw), PyTorch's output size."""

    kind = "conv_transpose"
    output_padding: Any = attrs.field(default=0, kw_only=True)

    def _weight_shape(self, in_channels: int) -> tuple:
        return (in_channels, self.out_channels // self.groups) + self._kernel()

    def init_with_output(self, key, spec):
        in_channels = self._check_input(spec.shape)
        w_shape = self._weight_shape(in_channels)
        # PyTorch computes the fan from dim 1 of the weight: out/groups * kh * kw
        fan_in = w_shape[1] * w_shape[2] * w_shape[3]
        k_w, k_b = random.split(key)
        params = {"w": (self.w_init or init.torch_default_uniform(fan_in))(k_w, w_shape, spec.dtype)}
        if self.use_bias:
            params["b"] = (self.b_init or init.torch_default_uniform(fan_in))(k_b, (self.out_channels,),
                                                                              spec.dtype)
        out = F.conv_transpose_output_shape(spec, ShapeDtype(w_shape), stride=self.stride,
                                            padding=self.padding, output_padding=self.output_padding,
                                            dilation=self.dilation, groups=self.groups)
        return params, {}, ShapeDtype(out, spec.dtype)

    def apply(self, params, state, x, *, key=None, train=False):
        in_channels = self._check_input(tuple(x.shape))
        if in_channels != params["w"].shape[0]:
            raise self.shape_error(f"input has {in_channels} channels but the weight expects "
                                   f"{params['w'].shape[0]} (input shape {tuple(x.shape)}, weight shape "
                                   f"{params['w'].shape})")
        return self._forward(x, params), state

    def _forward(self, x, params):
        return F.conv_transpose2d(x, params["w"], params.get("b"), stride=self.stride,
                                  padding=self.padding, output_padding=self.output_padding,
                                  dilation=self.dilation, groups=self.groups)


@attrs.frozen
class _Pool(Module):
    """A parameter-free layer over (N, C, ...) inputs; `_output_shape` computes its output shape."""

    def init_with_output(self, key, spec):
        if len(spec.shape) < 3:
            raise self.shape_error(f"expects inputs of shape (N, C, ...), got shape {spec.shape}")
        try:
            return {}, {}, ShapeDtype(self._output_shape(spec), spec.dtype)
        except ValueError as exc:
            raise self.shape_error(str(exc)) from None

    def apply(self, params, state, x, *, key=None, train=False):
        return self._forward(x), state


@attrs.frozen
class _WindowPool(_Pool):
    """Pooling over kernel windows; `_pool` is the functional form."""

    kernel_size: Any = attrs.field(default=2)
    stride: Any = attrs.field(default=None, kw_only=True)
    padding: Any = attrs.field(default=0, kw_only=True)
    ceil_mode: bool = attrs.field(default=False, kw_only=True)

    def _output_shape(self, spec):
        return P.pool_output_shape(spec, self.kernel_size, self.stride, self.padding,
                                   ceil_mode=self.ceil_mode)

    def _forward(self, x):
        return self._pool(x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode)


@attrs.frozen
class MaxPool2d(_WindowPool):
    """Max over kernel windows (stride defaults to the kernel size; `ceil_mode` as PyTorch's)."""

    kind = "max_pool"
    _pool = staticmethod(P.max_pool2d)


@attrs.frozen
class AvgPool2d(_WindowPool):
    """Mean over kernel windows, padded cells counted (PyTorch's count_include_pad=True);
    `ceil_mode` as PyTorch's."""

    kind = "avg_pool"
    _pool = staticmethod(P.avg_pool2d)


@attrs.frozen
class GlobalAvgPool(_Pool):
    """The mean over every spatial axis: (N, C, ...) -> (N, C)."""

    kind = "global_avg_pool"

    def _output_shape(self, spec):
        return tuple(spec.shape[:2])

    def _forward(self, x):
        return P.global_avg_pool(x)


@attrs.frozen
class AdaptiveAvgPool2d(_Pool):
    """Average pooling to a fixed output grid, PyTorch's window boundaries."""

    kind = "adaptive_avg_pool"
    output_size: Any = attrs.field(default=1)

    def _output_shape(self, spec):
        size = (self.output_size,) * 2 if isinstance(self.output_size, int) else tuple(self.output_size)
        return tuple(spec.shape[:2]) + tuple(n if o is None else o for o, n in zip(size, spec.shape[2:]))

    def _forward(self, x):
        return P.adaptive_avg_pool2d(x, self.output_size)

