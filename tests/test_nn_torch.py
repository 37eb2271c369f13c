"""fnn.nn layers against torch.nn: the same parameters give the same outputs and the same gradients.

PyTorch is optional (not a dependency of fnn): without it these tests are skipped. Each test builds
a torch module in float64, copies its parameters into fnn's layout, runs both on the same input and
compares the outputs and the gradients of a scalar loss with respect to the input and to every
parameter. The loss is `sum(r * y) + sum(y ** 2)` over every output array `y` (with a fixed random
`r`), so that normalised outputs, whose sum of squares is nearly constant, still give gradients
that carry information.

The default initialisations are checked against the bounds of torch's defaults at the end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fnn
import fnn.numpy as fnp
from fnn import nn

torch = pytest.importorskip("torch")

RTOL = 1e-10
ATOL = 1e-10


# --- helpers -------------------------------------------------------------------------------------

def _flat(tree, path=""):
    """(path, leaf) pairs of a tree of tuples, lists and dicts (dict keys sorted)."""
    if isinstance(tree, dict):
        out = []
        for k in sorted(tree):
            out.extend(_flat(tree[k], f"{path}/{k}"))
        return out
    if isinstance(tree, (tuple, list)):
        out = []
        for i, t in enumerate(tree):
            out.extend(_flat(t, f"{path}[{i}]"))
        return out
    return [(path, tree)]


def _to_torch(tree, requires_grad):
    if isinstance(tree, tuple):
        return tuple(_to_torch(t, requires_grad) for t in tree)
    if np.asarray(tree).dtype.kind in "iu":
        return torch.tensor(np.asarray(tree))
    return torch.tensor(np.asarray(tree, dtype=np.float64), requires_grad=requires_grad)


def _loss_weights(leaves):
    return [np.random.default_rng(1000 + i).standard_normal(tuple(y.shape)) for i, y in enumerate(leaves)]


def _fnn_loss(y):
    leaves = [leaf for _, leaf in _flat(y)]
    total = 0.0
    for r, leaf in zip(_loss_weights(leaves), leaves):
        total = total + fnp.sum(r * leaf) + fnp.sum(leaf * leaf)
    return total


def _torch_loss(y):
    leaves = [leaf for _, leaf in _flat(y)]
    total = 0.0
    for r, leaf in zip(_loss_weights(leaves), leaves):
        total = total + (torch.tensor(r) * leaf).sum() + (leaf * leaf).sum()
    return total


def _assert_trees_close(got, want, what):
    g, w = _flat(got), _flat(want)
    assert [p for p, _ in g] == [p for p, _ in w], f"{what}: structures differ"
    for (path, a), (_, b) in zip(g, w):
        a = np.asarray(a)
        b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
        assert a.shape == b.shape, f"{what}{path}: shape {a.shape} vs torch {b.shape}"
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=f"{what}{path}")


def _randomize(module, seed=0):
    """Replace every parameter of `module` by N(0, 0.5^2) draws (norm layers start at 1 and 0)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def check_layer(layer, module, to_fnn, x, torch_call=None, *, state=None, train=False, grad_x=True):
    """Compare `layer` (fnn) with `module` (torch, float64) on input `x` (an array or a tuple).

    `to_fnn(named)` maps {torch parameter name: array} to fnn's params dict (it is linear, so it also
    maps torch's gradients); `torch_call(module, tx)` runs the torch module on the torch copy of `x`
    and returns the output in the structure of fnn's. Returns (fnn output, fnn state, torch output).
    """
    module = module.double()
    module.train(train)
    torch_call = torch_call or (lambda m, t: m(t))
    named = dict(module.named_parameters())
    params = to_fnn({n: p.detach().numpy().copy() for n, p in named.items()})
    state = {} if state is None else state

    y, new_state = layer.apply(params, state, x, train=train)

    def loss(p, xx):
        return _fnn_loss(layer.apply(p, state, xx, train=train)[0])

    if grad_x:
        g_params, g_x = fnn.grad(loss, argnums=(0, 1))(params, x)
    else:
        g_params = fnn.grad(lambda p: loss(p, x))(params)

    tx = _to_torch(x, grad_x)
    ty = torch_call(module, tx)
    _assert_trees_close(y, ty, "output")
    _torch_loss(ty).backward()
    for n, p in named.items():
        assert p.grad is not None, f"torch parameter {n} got no gradient"
    t_grads = to_fnn({n: p.grad.numpy().copy() for n, p in named.items()})
    _assert_trees_close(g_params, t_grads, "grad params")
    if grad_x:
        _assert_trees_close(g_x, _grads_of(tx), "grad x")
    return y, new_state, ty


