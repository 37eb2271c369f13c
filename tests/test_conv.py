"""conv2d, conv1d, conv_transpose2d: against slow loop references, central differences,
their adjointness, float32 preservation, error messages, and (if installed) PyTorch."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from fnn.nn.functional.conv import conv1d, conv2d, conv_transpose2d
from gradcheck import check_grads


# --- slow, obviously-correct references (loops over output / input pixels) ---------------------

def ref_pads(padding, ks, dil):
    """(top, bottom, left, right) for an int, a pair, 'valid' or 'same'."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        out = []
        for k, d in zip(ks, dil):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return tuple(out)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return (ph, ph, pw, pw)


def ref_conv2d(x, w, b, stride, pads, dil, groups):
    n_, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    t, bo, le, r = pads
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (le, r)))
    oh = (h + t + bo - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + le + r - dil[1] * (kw - 1) - 1) // stride[1] + 1
    og = o // groups
    out = np.zeros((n_, o, oh, ow), dtype=np.result_type(x, w))
    for n in range(n_):
        for oc in range(o):
            g = oc // og
            for i in range(oh):
                for j in range(ow):
                    patch = xp[n, g * cg:(g + 1) * cg,
                               i * stride[0]:i * stride[0] + dil[0] * (kh - 1) + 1:dil[0],
                               j * stride[1]:j * stride[1] + dil[1] * (kw - 1) + 1:dil[1]]
                    out[n, oc, i, j] = np.sum(patch * w[oc]) + (0 if b is None else b[oc])
    return out


def ref_conv_transpose2d(x, w, b, stride, padding, output_padding, dil, groups):
    n_, cin, h, wd = x.shape
    _, og, kh, kw = w.shape
    cin_g = cin // groups
    hp = (h - 1) * stride[0] + dil[0] * (kh - 1) + 1 + output_padding[0]
    wp = (wd - 1) * stride[1] + dil[1] * (kw - 1) + 1 + output_padding[1]
    y = np.zeros((n_, og * groups, hp, wp))
    for n in range(n_):
        for c in range(cin):
            g = c // cin_g
            for i in range(h):
                for j in range(wd):
                    y[n, g * og:(g + 1) * og,
                      i * stride[0]:i * stride[0] + dil[0] * (kh - 1) + 1:dil[0],
                      j * stride[1]:j * stride[1] + dil[1] * (kw - 1) + 1:dil[1]] += x[n, c, i, j] * w[c]
    p0, p1 = padding
    y = y[:, :, p0:hp - p0, p1:wp - p1]
    if b is not None:
        y = y + b[None, :, None, None]
    return y


# --- strategies --------------------------------------------------------------------------------

@st.composite
def conv_cases(draw, max_n=2, max_cg=2, max_og=2, max_groups=3, max_k=3, max_extra=4):
    groups = draw(st.integers(1, max_groups))
    cg, og = draw(st.integers(1, max_cg)), draw(st.integers(1, max_og))
    n = draw(st.integers(1, max_n))
    kh, kw = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    kind = draw(st.sampled_from(["int", "pair", "same", "valid"]))
    if kind == "same":
        stride = (1, 1)
        padding = "same"
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = {"int": draw(st.integers(0, 2)), "pair": (draw(st.integers(0, 2)),
                                                            draw(st.integers(0, 2))),
                   "valid": "valid"}[kind]
    pads = ref_pads(padding, (kh, kw), dil)
    eff = (dil[0] * (kh - 1) + 1, dil[1] * (kw - 1) + 1)
    h = draw(st.integers(max(1, eff[0] - pads[0] - pads[1]), max(1, eff[0] - pads[0] - pads[1]) + max_extra))
    w_ = draw(st.integers(max(1, eff[1] - pads[2] - pads[3]), max(1, eff[1] - pads[2] - pads[3]) + max_extra))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, cg * groups, h, w_))
    w = rng.standard_normal((og * groups, cg, kh, kw))
    b = rng.standard_normal(og * groups) if draw(st.booleans()) else None
    stride_arg = stride if draw(st.booleans()) or stride[0] != stride[1] else stride[0]
    kw_ = dict(stride=stride_arg, padding=padding, dilation=dil, groups=groups)
    return x, w, b, kw_, dict(stride=stride, pads=pads, dil=dil, groups=groups)


# --- forward against the loop reference --------------------------------------------------------

@given(conv_cases(max_extra=5))
@settings(max_examples=60)
def test_conv2d_matches_loop_reference(case):
    x, w, b, kw, ref = case
    got = conv2d(x, w, b, **kw)
    np.testing.assert_allclose(got, ref_conv2d(x, w, b, **ref), rtol=1e-10, atol=1e-10)


@given(st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 2), st.sampled_from([0, 1, "same", "valid"]), st.integers(5, 9),
       st.integers(0, 2**32 - 1))
