"""fnn: a functional neural-network library on NumPy and CuPy.

Models are pure functions over immutable parameter pytrees; gradients come from a table of VJP
rules composed by `grad`, `value_and_grad`, `vjp` and friends. See README.md.
"""

from fnn import backend, random, tree
from fnn import numpy  # noqa: F401  (installs the array behaviour of traced values)
from fnn import data, io, losses, metrics, models, nn, optim, training
from fnn.model_summary import summary
from fnn.autodiff import (
    NoGradientError,
    checkpoint,
    custom_vjp,
    defvjp,
    defvjp_argnum,
    grad,
    hessian,
    is_traced,
    jacobian,
    jvp,
    primitive,
    stop_gradient,
    value_and_grad,
    vjp,
)

__version__ = "0.1.0"

__all__ = [
    "backend", "random", "tree", "numpy", "nn", "losses", "optim", "summary", "data", "metrics",
    "training", "io", "models",
    "grad", "value_and_grad", "vjp", "jvp", "jacobian", "hessian",
    "stop_gradient", "checkpoint", "custom_vjp", "primitive", "defvjp", "defvjp_argnum",
    "is_traced", "NoGradientError",
]
