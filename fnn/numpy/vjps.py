"""The VJP rule table of fnn.numpy: one `defvjp` line per primitive.

A rule is `rule(g, ans, *args, **kwargs)`: the output cotangent `g`, the primal output `ans`, and
the primal arguments exactly as the primitive was called. It returns the cotangent of one argument.
Rules may return a cotangent of the broadcast shape, or of a wider dtype: the backward pass sums
and casts it to the argument's shape and dtype in one place. Rules are written with fnn.numpy
(operators included), so they can be differentiated again.
"""

from __future__ import annotations

import math

import numpy as np

from fnn.backend import get_array_module, to_cupy, to_numpy
from fnn.autodiff.backward import shape_of
from fnn.autodiff.pieces import Scattered, weight_product, zeros_like_value
from fnn.autodiff.tracer import Box, defvjp, defvjp_argnum, strip
from fnn.numpy import contractions as C
from fnn.numpy import elementwise as E
from fnn.numpy import indexing as I
from fnn.numpy import linalg as L
from fnn.numpy import reductions as R
from fnn.numpy import shape as S
from fnn.numpy.elementwise import cos, exp, exp2, safe_divide, sin, sinh, cosh, sqrt, where
from fnn.numpy.helpers import floor_divide, sign, trunc

LN2, LN10 = math.log(2.0), math.log(10.0)


# --- helpers for reductions -----------------------------------------------------------------------

def _axes(axis, ndim):
    """A reduction's axes as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    return tuple(sorted(int(a) % ndim for a in axis))


def _expand(g, x, axis, keepdims):
    """Broadcast a reduction's cotangent (or output) back to the shape of its input `x`."""
    x_shape = shape_of(x)
    if not keepdims and axis is not None:
        kept = list(x_shape)
        for a in _axes(axis, len(x_shape)):
            kept[a] = 1
        g = S.reshape(g, tuple(kept))
    return S.broadcast_to(g, x_shape)


def _count(x, axis):
    """How many elements each output of a reduction over `axis` summarises."""
    x_shape = shape_of(x)
    n = 1
    for a in _axes(axis, len(x_shape)):
        n *= x_shape[a]
    return n


_FULL = slice(None)


def _swap(m):
    return S.swapaxes(m, -1, -2)


# --- elementwise ----------------------------------------------------------------------------------

defvjp(E.add, lambda g, ans, x, y: g, lambda g, ans, x, y: g, reads=[(), ()])
defvjp(E.subtract, lambda g, ans, x, y: g, lambda g, ans, x, y: -g, reads=[(), ()])
defvjp(E.multiply, lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x, reads=[(1,), (0,)])
defvjp(E.divide, lambda g, ans, x, y: g / y, lambda g, ans, x, y: -g * ans / y, reads=[(1,), ("ans", 1)])
defvjp(E.negative, lambda g, ans, x: -g, reads=[()])
defvjp(E.positive, lambda g, ans, x: g, reads=[()])
def _power_base_rule(pow_fn):
    def rule(g, ans, x, y):
        """y * x**(y-1), taken as 0 where y == 0 and x**-1 overflows (x == 0 or subnormal): x**0
        is constant there, and the formula would give 0 * inf.

        Elsewhere, y == 0 included, the formula is kept whole so that it can be differentiated
        with respect to y (d/dy of y * x**(y-1) at y == 0 is 1/x, not 0)."""
        y_zero = np.equal(strip(y), 0)
        if not np.any(y_zero):
            return g * y * pow_fn(x, y - 1)
        with np.errstate(divide="ignore", over="ignore"):
            pinned = np.logical_and(y_zero, np.isinf(pow_fn(strip(x), strip(y) - 1)))
        if not np.any(pinned):
            return g * y * pow_fn(x, y - 1)
        x_safe = where(pinned, 1.0, x)  # no inf in the unselected branch (where NaN trap)
        return where(pinned, 0.0, g * y * pow_fn(x_safe, y - 1))
    return rule


