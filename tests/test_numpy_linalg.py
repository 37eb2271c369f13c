"""Property tests for products, contractions and linear algebra in fnn.numpy: dot, matmul,
tensordot, einsum, outer, inner, vdot, and linalg.norm / inv / det / slogdet / solve. Forward
results are compared with NumPy's; gradients pass `check_grads` (VJP and JVP against central
differences, the dot-product law, second derivatives where cheap). Matrices are kept well
conditioned (B + 3I with |B| small) so that central differences are accurate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fnn
import fnn.numpy as fnp
from gradcheck import check_grads
from strategies import MAX_SIZE, arrays, shapes

RTOL = 1e-10


# --------------------------------------------------------------------------------------------
# Strategies and helpers




@st.composite
def away_from_zero(draw, shape):
    """Values with |x| >= 0.2, so that |x| is smooth within the central-difference step."""
    x = draw(arrays(shape))
    return np.sign(x) * (0.2 + np.abs(x)) + (x == 0) * 0.2


@st.composite
def well_conditioned(draw, shape):
    """B + 3I with |B| <= 0.5: eigenvalues well away from zero."""
    seed = draw(st.integers(0, 2**32 - 1))
    n = shape[-1]
    return np.random.default_rng(seed).uniform(-0.5, 0.5, shape) + 3.0 * np.eye(n)


def assert_close(actual, expected, what="", rtol=RTOL):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-12, err_msg=what)


def check(f, ref, *args, order=1):
    """f (fnn) against ref (NumPy) on plain and traced inputs, then its derivatives."""
    expected = ref(*args)
    assert_close(f(*args), expected, "forward on plain arrays")
    traced_value, _ = fnn.vjp(f, *args)
    assert_close(traced_value, expected, "forward on traced values")
    check_grads(f, args, order=order)


# --------------------------------------------------------------------------------------------
# dot, matmul


@st.composite
def dot_operands(draw):
    """Shapes NumPy's dot accepts, for every ndim pair 0..3: a (..., k) with b (k,) or (..., k, m)."""
    na, nb = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    side = st.integers(0, 3)
    if na == 0 or nb == 0:
        a_shape = () if na == 0 else draw(shapes(min_dims=na, max_dims=na, max_size=8))
        b_shape = () if nb == 0 else draw(shapes(min_dims=nb, max_dims=nb, max_size=8))
    else:
        k = draw(side)
        a_shape = tuple(draw(side) for _ in range(na - 1)) + (k,)
        b_shape = (k,) if nb == 1 else tuple(draw(side) for _ in range(nb - 2)) + (k, draw(side))
    assume(math.prod(a_shape) <= MAX_SIZE and math.prod(b_shape) <= MAX_SIZE)
    return draw(arrays(a_shape)), draw(arrays(b_shape))


@given(ab=dot_operands())
def test_dot(ab):
    a, b = ab
    check(fnp.dot, np.dot, a, b, order=2)
    if a.ndim:  # the method (central differences turn 0-d arrays into NumPy scalars)
        check(lambda x, y: fnp.reshape(x, a.shape).dot(y), lambda x, y: x.dot(y), a, b)


@st.composite
def matmul_operands(draw):
    """1-D and 2-D operands and stacks whose batch dimensions broadcast (size-1 and missing ones)."""
    side = st.integers(0, 3)
    n, k, m = draw(side), draw(side), draw(side)
    batch = tuple(draw(st.lists(st.integers(0, 2), max_size=2)))

    def batch_of(draw):
        b = tuple(1 if draw(st.booleans()) else d for d in batch)
        return b[draw(st.integers(0, len(b))):]  # some leading batch axes missing

    a_shape = (k,) if draw(st.booleans()) else batch_of(draw) + (n, k)
    b_shape = (k,) if draw(st.booleans()) else batch_of(draw) + (k, m)
    assume(math.prod(a_shape) <= MAX_SIZE and math.prod(b_shape) <= MAX_SIZE)
    return draw(arrays(a_shape)), draw(arrays(b_shape))


