"""Hypothesis strategies shared by the rule tests: small shapes and arrays drawn from a seed.

Arrays stay small (at most MAX_SIZE elements) because central differences cost one function call
per element.
"""

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

MAX_SIZE = 12


def shapes(min_dims=0, max_dims=3, min_side=0, max_side=3, max_size=MAX_SIZE):
    """Array shapes (size-0 and size-1 axes included) with at most `max_size` elements."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side).filter(lambda s: math.prod(s) <= max_size)


@st.composite
def arrays(draw, shape):
    """Standard-normal values (distinct almost surely) from a hypothesis-drawn seed."""
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).standard_normal(shape)