@settings(max_examples=30)
def test_conv1d_matches_conv2d_reference(n, groups, k, stride, dil, padding, length, seed):
    rng = np.random.default_rng(seed)
    if padding == "same":
        stride = 1
    x = rng.standard_normal((n, 2 * groups, length))
    w = rng.standard_normal((3 * groups, 2, k))
    b = rng.standard_normal(3 * groups)
    got = conv1d(x, w, b, stride=stride, padding=padding, dilation=dil, groups=groups)
    pads = ref_pads(padding if isinstance(padding, str) else (0, padding), (1, k), (1, dil))
    want = ref_conv2d(x[:, :, None], w[:, :, None], b, (1, stride), pads, (1, dil), groups)[:, :, 0]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@st.composite
def transpose_cases(draw):
    groups = draw(st.integers(1, 2))
    cin_g, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n = draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h, w_ = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    padding = tuple(draw(st.integers(0, (d * (k - 1)) // 2)) for k, d in zip((kh, kw), dil))
    op = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dil))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, cin_g * groups, h, w_))
    w = rng.standard_normal((cin_g * groups, og, kh, kw))
    b = rng.standard_normal(og * groups) if draw(st.booleans()) else None
    return x, w, b, dict(stride=stride, padding=padding, output_padding=op, dilation=dil,
                         groups=groups)


@given(transpose_cases())
@settings(max_examples=60)
def test_conv_transpose2d_matches_loop_reference(case):
    x, w, b, kw = case
    got = conv_transpose2d(x, w, b, **kw)
    want = ref_conv_transpose2d(x, w, b, kw["stride"], kw["padding"], kw["output_padding"],
                                kw["dilation"], kw["groups"])
    assert got.shape == want.shape
    s, p, op, d = kw["stride"], kw["padding"], kw["output_padding"], kw["dilation"]
    assert got.shape[2:] == tuple((n - 1) * s_ - 2 * p_ + d_ * (k - 1) + o_ + 1 for n, s_, p_, d_, k, o_
                                  in zip(x.shape[2:], s, p, d, w.shape[2:], op))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@given(conv_cases(max_extra=3).filter(lambda c: isinstance(c[3]["padding"], int)))
@settings(max_examples=40)
def test_conv_transpose2d_is_the_adjoint_of_conv2d(case):
    x, w, _, kw, ref = case
    y = conv2d(x, w, **kw)
    u = np.random.default_rng(1).standard_normal(y.shape)
    s, d, p = ref["stride"], ref["dil"], kw["padding"]
    op = tuple(n - ((m - 1) * s_ - 2 * p + d_ * (k - 1) + 1)
               for n, m, s_, d_, k in zip(x.shape[2:], y.shape[2:], s, d, w.shape[2:]))
    xt = conv_transpose2d(u, w, stride=s, padding=p, output_padding=op, dilation=d,
                          groups=kw["groups"])
    assert xt.shape == x.shape
    np.testing.assert_allclose(np.sum(y * u), np.sum(x * xt), rtol=1e-9, atol=1e-9)
    # and it is exactly the VJP of conv2d with respect to its input
    _, vjp_fn = fnn.vjp(lambda x_: conv2d(x_, w, **kw), x)
    np.testing.assert_allclose(vjp_fn(u)[0], xt, rtol=1e-10, atol=1e-10)


# --- gradients ---------------------------------------------------------------------------------

@given(conv_cases(max_n=1, max_cg=2, max_og=2, max_groups=2, max_k=3, max_extra=2)
       .filter(lambda c: c[0].size <= 50 and c[1].size <= 50))
@settings(max_examples=12)
def test_conv2d_gradients(case):
    x, w, b, kw, _ = case
    if b is None:
        check_grads(lambda x_, w_: conv2d(x_, w_, **kw), [x, w])
    else:
        check_grads(lambda x_, w_, b_: conv2d(x_, w_, b_, **kw), [x, w, b])


@given(transpose_cases().filter(lambda c: c[0].size <= 24 and c[1].size <= 36))
@settings(max_examples=10)
def test_conv_transpose2d_gradients(case):
    x, w, b, kw = case
    if b is None:
        check_grads(lambda x_, w_: conv_transpose2d(x_, w_, **kw), [x, w])
    else:
        check_grads(lambda x_, w_, b_: conv_transpose2d(x_, w_, b_, **kw), [x, w, b])


def test_conv1d_gradients():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 4, 5)), rng.standard_normal((4, 2, 3)), rng.standard_normal(4)
    check_grads(lambda x_, w_, b_: conv1d(x_, w_, b_, stride=2, padding=1, groups=2), [x, w, b])