def _grads_of(tx):
    if isinstance(tx, tuple):
        return tuple(_grads_of(t) for t in tx)
    return tx.grad


def rng(seed=0):
    return np.random.default_rng(seed)


def linear_params(prefix=""):
    def to_fnn(p):
        out = {"w": p[f"{prefix}weight"].T}
        if f"{prefix}bias" in p:
            out["b"] = p[f"{prefix}bias"]
        return out
    return to_fnn


def conv_params(p):
    out = {"w": p["weight"]}
    if "bias" in p:
        out["b"] = p["bias"]
    return out


def norm_params(prefix=""):
    def to_fnn(p):
        if f"{prefix}weight" not in p:
            return {}
        return {"scale": p[f"{prefix}weight"], "bias": p[f"{prefix}bias"]}
    return to_fnn


# --- Dense, convolutions, pooling ----------------------------------------------------------------

@pytest.mark.parametrize("shape,use_bias", [((5, 7), True), ((2, 3, 7), True), ((4, 7), False)])
def test_dense_matches_linear(shape, use_bias):
    torch.manual_seed(0)
    x = rng().standard_normal(shape)
    check_layer(nn.Dense(6, use_bias=use_bias), torch.nn.Linear(7, 6, bias=use_bias), linear_params(), x)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=2, dilation=2, groups=2),
    dict(kernel_size=1, groups=4, use_bias=False),
])
def test_conv1d_matches_torch(kw):
    torch.manual_seed(1)
    tkw = {("bias" if k == "use_bias" else k): v for k, v in kw.items()}
    x = rng(1).standard_normal((3, 4, 11))
    check_layer(nn.Conv1d(8, **kw), torch.nn.Conv1d(4, 8, **tkw), conv_params, x)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=3, stride=1, padding=2, dilation=2),
    dict(kernel_size=3, stride=2, padding=1, dilation=(2, 1), groups=2),
    dict(kernel_size=3, padding=1, groups=4, use_bias=False),
])
def test_conv2d_matches_torch(kw):
    torch.manual_seed(2)
    tkw = {("bias" if k == "use_bias" else k): v for k, v in kw.items()}
    x = rng(2).standard_normal((2, 4, 9, 8))
    check_layer(nn.Conv2d(8, **kw), torch.nn.Conv2d(4, 8, **tkw), conv_params, x)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kw", [dict(kernel_size=3), dict(kernel_size=4),
                                dict(kernel_size=(2, 5), dilation=(3, 1))])
def test_conv2d_same_padding_matches_torch(kw):
    torch.manual_seed(3)
    x = rng(3).standard_normal((2, 3, 7, 6))
    check_layer(nn.Conv2d(5, padding="same", **kw), torch.nn.Conv2d(3, 5, padding="same", **kw),
                conv_params, x)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(kernel_size=(3, 4), stride=(2, 3), padding=(1, 0), output_padding=(0, 2)),
    dict(kernel_size=3, stride=2, padding=1, output_padding=1, groups=2),
    dict(kernel_size=3, stride=2, dilation=2, output_padding=1),
])
def test_conv_transpose2d_matches_torch(kw):
    torch.manual_seed(4)
    x = rng(4).standard_normal((2, 4, 5, 6))
    check_layer(nn.ConvTranspose2d(6, **kw), torch.nn.ConvTranspose2d(4, 6, **kw), conv_params, x)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 0)),
])
def test_max_pool2d_matches_torch(kw):
    x = rng(5).standard_normal((2, 3, 9, 8))
    check_layer(nn.MaxPool2d(kw["kernel_size"], **{k: v for k, v in kw.items() if k != "kernel_size"}),
                torch.nn.MaxPool2d(**kw), lambda p: {}, x)


