"""Reverse-mode automatic differentiation from a table of VJP rules.

- `tracer`: boxes, nodes, trace levels and the primitive wrapper (`primitive`, `defvjp`).
- `backward`: the backward pass, and the central undoing of broadcasting.
- `transforms`: grad, value_and_grad, vjp, jvp, jacobian, hessian.
- `custom`: custom_vjp, checkpoint, stop_gradient.
"""

from fnn.autodiff.custom import checkpoint, custom_vjp, stop_gradient
from fnn.autodiff.tracer import (
    Box,
    NoGradientError,
    Primitive,
    defvjp,
    defvjp_argnum,
    is_traced,
    primitive,
)
from fnn.autodiff.transforms import grad, hessian, jacobian, jvp, value_and_grad, vjp

__all__ = [
    "Box", "NoGradientError", "Primitive", "primitive", "defvjp", "defvjp_argnum", "is_traced",
    "grad", "value_and_grad", "vjp", "jvp", "jacobian", "hessian",
    "custom_vjp", "checkpoint", "stop_gradient",
]