def test_second_order():
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((1, 2, 4, 3)), rng.standard_normal((2, 1, 2, 2)), rng.standard_normal(2)
    check_grads(lambda x_, w_, b_: conv2d(x_, w_, b_, stride=(2, 1), padding=1, groups=2),
                [x, w, b], order=2)
    x = rng.standard_normal((1, 2, 2, 3))
    check_grads(lambda x_, w_, b_: conv_transpose2d(x_, w_, b_, stride=2, output_padding=1,
                                                    groups=2), [x, w, b], order=2)


def test_float32_stays_float32():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    assert conv2d(x, w, b, padding=1, groups=2).dtype == np.float32
    grads = fnn.grad(lambda x_, w_, b_: (conv2d(x_, w_, b_, padding=1, groups=2) ** 2).sum(),
                     argnums=(0, 1, 2))(x, w, b)
    assert [g.dtype for g in grads] == [np.float32] * 3
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bt = rng.standard_normal(6).astype(np.float32)
    assert conv_transpose2d(x, wt, bt, stride=2, groups=2).dtype == np.float32
    grads = fnn.grad(lambda x_, w_, b_: (conv_transpose2d(x_, w_, b_, stride=2, groups=2) ** 2).sum(),
                     argnums=(0, 1, 2))(x, wt, bt)
    assert [g.dtype for g in grads] == [np.float32] * 3
    x1 = rng.standard_normal((2, 4, 9)).astype(np.float32)
    assert conv1d(x1, w[:, :, 0], b, groups=2).dtype == np.float32


# --- errors ------------------------------------------------------------------------------------

def test_error_messages():
    x = np.zeros((2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels but the weight expects 4 "
                                         r"\(weight shape \(8, 4, 3, 3\), groups=1\)"):
        conv2d(x, np.zeros((8, 4, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input .*\(2, 3, 8\).*\(8, 3, 3, 3\)"):
        conv2d(np.zeros((2, 3, 8)), np.zeros((8, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"conv2d: groups=2 does not divide the input's 3 channels"
                                         r".*\(2, 3, 8, 8\).*\(8, 1, 3, 3\)"):
        conv2d(x, np.zeros((8, 1, 3, 3)), groups=2)
    with pytest.raises(ValueError, match=r"conv2d: groups=2 does not divide the weight's 5 output"):
        conv2d(np.zeros((2, 4, 8, 8)), np.zeros((5, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match=r"conv2d: the kernel .* is larger than the padded input"
                                         r".*\(2, 3, 8, 8\).*\(1, 3, 9, 3\)"):
        conv2d(x, np.zeros((1, 3, 9, 3)))
    with pytest.raises(ValueError, match=r"conv2d: padding='same' needs stride 1"):
        conv2d(x, np.zeros((1, 3, 3, 3)), padding="same", stride=2)
    with pytest.raises(ValueError, match=r"conv2d: bias has shape \(3,\)"):
        conv2d(x, np.zeros((1, 3, 3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"conv1d: input has 3 channels but the weight expects 2"):
        conv1d(np.zeros((1, 3, 8)), np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match=r"conv1d: expected a 3-D input"):
        conv1d(x, np.zeros((4, 3, 3)))
    with pytest.raises(ValueError, match=r"conv_transpose2d: input has 3 channels but the weight "
                                         r"expects 4"):
        conv_transpose2d(x, np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"conv_transpose2d: output_padding"):
        conv_transpose2d(x, np.zeros((3, 2, 3, 3)), stride=2, output_padding=2)


# --- PyTorch cross-check -----------------------------------------------------------------------

@given(conv_cases(max_extra=4), st.integers(0, 2**32 - 1))
@settings(max_examples=25)
def test_against_torch(case, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, kw, _ = case
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ty = F.conv2d(tx, tw, tb, **kw)
    y, vjp_fn = fnn.vjp(lambda x_, w_: conv2d(x_, w_, b, **kw), x, w)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    u = np.random.default_rng(seed).standard_normal(y.shape)
    ty.backward(torch.tensor(u))
    gx, gw = vjp_fn(u)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-10, atol=1e-10)


@given(transpose_cases())
@settings(max_examples=25)
def test_conv_transpose2d_against_torch(case):
    torch = pytest.importorskip("torch")
    x, w, b, kw = case
    want = torch.nn.functional.conv_transpose2d(
        torch.tensor(x), torch.tensor(w), None if b is None else torch.tensor(b), **kw).numpy()
    np.testing.assert_allclose(conv_transpose2d(x, w, b, **kw), want, rtol=1e-10, atol=1e-10)


def test_loop_reference_sanity():
    """The reference itself on a hand-computed case (a 2x2 box filter)."""
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    y = ref_conv2d(x, np.ones((1, 1, 2, 2)), None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    assert y[0, 0].tolist() == [[8.0, 12.0], [20.0, 24.0]]
    assert math.isclose(conv2d(x, np.ones((1, 1, 2, 2)))[0, 0, 1, 1], 24.0)