def test_max_pool2d_pads_with_minus_infinity_like_torch():
    x = -np.abs(rng(5).standard_normal((1, 2, 5, 5))) - 1.0  # every value below the zero of a naive pad
    check_layer(nn.MaxPool2d(3, stride=2, padding=1), torch.nn.MaxPool2d(3, 2, 1), lambda p: {}, x)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1)),
])
def test_avg_pool2d_matches_torch(kw):
    x = rng(6).standard_normal((2, 3, 9, 8))
    check_layer(nn.AvgPool2d(kw["kernel_size"], **{k: v for k, v in kw.items() if k != "kernel_size"}),
                torch.nn.AvgPool2d(**kw), lambda p: {}, x)


@pytest.mark.parametrize("in_hw,out", [((7, 5), (3, 2)), ((8, 8), 4), ((6, 9), (4, 5)), ((5, 5), 1)])
def test_adaptive_avg_pool2d_matches_torch(in_hw, out):
    x = rng(7).standard_normal((2, 3) + in_hw)
    check_layer(nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out), lambda p: {}, x)


ACTIVATIONS = {
    "relu": (lambda: nn.ReLU(), lambda: torch.nn.ReLU()),
    "gelu": (lambda: nn.GELU(), lambda: torch.nn.GELU()),
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), lambda: torch.nn.GELU(approximate="tanh")),
    "sigmoid": (lambda: nn.Sigmoid(), lambda: torch.nn.Sigmoid()),
    "tanh": (lambda: nn.Tanh(), lambda: torch.nn.Tanh()),
    "silu": (lambda: nn.SiLU(), lambda: torch.nn.SiLU()),
    "leaky_relu": (lambda: nn.LeakyReLU(), lambda: torch.nn.LeakyReLU()),
    "leaky_relu_0.2": (lambda: nn.LeakyReLU(negative_slope=0.2), lambda: torch.nn.LeakyReLU(0.2)),
    "elu": (lambda: nn.ELU(), lambda: torch.nn.ELU()),
    "elu_0.5": (lambda: nn.ELU(alpha=0.5), lambda: torch.nn.ELU(alpha=0.5)),
    "softmax": (lambda: nn.Softmax(), lambda: torch.nn.Softmax(dim=-1)),
    "softmax_axis1": (lambda: nn.Softmax(axis=1), lambda: torch.nn.Softmax(dim=1)),
    "log_softmax": (lambda: nn.LogSoftmax(), lambda: torch.nn.LogSoftmax(dim=-1)),
    "flatten": (lambda: nn.Flatten(), lambda: torch.nn.Flatten()),
    "dropout_eval": (lambda: nn.Dropout(0.3), lambda: torch.nn.Dropout(0.3)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_parameter_free_layers_match_torch(name):
    make, tmake = ACTIVATIONS[name]
    x = rng(30).standard_normal((3, 4, 5)) * 3
    check_layer(make(), tmake(), lambda p: {}, x)


# --- normalisation -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 4), (5, 4, 7), (3, 4, 5, 6)])
def test_batch_norm_train_matches_torch(shape):
    x = rng(8).standard_normal(shape) * 2.0 + 0.5
    tmod = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d}[len(shape)](
        4, momentum=0.1)
    _randomize(tmod, 8)
    layer = nn.BatchNorm(momentum=0.1)
    _, state = layer.init(fnn.random.key(0), x)
    _, new_state, _ = check_layer(layer, tmod, norm_params(), x, state=state, train=True)
    # one training step of each: the running statistics after it (momentum 0.1, unbiased variance)
    np.testing.assert_allclose(new_state["mean"], tmod.running_mean.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(new_state["var"], tmod.running_var.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 6)])
