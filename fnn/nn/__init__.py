"""fnn.nn: layers (`fnn.nn.Dense`, ...), combinators, initializers, activations, and the
functional forms of every layer in `fnn.nn.functional`.

A model is a layer: `params, state = model.init(key, x)`, `y, state = model.apply(params, state, x,
key=None, train=False)` (see `fnn/nn/module.py`).
"""

from fnn.nn import functional, initializers
from fnn.nn.combinators import Concat, Lambda, Parallel, Residual, Sequential
from fnn.nn.functional.activations import (elu, gelu, hard_sigmoid, hard_swish, hard_tanh,
                                           leaky_relu, log_softmax, mish, relu, relu6, selu,
                                           sigmoid, silu, softmax, softplus, softsign, tanh)
from fnn.nn.layers import *  # noqa: F403
from fnn.nn.module import Module, ShapeDtype, ShapeError, count_params, spec_of