defvjp(E.power, _power_base_rule(E.power), lambda g, ans, x, y: g * ans * E.log(where(x > 0, x, 1.0)), reads=[(0, 1), ("ans", 0)])
defvjp(E.float_power,
       _power_base_rule(E.float_power),
       lambda g, ans, x, y: g * ans * E.log(where(x > 0, x, 1.0)), reads=[(0, 1), ("ans", 0)])
defvjp(E.reciprocal, lambda g, ans, x: -g * ans * ans, reads=[("ans",)])
defvjp(E.square, lambda g, ans, x: g * x * 2.0, reads=[(0,)])
defvjp(E.sqrt, lambda g, ans, x: safe_divide(g * 0.5, ans), reads=[("ans",)])
defvjp(E.cbrt, lambda g, ans, x: safe_divide(g, ans * ans * 3.0), reads=[("ans",)])
defvjp(E.absolute, lambda g, ans, x: g * sign(x), reads=[(0,)])
defvjp(E.mod, lambda g, ans, x, y: g, lambda g, ans, x, y: -g * floor_divide(x, y), reads=[(), (0, 1)])
defvjp(E.fmod, lambda g, ans, x, y: g, lambda g, ans, x, y: -g * trunc(strip(x) / strip(y)), reads=[(), (0, 1)])

defvjp(E.exp, lambda g, ans, x: g * ans, reads=[("ans",)])
defvjp(E.exp2, lambda g, ans, x: g * ans * LN2, reads=[("ans",)])
defvjp(E.expm1, lambda g, ans, x: g * (ans + 1.0), reads=[("ans",)])
defvjp(E.log, lambda g, ans, x: safe_divide(g, x), reads=[(0,)])
defvjp(E.log2, lambda g, ans, x: safe_divide(g, x * LN2), reads=[(0,)])
defvjp(E.log10, lambda g, ans, x: safe_divide(g, x * LN10), reads=[(0,)])
defvjp(E.log1p, lambda g, ans, x: safe_divide(g, x + 1.0), reads=[(0,)])
defvjp(E.logaddexp, lambda g, ans, x, y: g * exp(x - ans), lambda g, ans, x, y: g * exp(y - ans), reads=[(0, "ans"), (1, "ans")])
defvjp(E.logaddexp2, lambda g, ans, x, y: g * exp2(x - ans), lambda g, ans, x, y: g * exp2(y - ans), reads=[(0, "ans"), (1, "ans")])

defvjp(E.sin, lambda g, ans, x: g * cos(x), reads=[(0,)])
defvjp(E.cos, lambda g, ans, x: -g * sin(x), reads=[(0,)])
defvjp(E.tan, lambda g, ans, x: g * (ans * ans + 1.0), reads=[("ans",)])
defvjp(E.arcsin, lambda g, ans, x: safe_divide(g, sqrt(1.0 - x * x)), reads=[(0,)])
defvjp(E.arccos, lambda g, ans, x: -safe_divide(g, sqrt(1.0 - x * x)), reads=[(0,)])
defvjp(E.arctan, lambda g, ans, x: g / (x * x + 1.0), reads=[(0,)])
defvjp(E.arctan2,
       lambda g, ans, y, x: g * x / (x * x + y * y),
       lambda g, ans, y, x: -g * y / (x * x + y * y), reads=[(0, 1), (0, 1)])
defvjp(E.hypot, lambda g, ans, x, y: safe_divide(g * x, ans), lambda g, ans, x, y: safe_divide(g * y, ans), reads=[(0, "ans"), (1, "ans")])
defvjp(E.sinh, lambda g, ans, x: g * cosh(x), reads=[(0,)])
defvjp(E.cosh, lambda g, ans, x: g * sinh(x), reads=[(0,)])
# g * (1 - ans**2), as g - g * ans * ans: three array operations and no scalar to convert
defvjp(E.tanh, lambda g, ans, x: g - g * ans * ans, reads=[("ans",)])
defvjp(E.arcsinh, lambda g, ans, x: g / sqrt(x * x + 1.0), reads=[(0,)])
defvjp(E.arccosh, lambda g, ans, x: safe_divide(g, sqrt(x * x - 1.0)), reads=[(0,)])
defvjp(E.arctanh, lambda g, ans, x: safe_divide(g, 1.0 - x * x), reads=[(0,)])