def test_batch_norm_eval_matches_torch(shape):
    x = rng(9).standard_normal(shape)
    tmod = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(4).double()
    _randomize(tmod, 9)
    r = rng(10)
    mean, var = r.standard_normal(4), r.uniform(0.5, 2.0, 4)
    tmod.running_mean.copy_(torch.tensor(mean))
    tmod.running_var.copy_(torch.tensor(var))
    state = {"mean": mean, "var": var}
    _, new_state, _ = check_layer(nn.BatchNorm(), tmod, norm_params(), x, state=state, train=False)
    np.testing.assert_array_equal(new_state["mean"], mean)  # evaluation leaves the statistics alone
    np.testing.assert_array_equal(new_state["var"], var)


def test_batch_norm_running_stats_over_several_steps_match_torch():
    layer = nn.BatchNorm(momentum=0.3)
    tmod = torch.nn.BatchNorm2d(3, momentum=0.3).double()
    xs = [rng(20 + i).standard_normal((4, 3, 2, 5)) * (i + 1) for i in range(3)]
    params, state = layer.init(fnn.random.key(0), xs[0].astype(np.float64))
    for x in xs:
        _, state = layer.apply(params, state, x, train=True)
        tmod(torch.tensor(x))
    np.testing.assert_allclose(state["mean"], tmod.running_mean.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(state["var"], tmod.running_var.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 8)])
def test_layer_norm_matches_torch(shape):
    tmod = torch.nn.LayerNorm(8)
    _randomize(tmod, 11)
    check_layer(nn.LayerNorm(), tmod, norm_params(), rng(11).standard_normal(shape) * 3 + 1)


def test_layer_norm_without_affine_matches_torch():
    check_layer(nn.LayerNorm(affine=False), torch.nn.LayerNorm(8, elementwise_affine=False),
                lambda p: {}, rng(12).standard_normal((4, 8)))


@pytest.mark.parametrize("groups,shape", [(2, (3, 6, 4, 5)), (3, (2, 6, 7)), (6, (2, 6, 3, 3)),
                                          (1, (2, 6, 4))])
def test_group_norm_matches_torch(groups, shape):
    tmod = torch.nn.GroupNorm(groups, 6)
    _randomize(tmod, 13)
    check_layer(nn.GroupNorm(groups), tmod, norm_params(), rng(13).standard_normal(shape) * 2 - 1)


# --- embedding -----------------------------------------------------------------------------------

def test_embedding_matches_torch():
    torch.manual_seed(14)
    ids = np.array([[1, 4, 4, 0], [9, 1, 1, 1]], dtype=np.int64)  # repeated ids accumulate
    check_layer(nn.Embedding(10, 5), torch.nn.Embedding(10, 5), lambda p: {"table": p["weight"]},
                ids, grad_x=False)


# --- recurrent -----------------------------------------------------------------------------------

def rnn_params(p):
    return {"w_ih": p["weight_ih_l0"].T, "w_hh": p["weight_hh_l0"].T,
            "b_ih": p["bias_ih_l0"], "b_hh": p["bias_hh_l0"]}


RECURRENT = {
    "rnn": (nn.RNN, lambda f, h: torch.nn.RNN(f, h, batch_first=True, nonlinearity="tanh")),
    "lstm": (nn.LSTM, lambda f, h: torch.nn.LSTM(f, h, batch_first=True)),
    "gru": (nn.GRU, lambda f, h: torch.nn.GRU(f, h, batch_first=True)),
}