@given(ab=matmul_operands())
def test_matmul(ab):
    a, b = ab
    check(fnp.matmul, np.matmul, a, b, order=2)
    check(lambda x, y: x @ y, lambda x, y: x @ y, a, b)


@pytest.mark.parametrize("a_shape, m", [((2, 3, 4), 5), ((2, 1, 3, 4), 5), ((3, 0, 4), 5),
                                        ((0, 0, 0), 0), ((2, 3, 0), 5), ((2, 3, 4), 0)])
def test_matmul_stack_times_matrix(a_shape, m):
    """(..., n, k) @ (k, m), the layout of a dense layer on sequences: the matrix's cotangent is
    one product over all leading axes, and must equal the central differences and the sum of
    the per-matrix products. Empty axes included (k = 0 once made the row count ambiguous)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal((a_shape[-1], m))
    check(fnp.matmul, np.matmul, a, b)
    g = rng.standard_normal(a_shape[:-1] + (m,))
    _, vjp_fn = fnn.vjp(fnp.matmul, a, b)
    expected = np.tensordot(a, g, (tuple(range(a.ndim - 1)), tuple(range(a.ndim - 1))))
    np.testing.assert_allclose(vjp_fn(g)[1], expected, rtol=1e-12, atol=1e-12)


def test_matmul_with_plain_left_operand():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(3.0)
    g = fnn.grad(lambda y: fnp.sum(a @ y))(b)
    np.testing.assert_allclose(g, a.sum(axis=0))


# --------------------------------------------------------------------------------------------
# tensordot, einsum


@st.composite
def tensordot_operands(draw):
    side = st.integers(0, 3)
    if draw(st.booleans()):  # int axes: a = A + K, b = K + B
        n = draw(st.integers(0, 2))
        contracted = tuple(draw(side) for _ in range(n))
        a_shape = tuple(draw(side) for _ in range(draw(st.integers(0, 3 - n)))) + contracted
        b_shape = contracted + tuple(draw(side) for _ in range(draw(st.integers(0, 3 - n))))
        axes = n
    else:  # explicit pairs in any order, negative axes too
        a_shape = draw(shapes(min_dims=1, max_dims=3, max_size=MAX_SIZE))
        na = len(a_shape)
        a_axes = draw(st.lists(st.integers(0, na - 1), min_size=1, max_size=min(na, 2), unique=True))
        nb = len(a_axes) + draw(st.integers(0, 3 - len(a_axes)))
        b_axes = draw(st.lists(st.integers(0, nb - 1), min_size=len(a_axes), max_size=len(a_axes),
                               unique=True))
        b_shape = [draw(side) for _ in range(nb)]
        for ax, bx in zip(a_axes, b_axes):
            b_shape[bx] = a_shape[ax]
        b_shape = tuple(b_shape)
        a_axes = [ax - na if draw(st.booleans()) else ax for ax in a_axes]
        b_axes = [bx - nb if draw(st.booleans()) else bx for bx in b_axes]
        axes = (a_axes, b_axes)
        if len(a_axes) == 1 and draw(st.booleans()):
            axes = (a_axes[0], b_axes[0])
    assume(math.prod(a_shape) <= MAX_SIZE and math.prod(b_shape) <= MAX_SIZE)
    return draw(arrays(a_shape)), draw(arrays(b_shape)), axes


@given(abx=tensordot_operands())
def test_tensordot(abx):
    a, b, axes = abx
    check(lambda x, y: fnp.tensordot(x, y, axes), lambda x, y: np.tensordot(x, y, axes), a, b, order=2)
    check(lambda x, y: fnp.tensordot(x, y, axes=axes), lambda x, y: np.tensordot(x, y, axes=axes), a, b)


@pytest.mark.parametrize("axes", [([1, 0], [0, 1]), ([0, 1], [1, 0]), ([2, 0], [0, 1]), ([-1, 0], [1, 2])])
def test_tensordot_unordered_pairs(axes):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 3, 2))
    b_shape = [2, 2, 2]
    for ax, bx in zip(*axes):
        b_shape[bx % 3] = a.shape[ax]
    b = rng.standard_normal(tuple(b_shape))
    check(lambda x, y: fnp.tensordot(x, y, axes), lambda x, y: np.tensordot(x, y, axes), a, b, order=2)


EINSUM_SPECS = [
    "ij,jk->ik", "ij,jk", "ij->j", "ij->", "ij->ji", "ji", "i,i", "i,i->", "i,j->ij", "i,j",
    "ij,jk->k", "ij,kl->jk", "ijk,ik->j", "ba,ca", "aB,Bc->ca", "i->i", ",i->i", ",",
    "...ij,...jk->...ik", "...ij,...jk", "...i,...i->...", "i...->...", "...ij->...ji", "ij...,j->i...",
    "ij,jk,kl->il", "i,i,i->", "ij,j,k->ik", "ij,jk,k",
]


@st.composite
def einsum_operands(draw, spec):
    """Operands for `spec`: one size per letter (0 to 3), ellipses of varying length whose
    dimensions broadcast (size 1 against larger)."""
    lhs = spec.split("->")[0]
    letters = sorted(set(lhs) - set(".,"))
    size = {c: draw(st.integers(0, 3)) for c in letters}
    ell = tuple(draw(st.integers(1, 2)) for _ in range(draw(st.integers(0, 2))))
    ops = []
    for term in lhs.split(","):
        if "..." in term:
            k = draw(st.integers(0, len(ell)))
            e = tuple(1 if draw(st.booleans()) else d for d in ell[len(ell) - k:])
            before, after = term.split("...")
            shape = tuple(size[c] for c in before) + e + tuple(size[c] for c in after)
        else:
            shape = tuple(size[c] for c in term)
        assume(math.prod(shape) <= MAX_SIZE)
        ops.append(draw(arrays(shape)))
    return ops


@pytest.mark.parametrize("spec", EINSUM_SPECS)
@given(data=st.data())
def test_einsum(spec, data):
    ops = data.draw(einsum_operands(spec))
    order = 2 if len(ops) < 3 else 1
    check(lambda *xs: fnp.einsum(spec, *xs), lambda *xs: np.einsum(spec, *xs), *ops, order=order)


def test_einsum_optimize_and_spaces():
    rng = np.random.default_rng(0)
    a, b, c = rng.standard_normal((2, 3)), rng.standard_normal((3, 2)), rng.standard_normal((2, 2))
    spec = "ij, jk, kl -> il"
    check(lambda *xs: fnp.einsum(spec, *xs, optimize=True), lambda *xs: np.einsum(spec, *xs), a, b, c)


def test_einsum_repeated_index_in_traced_operand_is_refused():
    with pytest.raises(fnn.NoGradientError, match="repeat"):
        fnn.grad(lambda x: fnp.einsum("ii->", x))(np.eye(2))
    np.testing.assert_allclose(fnp.einsum("ii->", np.eye(2)), 2.0)


# --------------------------------------------------------------------------------------------
# outer, inner, vdot


@given(a=shapes(max_dims=2, max_size=6).flatmap(arrays), b=shapes(max_dims=2, max_size=6).flatmap(arrays))
def test_outer(a, b):
    check(fnp.outer, np.outer, a, b, order=2)


@st.composite
def inner_operands(draw):
    na, nb = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    if na == 0 or nb == 0:
        a_shape = draw(shapes(min_dims=na, max_dims=na))
        b_shape = draw(shapes(min_dims=nb, max_dims=nb))
    else:
        k = draw(st.integers(0, 3))
        a_shape = draw(shapes(min_dims=na - 1, max_dims=na - 1, max_size=4)) + (k,)
        b_shape = draw(shapes(min_dims=nb - 1, max_dims=nb - 1, max_size=4)) + (k,)
    assume(math.prod(a_shape) <= MAX_SIZE and math.prod(b_shape) <= MAX_SIZE)
    return draw(arrays(a_shape)), draw(arrays(b_shape))


@given(ab=inner_operands())
def test_inner(ab):
    check(fnp.inner, np.inner, *ab, order=2)


@given(data=st.data(), n=st.sampled_from([0, 1, 2, 4, 6, 12]))
def test_vdot(data, n):
    candidates = [s for s in [(n,), (1, n), (n, 1), (2, n // 2), (n // 2, 2), (3, n // 3), (n // 3, 3)]
                  if math.prod(s) == n]
    a = data.draw(arrays(data.draw(st.sampled_from(candidates))))
    b = data.draw(arrays(data.draw(st.sampled_from(candidates))))
    check(fnp.vdot, np.vdot, a, b, order=2)


# --------------------------------------------------------------------------------------------
# norms


@given(data=st.data(), x=shapes(min_dims=1, max_dims=3, min_side=1).flatmap(away_from_zero),
       ord=st.sampled_from([None, 1, 2, np.inf, -np.inf, 3, 0.5, -1, -2, 0]), keepdims=st.booleans())
def test_vector_norm(data, x, ord, keepdims):
    nd = x.ndim
    axis = data.draw(st.one_of(st.integers(-nd, nd - 1), st.integers(0, nd - 1).map(lambda a: (a,))))
    if nd == 1 and data.draw(st.booleans()):
        axis = None
    f = lambda v: fnp.linalg.norm(v, ord=ord, axis=axis, keepdims=keepdims)  # noqa: E731
    check(f, lambda v: np.linalg.norm(v, ord=ord, axis=axis, keepdims=keepdims), x,
          order=2 if ord in (None, 2, 3) else 1)


@given(x=shapes(max_dims=3, min_side=0).flatmap(away_from_zero), keepdims=st.booleans())
def test_norm_default_flattens(x, keepdims):
    assume(x.size > 0)
    check(lambda v: fnp.linalg.norm(v, keepdims=keepdims), lambda v: np.linalg.norm(v, keepdims=keepdims),
          x, order=2)


@given(data=st.data(), x=shapes(min_dims=2, max_dims=3, min_side=1).flatmap(away_from_zero),
       ord=st.sampled_from([None, "fro", 1, -1, np.inf, -np.inf]), keepdims=st.booleans())
def test_matrix_norm(data, x, ord, keepdims):
    nd = x.ndim
    if nd == 2 and data.draw(st.booleans()):
        axis = None
    else:
        ax1 = data.draw(st.integers(-nd, nd - 1))
        ax2 = data.draw(st.integers(-nd, nd - 1).filter(lambda a: a % nd != ax1 % nd))
        axis = (ax1, ax2)
    f = lambda v: fnp.linalg.norm(v, ord=ord, axis=axis, keepdims=keepdims)  # noqa: E731
    check(f, lambda v: np.linalg.norm(v, ord=ord, axis=axis, keepdims=keepdims), x,
          order=2 if ord in (None, "fro") else 1)


@pytest.mark.parametrize("ord", [None, 1, 2, np.inf, -np.inf, 3, 0])
def test_vector_norm_of_integers_is_float(ord):
    x = np.array([3, -4, 0, 1])
    assert_close(fnp.linalg.norm(x, ord), np.linalg.norm(x, ord))
    assert_close(fnp.linalg.norm(x.tolist(), ord), np.linalg.norm(x.tolist(), ord))


@pytest.mark.parametrize("ord", [None, "fro", 1, -1, np.inf, -np.inf, 2, "nuc"])
def test_matrix_norm_of_integers_is_float(ord):
    x = np.array([[3, -4], [0, 1], [2, 2]])
    assert_close(fnp.linalg.norm(x, ord), np.linalg.norm(x, ord))


def test_norm_without_gradient_rule_is_refused():
    with pytest.raises(fnn.NoGradientError):
        fnn.grad(lambda m: fnp.linalg.norm(m, ord=2))(np.eye(2))
    np.testing.assert_allclose(fnp.linalg.norm(np.eye(2), ord=2), 1.0)


# --------------------------------------------------------------------------------------------
# inv, det, slogdet, solve


@st.composite
def square_stacks(draw, max_batch=2):
    n = draw(st.integers(0, 3))
    batch = tuple(draw(st.lists(st.integers(0, 3), max_size=max_batch)))
    assume(math.prod(batch) * n * n <= MAX_SIZE)
    return draw(well_conditioned(batch + (n, n)))


@given(a=square_stacks())
def test_inv(a):
    check(fnp.linalg.inv, np.linalg.inv, a, order=2)


@given(a=square_stacks(), flip=st.booleans())
def test_det(a, flip):
    if flip and a.shape[-1]:  # a negative determinant
        a = a.copy()
        a[..., 0, :] *= -1.0
    check(fnp.linalg.det, np.linalg.det, a, order=2)


@given(a=square_stacks(), flip=st.booleans())
def test_slogdet(a, flip):
    if flip and a.shape[-1]:
        a = a.copy()
        a[..., 0, :] *= -1.0
    sign, logdet = fnp.linalg.slogdet(a)
    ref_sign, ref_logdet = np.linalg.slogdet(a)
    assert_close(sign, ref_sign, "sign")
    assert_close(logdet, ref_logdet, "logdet")
    (t_sign, t_logdet), _ = fnn.vjp(fnp.linalg.slogdet, a)
    assert_close(t_sign, ref_sign, "traced sign")
    assert_close(t_logdet, ref_logdet, "traced logdet")
    check_grads(lambda m: fnp.linalg.slogdet(m)[1], [a], order=2)
    # NumPy's own np.linalg.slogdet on a traced value reaches fnn's rule
    check_grads(lambda m: np.linalg.slogdet(m)[1], [a])


def test_slogdet_gradient_is_inverse_transpose():
    a = np.array([[2.0, 1.0], [0.5, -3.0]])
    g = fnn.grad(lambda m: fnp.linalg.slogdet(m)[1])(a)
    np.testing.assert_allclose(g, np.linalg.inv(a).T, rtol=1e-12)


@st.composite
def solve_operands(draw):
    a = draw(square_stacks(max_batch=1))
    n = a.shape[-1]
    batch = a.shape[:-2]
    kind = draw(st.sampled_from(["vector", "matrix", "broadcast"]))
    if kind == "vector":
        b_shape = (n,)
    elif kind == "matrix":
        b_shape = batch + (n, draw(st.integers(1, 3)))
    else:  # a batch that broadcasts against a's
        b_shape = (draw(st.integers(1, 2)),) + tuple(1 for _ in batch) + (n, draw(st.integers(1, 2)))
    assume(math.prod(b_shape) <= MAX_SIZE)
    return a, draw(arrays(b_shape))


@given(ab=solve_operands())
def test_solve(ab):
    a, b = ab
    check(fnp.linalg.solve, np.linalg.solve, a, b, order=2)


def test_numpy_functions_dispatch_to_fnn_on_traced_values():
    """np.linalg.* and np.dot on traced values reach fnn's rules (via __array_function__)."""
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.5, 0.5, (3, 3)) + 3.0 * np.eye(3)
    b = rng.standard_normal(3)
    for np_f in (np.linalg.inv, np.linalg.det, lambda m: np.linalg.solve(m, b), lambda m: np.linalg.norm(m),
                 lambda m: np.dot(m, b), lambda m: np.einsum("ij,j->i", m, b), lambda m: np.tensordot(m, m)):
        check_grads(np_f, [a])
