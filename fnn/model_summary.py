"""`fnn.summary(model, x)`: a table of a model's layers, output shapes and parameter counts.

Nothing is trained, kept or allocated: the model is initialised once for shapes only (the
initializers answer with ShapeDtype, see `fnn.nn.initializers.shapes_only`) and each layer
reports its row, so a summary of VGG-16 at 224x224 costs milliseconds.
"""

from __future__ import annotations

from typing import Any

from fnn import random
from fnn.nn.initializers import shapes_only
from fnn.nn.module import Module, spec_of

__all__ = ["summary"]


def _shape_text(shape: Any) -> str:
    if isinstance(shape, tuple) and shape and all(hasattr(s, "shape") for s in shape):
        return ", ".join(str(tuple(s.shape)) for s in shape)
    return str(tuple(shape))


def summary(model: Module, x: Any, *, key: Any = None, print_table: bool = False) -> str:
    """The summary table as text (also printed when `print_table`)."""
    spec = spec_of(x)
    with shapes_only():
        rows, out = model.summary_rows(random.key(0) if key is None else key, spec, "")
    header = ("layer", "type", "output shape", "params", "state")
    body = [(path or type(model).__name__, kind, _shape_text(shape), f"{n_params:,}", f"{n_state:,}")
            for path, kind, shape, n_params, n_state in rows]
    total_params = sum(r[3] for r in rows)
    total_state = sum(r[4] for r in rows)
    widths = [max(len(str(r[i])) for r in [header] + body) for i in range(len(header))]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(header))
    text = "\n".join([f"{type(model).__name__}  input {tuple(spec.shape)} {spec.dtype}", rule, line(header),
                      rule, *map(line, body), rule,
                      f"total parameters: {total_params:,}   state (not trained): {total_state:,}   "
                      f"output {_shape_text(getattr(out, 'shape', out))}"])
    if print_table:
        print(text)
    return text