@pytest.mark.parametrize("kind", sorted(RECURRENT))
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("return_carry", [False, True])
def test_recurrent_matches_torch(kind, with_h0, return_carry):
    fnn_cls, torch_cls = RECURRENT[kind]
    n, t, f, h = 3, 5, 4, 6
    torch.manual_seed(15)
    tmod = torch_cls(f, h)
    r = rng(15)
    x = r.standard_normal((n, t, f))
    lstm = kind == "lstm"
    if with_h0:
        h0 = r.standard_normal((n, h)) * 0.5
        carry0 = (h0, r.standard_normal((n, h)) * 0.5) if lstm else h0
        x_in = (x, carry0)
    else:
        x_in = x

    def call(m, tx):
        if with_h0:
            xx, c0 = tx
            c0 = tuple(c.unsqueeze(0) for c in c0) if lstm else c0.unsqueeze(0)
            y, carry = m(xx, c0)
        else:
            y, carry = m(tx)
        carry = tuple(c[0] for c in carry) if lstm else carry[0]
        return (y, carry) if return_carry else y

    out, _, _ = check_layer(fnn_cls(h, return_carry=return_carry), tmod, rnn_params, x_in, call)
    if return_carry:  # the final carry's h is the last output
        y, carry = out
        np.testing.assert_array_equal(np.asarray(carry[0] if lstm else carry), np.asarray(y)[:, -1])


# --- attention -----------------------------------------------------------------------------------

def mha_params(prefix=""):
    def to_fnn(p):
        w, b = p[f"{prefix}in_proj_weight"], p[f"{prefix}in_proj_bias"]
        d = w.shape[1]
        return {"wq": w[:d].T, "wk": w[d:2 * d].T, "wv": w[2 * d:].T,
                "bq": b[:d], "bk": b[d:2 * d], "bv": b[2 * d:],
                "wo": p[f"{prefix}out_proj.weight"].T, "bo": p[f"{prefix}out_proj.bias"]}
    return to_fnn


def _torch_causal(lq, lk):
    # torch's boolean attn_mask is True where attention is NOT allowed
    return torch.triu(torch.ones(lq, lk, dtype=torch.bool), diagonal=1)


@pytest.mark.parametrize("num_heads", [1, 2, 4])
@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_self_attention_matches_torch(num_heads, causal):
    torch.manual_seed(16)
    d, length = 8, 5
    tmod = torch.nn.MultiheadAttention(d, num_heads, batch_first=True)
    _randomize(tmod, 16)  # nonzero biases
    x = rng(16).standard_normal((3, length, d))
    mask = _torch_causal(length, length) if causal else None

    def call(m, tx):
        return m(tx, tx, tx, attn_mask=mask, need_weights=False)[0]

    check_layer(nn.MultiHeadAttention(num_heads, causal=causal), tmod, mha_params(), x, call)


def test_multi_head_attention_explicit_mask_and_cross_attention_match_torch():
    torch.manual_seed(17)
    d, lq, lk = 8, 4, 6
    tmod = torch.nn.MultiheadAttention(d, 2, batch_first=True)
    _randomize(tmod, 17)
    r = rng(17)
    xq, xkv = r.standard_normal((2, lq, d)), r.standard_normal((2, lk, d))
    blocked = r.uniform(size=(lq, lk)) < 0.4
    blocked[:, 0] = False  # every query sees at least one key
    t_mask = torch.tensor(blocked)

    layer = nn.MultiHeadAttention(2)
    fnn_mask = ~blocked  # fnn's mask is True where attention is allowed

    def call(m, tx):
        q, kv = tx
        return m(q, kv, kv, attn_mask=t_mask, need_weights=False)[0]

    class WithMask:  # the mask is not differentiated: close over it
        def apply(self, params, state, x, train=False):
            return layer.apply(params, state, (x[0], x[1], fnn_mask), train=train)

    check_layer(WithMask(), tmod, mha_params(), (xq, xkv), call)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_transformer_encoder_layer_matches_torch(norm_first, causal):
    torch.manual_seed(18)
    d, heads, ff, length = 8, 2, 16, 5
    tmod = torch.nn.TransformerEncoderLayer(d, heads, dim_feedforward=ff, dropout=0.1, batch_first=True,
                                            norm_first=norm_first)
    _randomize(tmod, 18)
    x = rng(18).standard_normal((3, length, d))
    mask = _torch_causal(length, length) if causal else None

    def to_fnn(p):
        return {"attention": mha_params("self_attn.")(p), "norm1": norm_params("norm1.")(p),
                "linear1": linear_params("linear1.")(p), "linear2": linear_params("linear2.")(p),
                "norm2": norm_params("norm2.")(p)}

    layer = nn.TransformerEncoderLayer(heads, dim_feedforward=ff, dropout_rate=0.1, norm_first=norm_first,
                                       causal=causal)
    check_layer(layer, tmod, to_fnn, x, lambda m, tx: m(tx, src_mask=mask), train=False)