def _pick(mine, other, g, ans):
    """Cotangent of the argument that produced `ans`; ties share it equally."""
    mine_won = strip(mine) == strip(ans)
    tie = np.logical_and(mine_won, strip(other) == strip(ans))
    return where(mine_won, where(tie, g * 0.5, g), 0.0)


for _select in (E.maximum, E.minimum, E.fmax, E.fmin):
    defvjp(_select, lambda g, ans, x, y: _pick(x, y, g, ans), lambda g, ans, x, y: _pick(y, x, g, ans), reads=[(0, 1, "ans"), (0, 1, "ans")])

defvjp(E.clip,
       lambda g, ans, a, a_min=None, a_max=None: where(strip(a) == strip(ans), g, 0.0),
       lambda g, ans, a, a_min=None, a_max=None: where(strip(a) < strip(a_min), g, 0.0),
       lambda g, ans, a, a_min=None, a_max=None: where(strip(a) > strip(a_max), g, 0.0), reads=[(0, "ans"), (0, 1), (0, 2)])
defvjp(E._where3,
       None,
       lambda g, ans, c, x, y: where(c, g, 0.0),
       lambda g, ans, c, x, y: where(c, 0.0, g), reads=[None, (0,), (0,)])
def _safe_divide_numerator(h, ans, g, d):
    """1/d; but 0 where g == d == 0, where the output is pinned to 0: so a rule's cotangent that
    is zero in a masked-out `where` branch stays NaN-free to second order too."""
    pinned = np.logical_and(np.equal(strip(g), 0), np.equal(strip(d), 0))
    if not np.any(pinned):
        return safe_divide(h, d)
    return where(pinned, 0.0, safe_divide(h, where(pinned, 1.0, d)))


defvjp(safe_divide, _safe_divide_numerator,
       lambda h, ans, g, d: -safe_divide(h * g, d * d), reads=[(0, 1), (0, 1)])


# --- reductions -----------------------------------------------------------------------------------

def _mean_rule(g, ans, a, axis=None, dtype=None, out=None, keepdims=False):
    return _expand(g, a, axis, keepdims) / _count(a, axis)


def _extremum_rule(g, ans, a, axis=None, out=None, keepdims=False):
    winners = strip(a) == strip(_expand(strip(ans), strip(a), axis, keepdims))
    count = np.sum(winners, axis=axis, keepdims=True).astype(strip(a).dtype)
    return where(winners, _expand(g, a, axis, keepdims) / count, 0.0)