# --- a small Sequential --------------------------------------------------------------------------

def test_small_sequential_matches_torch():
    torch.manual_seed(19)
    model = nn.Sequential([nn.Conv2d(4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dense(5)])
    tmod = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 4, 5))
    x = rng(19).standard_normal((2, 3, 6, 8))
    names = model.names
    conv_name, dense_name = names[0], names[4]
    params, _ = model.init(fnn.random.key(0), x)
    assert sorted(params) == sorted([conv_name, dense_name])

    def to_fnn(p):
        return {conv_name: {"w": p["0.weight"], "b": p["0.bias"]},
                dense_name: {"w": p["4.weight"].T, "b": p["4.bias"]}}

    check_layer(model, tmod, to_fnn, x)


# --- default initialisation against torch's ------------------------------------------------------

def _uniform_bound_ok(a, bound, n_min=2000):
    a = np.asarray(a, dtype=np.float64)
    assert np.abs(a).max() <= bound * (1 + 1e-6)
    if a.size >= n_min:  # a large draw comes close to the bound and has the std of U(-b, b)
        assert np.abs(a).max() > 0.98 * bound
        assert abs(a.std() - bound / math.sqrt(3)) < 0.05 * bound / math.sqrt(3)
        assert abs(a.mean()) < 0.05 * bound


def test_dense_default_init_matches_torch_bounds():
    params, _ = nn.Dense(512).init(fnn.random.key(0), nn.ShapeDtype((1, 1000)))
    tmod = torch.nn.Linear(1000, 512)
    bound = 1 / math.sqrt(1000)
    _uniform_bound_ok(params["w"], bound)
    _uniform_bound_ok(tmod.weight.detach().numpy(), bound)
    assert np.abs(params["b"]).max() <= bound and np.abs(params["b"]).max() > 0.9 * bound


@pytest.mark.parametrize("cls,tcls,in_shape,groups", [
    (nn.Conv2d, torch.nn.Conv2d, (1, 32, 8, 8), 1),
    (nn.Conv2d, torch.nn.Conv2d, (1, 32, 8, 8), 4),
    (nn.Conv1d, torch.nn.Conv1d, (1, 32, 8), 1),
    (nn.ConvTranspose2d, torch.nn.ConvTranspose2d, (1, 32, 8, 8), 2),
])
def test_conv_default_init_matches_torch_bounds(cls, tcls, in_shape, groups):
    out, k = 64, 3
    params, _ = cls(out, k, groups=groups).init(fnn.random.key(1), nn.ShapeDtype(in_shape))
    tmod = tcls(in_shape[1], out, k, groups=groups)
    assert params["w"].shape == tuple(tmod.weight.shape)
    fan_in = math.prod(tmod.weight.shape[1:])  # torch's fan: dim 1 times the receptive field
    bound = 1 / math.sqrt(fan_in)
    _uniform_bound_ok(params["w"], bound)
    _uniform_bound_ok(tmod.weight.detach().numpy(), bound)
    assert np.abs(params["b"]).max() <= bound
    assert np.abs(tmod.bias.detach().numpy()).max() <= bound


@pytest.mark.parametrize("kind", sorted(RECURRENT))
def test_recurrent_default_init_matches_torch_bounds(kind):
    fnn_cls, torch_cls = RECURRENT[kind]
    h = 64
    params, _ = fnn_cls(h).init(fnn.random.key(2), nn.ShapeDtype((1, 3, 48)))
    tparams = rnn_params({n: p.detach().numpy() for n, p in torch_cls(48, h).named_parameters()})
    bound = 1 / math.sqrt(h)
    for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
        assert params[name].shape == tparams[name].shape, name
        _uniform_bound_ok(params[name], bound, n_min=10 ** 9 if name.startswith("b") else 2000)
        _uniform_bound_ok(tparams[name], bound, n_min=10 ** 9 if name.startswith("b") else 2000)


def test_embedding_default_init_is_standard_normal():
    params, _ = nn.Embedding(1000, 64).init(fnn.random.key(3), nn.ShapeDtype((2,), np.int64))
    table = np.asarray(params["table"], np.float64)
    tw = torch.nn.Embedding(1000, 64).weight.detach().numpy()
    assert table.shape == tw.shape
    assert abs(table.std() - 1) < 0.02 and abs(table.mean()) < 0.02
    assert abs(tw.std() - 1) < 0.02


def test_norm_default_init_matches_torch():
    for layer, tmod, spec in [(nn.BatchNorm(), torch.nn.BatchNorm2d(6), (2, 6, 3, 3)),
                              (nn.LayerNorm(), torch.nn.LayerNorm(6), (2, 6)),
                              (nn.GroupNorm(3), torch.nn.GroupNorm(3, 6), (2, 6, 4))]:
        params, state = layer.init(fnn.random.key(0), nn.ShapeDtype(spec))
        np.testing.assert_array_equal(params["scale"], tmod.weight.detach().numpy())
        np.testing.assert_array_equal(params["bias"], tmod.bias.detach().numpy())
        if isinstance(tmod, torch.nn.BatchNorm2d):
            np.testing.assert_array_equal(state["mean"], tmod.running_mean.numpy())
            np.testing.assert_array_equal(state["var"], tmod.running_var.numpy())


def test_multi_head_attention_default_output_projection_and_biases_match_torch():
    d = 256
    params, _ = nn.MultiHeadAttention(4).init(fnn.random.key(4), nn.ShapeDtype((1, 2, d)))
    tmod = torch.nn.MultiheadAttention(d, 4)
    _uniform_bound_ok(params["wo"], 1 / math.sqrt(d))
    _uniform_bound_ok(tmod.out_proj.weight.detach().numpy(), 1 / math.sqrt(d))
    for name in ("bq", "bk", "bv", "bo"):
        assert not np.any(params[name])
    assert not tmod.in_proj_bias.detach().numpy().any() and not tmod.out_proj.bias.detach().numpy().any()


def test_multi_head_attention_default_in_projection_matches_torch_bounds():
    d = 256
    params, _ = nn.MultiHeadAttention(4).init(fnn.random.key(5), nn.ShapeDtype((1, 2, d)))
    tw = torch.nn.MultiheadAttention(d, 4).in_proj_weight.detach().numpy()
    torch_bound = math.sqrt(6.0 / (d + 3 * d))
    _uniform_bound_ok(tw, torch_bound)
    for name in ("wq", "wk", "wv"):
        _uniform_bound_ok(params[name], torch_bound)


def test_transformer_encoder_layer_default_init_matches_torch_bounds():
    d, ff = 64, 256
    layer = nn.TransformerEncoderLayer(4, dim_feedforward=ff)
    params, _ = layer.init(fnn.random.key(6), nn.ShapeDtype((1, 2, d)))
    tmod = torch.nn.TransformerEncoderLayer(d, 4, dim_feedforward=ff, batch_first=True)
    for name, fan_in in (("linear1", d), ("linear2", ff)):
        tlin = getattr(tmod, name)
        assert params[name]["w"].shape == tuple(tlin.weight.T.shape)
        _uniform_bound_ok(params[name]["w"], 1 / math.sqrt(fan_in))
        _uniform_bound_ok(tlin.weight.detach().numpy(), 1 / math.sqrt(fan_in))
        assert np.abs(params[name]["b"]).max() <= 1 / math.sqrt(fan_in)
    for name in ("norm1", "norm2"):
        np.testing.assert_array_equal(params[name]["scale"], getattr(tmod, name).weight.detach().numpy())
        np.testing.assert_array_equal(params[name]["bias"], getattr(tmod, name).bias.detach().numpy())