def _var_rule(g, ans, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    centred = a - R.mean(a, axis=axis, keepdims=True)
    dof = _count(a, axis) - ddof  # NumPy's var is inf/nan for dof == 0 (an empty output is fine)
    return _expand(g, a, axis, keepdims) * centred * (2.0 / dof if dof else math.inf)


def _prod_rule(g, ans, a, axis=None, dtype=None, out=None, keepdims=False):
    """Product of all *other* elements, from exclusive cumulative products (exact with zeros)."""
    nd = len(shape_of(a))
    axes = _axes(axis, nd)
    rest = [d for d in range(nd) if d not in axes]
    moved = S.transpose(a, tuple(rest + list(axes)))
    moved_shape = shape_of(moved)
    n = math.prod(moved_shape[len(rest):])  # not -1, which NumPy refuses for size-0 arrays
    flat = S.reshape(moved, moved_shape[:len(rest)] + (n,))
    ones = np.ones_like(strip(flat)[..., :1])
    left = R.cumprod(S.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    right = S.flip(R.cumprod(S.flip(S.concatenate([flat[..., 1:], ones], axis=-1), -1), axis=-1), -1)
    others = S.transpose(S.reshape(left * right, moved_shape), tuple(np.argsort(rest + list(axes))))
    return _expand(g, a, axis, keepdims) * others


def _reverse_cumsum(g, axis):
    return S.flip(R.cumsum(S.flip(g, axis), axis=axis), axis)


def _cumsum_rule(g, ans, a, axis=None, dtype=None, out=None):
    if axis is None:
        return S.reshape(_reverse_cumsum(g, 0), shape_of(a))
    return _reverse_cumsum(g, axis)


def _cumprod_grad(g, ans, a, axis, exact=True):
    """The cotangent of cumprod along `axis`, exact with zeros. In a slice whose first zero is
    at z: before z, d ans_j / d a_i = ans_j / a_i; at z, the product of the others (ans_j with
    a_z taken as 1); after z, a_z (that is 0) times the same for a_z taken as 1. Products that
    are 0 through a_z keep a_z as a factor, so their derivatives are right too (second order);
    `exact=False` gives the value only (used under the factor a_z, whose value is 0)."""
    plain = strip(a)
    if not np.any(plain == 0):
        return _reverse_cumsum(g * ans, axis) / a
    zeros_so_far = np.cumsum(plain == 0, axis=axis)
    before = zeros_so_far == 0  # i < z
    first = np.logical_and(zeros_so_far == 1, plain == 0)  # i == z
    a1 = where(first, 1.0, a)
    p = R.cumprod(a1, axis=axis)
    a_z = R.sum(where(first, a, 0.0), axis=axis, keepdims=True)  # 0, kept for its derivative
    left = _reverse_cumsum(g * p * where(before, 1.0, a_z), axis) / where(before, a1, 1.0)
    at_zero = _reverse_cumsum(g * p, axis)
    later = a_z * _cumprod_grad(strip(g), strip(p), strip(a1), axis, exact=False) if exact else 0.0
    return where(before, left, where(first, at_zero, later))


def _cumprod_rule(g, ans, a, axis=None, dtype=None, out=None):
    if axis is None:
        return S.reshape(_cumprod_grad(g, ans, S.ravel(a), 0), shape_of(a))
    return _cumprod_grad(g, ans, a, axis)


defvjp(R.sum, lambda g, ans, a, axis=None, dtype=None, out=None, keepdims=False: _expand(g, a, axis, keepdims), reads=[()])
defvjp(R.mean, _mean_rule, reads=[()])
defvjp(R.max, _extremum_rule)
defvjp(R.min, _extremum_rule)
defvjp(R.var, _var_rule, reads=[(0,)])
defvjp(R.prod, _prod_rule, reads=[(0,)])
defvjp(R.cumsum, _cumsum_rule, reads=[()])
defvjp(R.cumprod, _cumprod_rule, reads=[(0, "ans")])
defvjp(R.logsumexp, lambda g, ans, a, axis=None, keepdims=False:
       _expand(g, a, axis, keepdims) * exp(a - _expand(ans, a, axis, keepdims)), reads=[(0, "ans")])


# --- shape ----------------------------------------------------------------------------------------

def _concatenate_rule(argnum, g, ans, axis, *arrays):
    axis = axis % len(shape_of(arrays[0]))
    start = sum(shape_of(arrays[j])[axis] for j in range(argnum - 1))
    stop = start + shape_of(arrays[argnum - 1])[axis]
    return I.getitem(g, (slice(None),) * axis + (slice(start, stop),))


def _stack_rule(argnums, g, ans, axis, *arrays):
    """The cotangents of the stacked arrays at `argnums` (all of them at once): g's slices along
    `axis`, taken directly from a plain g (first order: a loop over 50 time steps stacks 50)."""
    axis = axis % (len(shape_of(arrays[0])) + 1)
    lead = (_FULL,) * axis
    if type(g) is not Box:
        return [g[lead + (i - 1,)] for i in argnums]
    return [I.getitem(g, lead + (i - 1,)) for i in argnums]


def _pad_rule(g, ans, array, pad_width, constant_values=0):
    # pad_width as NumPy reads it: an int, (w,), (before, after), or per axis ((b, a), ...) / ((w,), ...)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (len(shape_of(array)), 2))
    return I.getitem(g, tuple(slice(int(b), int(b) + n) for (b, _), n in zip(widths, shape_of(array))))


def _pad_value_rule(g, ans, array, pad_width, constant_values=0):
    if len(shape_of(constant_values)) == 0:
        return R.sum(g) - R.sum(_pad_rule(g, ans, array, pad_width))
    # one value per (axis, side): label every padded element with the value NumPy filled it from,
    # and sum g over each label; the cotangent has shape (ndim, 2) and is summed down to the
    # shape of `constant_values` (which NumPy broadcasts to (ndim, 2)) centrally
    nd = len(shape_of(array))
    codes = np.arange(1, 2 * nd + 1).reshape(nd, 2)
    labels = np.pad(np.zeros(shape_of(array), dtype=int), pad_width, mode="constant", constant_values=codes)
    onehot = (labels[..., None] == codes.reshape(-1)).astype(strip(g).dtype)
    return S.reshape(C.tensordot(g, onehot, len(shape_of(g))), (nd, 2))


def _transpose_rule(g, ans, a, axes=None):
    if isinstance(axes, (int, np.integer)):  # np.transpose(x, 0) of a 1-D x
        axes = (axes,)
    if axes is None:
        return S.transpose(g, None)
    nd = len(shape_of(a))  # negative axes name the same axes as their non-negative forms
    return S.transpose(g, tuple(int(i) for i in np.argsort([int(ax) % nd for ax in axes])))


defvjp(S._reshape_p, lambda g, ans, a, shape, order="C": S.reshape(g, shape_of(a), order), reads=[()])
defvjp(S.transpose, _transpose_rule, reads=[()])
defvjp_argnum(S._concatenate_p, _concatenate_rule, reads=())
defvjp_argnum(S._stack_p, _stack_rule, reads=(), together=True)
defvjp(S.unstack, lambda g, ans, x, axis=0: S.stack(g, axis=axis), reads=[("ans",)])
defvjp(S.pad_constant, _pad_rule, None, _pad_value_rule, reads=[(), None, ()])


# --- indexing -------------------------------------------------------------------------------------

def _scatter_into_zeros(g, ans, x, idx):
    """x[idx]'s rule: first order, a piece that the backward pass sums into one buffer with the
    other pieces for x; higher order, a (differentiable) scatter-add into zeros."""
    if type(g) is not Box:
        return Scattered(x, idx, g, I.add_at)
    return I.index_add(zeros_like_value(x), idx, g)


def _index_multiply_v(g, ans, x, idx, v):
    """g * x at each selected position, times the *other* factors of v that land on the same
    position: with repeated advanced indices, x[i] is multiplied by all of them."""
    gx = I.getitem(g, idx) * I.getitem(x, idx)
    if I.is_basic_index(idx):
        return gx
    x_shape = shape_of(x)
    on_gpu = get_array_module(strip(x)) is not np
    if on_gpu:  # the grouping below is bookkeeping on the index, done on the host (one copy)
        idx = to_numpy(idx)
    target = np.arange(math.prod(x_shape)).reshape(x_shape)[idx].reshape(-1)  # flat positions
    n = target.size
    order = np.argsort(target, kind="stable")
    first = np.concatenate([[True], target[order][1:] != target[order][:-1]]) if n else np.ones(0, bool)
    group_sorted = np.cumsum(first) - 1
    rank_sorted = np.arange(n) - np.flatnonzero(first)[group_sorted]
    if n == 0 or rank_sorted.max() == 0:  # no position selected twice
        return gx
    table = np.full((int(group_sorted[-1]) + 1, int(rank_sorted.max()) + 1), n)  # n: a factor 1
    table[group_sorted, rank_sorted] = order
    group, rank = np.empty(n, int), np.empty(n, int)
    group[order], rank[order] = group_sorted, rank_sorted
    others = table[group]
    others[np.arange(n), rank] = n  # leave each factor itself out
    v_flat = S.ravel(S.broadcast_to(v, shape_of(gx)))
    one = np.ones(1, dtype=strip(v_flat).dtype)
    if on_gpu:
        others, one = to_cupy((others, one))
    v_ext = S.concatenate([v_flat, one])
    return gx * S.reshape(R.prod(I.getitem(v_ext, others), axis=1), shape_of(gx))


defvjp(I.getitem, _scatter_into_zeros, None, reads=[(1,), None])  # the index; of x, its shape
defvjp(I.index_add, lambda g, ans, x, idx, v: g, None, lambda g, ans, x, idx, v: I.getitem(g, idx), reads=[(), None, ()])
defvjp(I.index_set, lambda g, ans, x, idx, v: I.index_set(g, idx, 0.0), None,
       lambda g, ans, x, idx, v: I.getitem(g, idx), reads=[(), None, ()])
defvjp(I.index_multiply, lambda g, ans, x, idx, v: I.index_multiply(g, idx, v), None,
       _index_multiply_v, reads=[(2,), None, (0, 2)])


# --- products and contractions --------------------------------------------------------------------

def _dot_a(g, ans, a, b):
    if len(shape_of(a)) == 0 or len(shape_of(b)) == 0:
        return g * b
    nb = len(shape_of(b))
    b_free = [] if nb == 1 else [ax for ax in range(nb) if ax != nb - 2]
    g_nd = len(shape_of(g))
    return C.tensordot(g, b, (list(range(g_nd - len(b_free), g_nd)), b_free))


def _dot_b(g, ans, a, b):
    if len(shape_of(a)) == 0 or len(shape_of(b)) == 0:
        return g * a
    a_free = list(range(len(shape_of(a)) - 1))
    r = C.tensordot(a, g, (a_free, a_free))
    nb = len(shape_of(b))
    return S.moveaxis(r, 0, nb - 2) if nb >= 2 else r


# The matrix-product rules take plain array methods when nothing is traced and both operands are
# matrices (or stacks of them): the common first-order case, where fnn.numpy's dispatch would
# cost more than a small product itself.

def _matmul_a(g, ans, a, b):
    b_nd = getattr(b, "ndim", 0)
    if type(g) is not Box and type(b) is not Box and b_nd >= 2 and getattr(a, "ndim", 0) >= 2:
        return g @ (b.T if b_nd == 2 else b.swapaxes(-1, -2))
    if len(shape_of(b)) == 1:
        return g * b if len(shape_of(a)) == 1 else S.expand_dims(g, -1) * b
    if len(shape_of(a)) == 1:
        return S.squeeze(C.matmul(b, S.expand_dims(g, -1)), -1)
    return C.matmul(g, _swap(b))


def _matmul_b(g, ans, a, b):
    a_nd = getattr(a, "ndim", 0)
    if type(g) is not Box and type(a) is not Box and a_nd >= 2 and getattr(b, "ndim", 0) >= 2:
        if b.ndim == 2:  # (..., n, k) @ (k, m): one product over all leading axes, not a batch
            # of products summed afterwards (g has a's leading axes exactly); kept as factors
            # when small, for one product with the other steps of a loop
            return weight_product(a, g, b)
        return (a.T if a_nd == 2 else a.swapaxes(-1, -2)) @ g
    if len(shape_of(a)) == 1:
        return g * a if len(shape_of(b)) == 1 else S.expand_dims(a, -1) * S.expand_dims(g, -2)
    if len(shape_of(b)) == 1:
        return S.squeeze(C.matmul(_swap(a), S.expand_dims(g, -1)), -1)
    return C.matmul(_swap(a), g)


def _tensordot_a(g, ans, a, b, axes=2):
    na, nb = len(shape_of(a)), len(shape_of(b))
    a_axes, b_axes = C.normalize_tensordot_axes(axes, na, nb)
    a_free = [i for i in range(na) if i not in a_axes]
    b_free = [i for i in range(nb) if i not in b_axes]
    r = C.tensordot(g, b, (list(range(len(a_free), len(a_free) + len(b_free))), b_free))
    labels = a_free + [a_axes[b_axes.index(bx)] for bx in sorted(b_axes)]
    return S.transpose(r, tuple(int(i) for i in np.argsort(labels)))


def _tensordot_b(g, ans, a, b, axes=2):
    na, nb = len(shape_of(a)), len(shape_of(b))
    a_axes, b_axes = C.normalize_tensordot_axes(axes, na, nb)
    a_free = [i for i in range(na) if i not in a_axes]
    b_free = [i for i in range(nb) if i not in b_axes]
    r = C.tensordot(a, g, (a_free, list(range(len(a_free)))))
    labels = [b_axes[a_axes.index(ax)] for ax in sorted(a_axes)] + b_free
    return S.transpose(r, tuple(int(i) for i in np.argsort(labels)))


def _einsum_rule(argnum, g, ans, subscripts, *operands, optimize=False):
    k = argnum - 1
    inputs, out = C.explicit_einsum(subscripts, [shape_of(op) for op in operands])
    target = inputs[k]
    others = [inputs[j] for j in range(len(operands)) if j != k]
    available = set(out).union(*others)
    kept = "".join(c for c in target if c in available)
    spec = ",".join([out] + others) + "->" + kept
    r = C.einsum(spec, g, *[operands[j] for j in range(len(operands)) if j != k], optimize=optimize)
    if kept != target:
        r_shape = dict(zip(kept, shape_of(r)))
        x_shape = shape_of(operands[k])
        r = S.reshape(r, tuple(r_shape.get(c, 1) for c in target))
        r = S.broadcast_to(r, tuple(r_shape.get(c, n) for c, n in zip(target, x_shape)))
    return r


defvjp(C.dot, _dot_a, _dot_b, reads=[(1,), (0,)])
defvjp(C.matmul, _matmul_a, _matmul_b, reads=[(1,), (0,)])
defvjp(C.tensordot, _tensordot_a, _tensordot_b, reads=[(1,), (0,)])
defvjp_argnum(C._einsum_p, _einsum_rule, reads=("args",))


# --- linear algebra -------------------------------------------------------------------------------

def _solve_b(g, ans, a, b):
    if len(shape_of(b)) == 1:
        return S.squeeze(L.solve(_swap(a), S.expand_dims(g, -1)), -1)
    return L.solve(_swap(a), g)


def _solve_a(g, ans, a, b):
    gb = _solve_b(g, ans, a, b)
    if len(shape_of(b)) == 1:
        return -S.expand_dims(gb, -1) * S.expand_dims(ans, -2)
    return -C.matmul(gb, _swap(ans))


def _det_rule(g, ans, a):
    return S.expand_dims(S.expand_dims(g * ans, -1), -1) * _swap(L.inv(a))


def _slogdet_rule(g, ans, a):
    g_logdet = g[1]
    return S.expand_dims(S.expand_dims(g_logdet, -1), -1) * _swap(L.inv(a))


defvjp(L.norm2, lambda g, ans, x, axis=None, keepdims=False:
       safe_divide(_expand(g, x, axis, keepdims) * x, _expand(ans, x, axis, keepdims)), reads=[(0, "ans")])
defvjp(L.inv, lambda g, ans, a: -C.matmul(C.matmul(_swap(ans), g), _swap(ans)), reads=[("ans",)])
defvjp(L.det, _det_rule, reads=[(0, "ans")])
defvjp(L.slogdet, _slogdet_rule, reads=[(0,)])
defvjp(L.solve, _solve_a, _solve_b, reads=[(0, "ans"), (0,)])
