"""What recording a tape costs, against hand-written NumPy, measured in one process, interleaved.

`--workload rnn` (the default): the loop of W4 (`stacks/common.py`: Elman RNN 1->64, 50 steps,
batch 32, readout every step, MSE) records four operations per time step (a column of the input
projection, a matrix product, a sum, a tanh) when it is differentiated by a define-by-run
autodiff. One training step of that loop is timed three ways:

- numpy: the hand-written forward and backward (`stacks/numpy_ref.py`), the floor;
- bare tape: each operation computes its value and appends a closure that, called in reverse
  order, adds the operation's input cotangents to its inputs; no broadcasting, dtype or
  shape checks, no release of residuals, no nested transforms: the least any define-by-run
  autodiff written in Python does per operation;
- fnn: the loop written with `fnn.numpy`, differentiated by `fnn.value_and_grad`
  (`stacks/fnn_impl.rnn_loop`).

The gap between the bare tape and numpy is what any tape pays for the loop's 200 small nodes; the
gap between fnn and the bare tape is what fnn's per-node guarantees cost.

`--workload mlp`: W1 (784-1024-10, ReLU, softmax cross-entropy, batch 128) has four nodes, so
its gap to the floor is fnn's fixed cost per step. The step is timed as numpy, a bare tape, and
fnn built up one layer of the library at a time:

- fnn, primitives only: `fnn.value_and_grad` of the loss written with the dense, ReLU and
  softmax cross-entropy primitives themselves, and SGD as `p -= lr * g` leaf by leaf;
- + loss checks: the loss through `fnn.losses.softmax_cross_entropy` (argument, shape and label
  range checks);
- + layers: the model as `fnn.nn.Sequential([Dense, ReLU, Dense])` (shape checks per layer);
- + fnn.optim: SGD with `fnn.optim.sgd` and `apply_updates(donate=True)`, the suite's fnn step.

Gradients of every stack are checked against the hand-written ones in float64 before timing.

    PYTHONPATH=. python benchmarks/tape_floor.py [--workload rnn|mlp] [--rounds 7] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from machine import cpu_description

HERE = os.path.dirname(os.path.abspath(__file__))


class _Var:
    """A value on a bare tape, and the cotangent gathered for it."""

    __slots__ = ("value", "grad")

    def __init__(self, value):
        self.value, self.grad = value, None

    def add_grad(self, g):
        self.grad = g if self.grad is None else self.grad + g


def _backward_and_sgd(tape: list, w: dict, p: dict, lr: float) -> dict:
    """Run a bare tape's closures newest first, then `p -= lr * g` for every weight; return the
    gradients."""
    for back in reversed(tape):
        back()
    grads = {k: v.grad for k, v in w.items()}
    for k, g in grads.items():
        p[k] -= lr * g
    return grads


def _copy_weights(weights: dict) -> dict:
    import numpy as np  # noqa: PLC0415 (imported after the thread settings)

    return {k: np.array(v) for k, v in weights.items()}


def bare_tape_rnn(lr: float):
    """(init, step) of the W4 loop differentiated by a bare closure tape."""
    import numpy as np  # noqa: PLC0415 (imported after the thread settings)

    def step(p, batch):
        tape = []
        w = {k: _Var(v) for k, v in p.items()}

        def matmul(a, b):
            out = _Var(a.value @ b.value)

            def back():
                g = out.grad
                a.add_grad(g @ b.value.T)
                b.add_grad(a.value.reshape(-1, a.value.shape[-1]).T @ g.reshape(-1, g.shape[-1]))
            tape.append(back)
            return out

        def add(a, b):  # b may broadcast along the leading axes (a bias)
            out = _Var(a.value + b.value)

            def back():
                g = out.grad
                a.add_grad(g)
                b.add_grad(g if g.shape == b.value.shape else g.reshape(-1, g.shape[-1]).sum(0))
            tape.append(back)
            return out

        def tanh(a):
            out = _Var(np.tanh(a.value))

            def back():
                a.add_grad(out.grad * (1 - out.value * out.value))
            tape.append(back)
            return out

        def column(a, t):
            out = _Var(a.value[:, t])

            def back():
                if a.grad is None:
                    a.grad = np.zeros_like(a.value)
                a.grad[:, t] += out.grad
            tape.append(back)
            return out

        def stack(hs):
            out = _Var(np.stack([h.value for h in hs], 1))

            def back():
                for t, h in enumerate(hs):
                    h.add_grad(out.grad[:, t])
            tape.append(back)
            return out

        x, y = _Var(batch["x"]), batch["y"]
        xp = add(matmul(x, w["rnn.w_ih"]), add(w["rnn.b_ih"], w["rnn.b_hh"]))
        h = _Var(np.zeros((x.value.shape[0], p["rnn.w_hh"].shape[0]), x.value.dtype))
        outs = []
        for t in range(x.value.shape[1]):
            h = tanh(add(column(xp, t), matmul(h, w["rnn.w_hh"])))
            outs.append(h)
        pred = add(matmul(stack(outs), w["out.w"]), w["out.b"])
        diff = pred.value - y
        loss = (diff * diff).sum() / diff.size
        pred.grad = diff * (2.0 / diff.size)
        return p, loss, _backward_and_sgd(tape, w, p, lr)

    return _copy_weights, step


def bare_tape_mlp(lr: float):
    """(init, step) of W1 differentiated by a bare closure tape: dense, ReLU, dense, softmax
    cross-entropy, with the same NumPy calls as the hand-written step."""
    import numpy as np  # noqa: PLC0415 (imported after the thread settings)

    def step(p, batch):
        tape = []
        w = {k: _Var(v) for k, v in p.items()}

        def dense(x, weight, bias, need_dx=True):
            y = x.value @ weight.value
            y += bias.value
            out = _Var(y)

            def back():
                g = out.grad
                weight.add_grad(x.value.T @ g)
                bias.add_grad(g.sum(0))
                if need_dx:
                    x.add_grad(g @ weight.value.T)
            tape.append(back)
            return out

        def relu(a):
            out = _Var(np.maximum(a.value, 0))

            def back():
                a.add_grad(out.grad * (out.value > 0))
            tape.append(back)
            return out

        def softmax_ce(z, labels):  # the mean loss; its closure seeds the logits' cotangent
            shifted = z.value - z.value.max(1, keepdims=True)
            e = np.exp(shifted)
            sums = e.sum(1, keepdims=True)
            n = shifted.shape[0]
            loss = (np.log(sums[:, 0]).sum() - shifted[np.arange(n), labels].sum()) / n
            e /= sums * n
            e[np.arange(n), labels] -= 1.0 / n  # e is now d loss / d logits
            tape.append(lambda: z.add_grad(e))
            return loss

        x = _Var(batch["x"])
        h = relu(dense(x, w["fc1.w"], w["fc1.b"], need_dx=False))
        loss = softmax_ce(dense(h, w["fc2.w"], w["fc2.b"]), batch["y"])
        return p, loss, _backward_and_sgd(tape, w, p, lr)

    return _copy_weights, step


def fnn_mlp_rungs(lr: float) -> dict:
    """W1's step with fnn, one layer of the library added at a time (see the module docstring):
    name -> (init, step)."""
    import numpy as np  # noqa: PLC0415 (imported after the thread settings)

    import fnn  # noqa: PLC0415
    from fnn import losses, nn  # noqa: PLC0415
    from fnn.losses.classification import _sce  # noqa: PLC0415 (the bare primitive, unchecked)
    from fnn.nn.functional import relu  # noqa: PLC0415
    from fnn.nn.functional.dense import dense_unchecked  # noqa: PLC0415
    from stacks import common, fnn_impl  # noqa: PLC0415

    def primitives_loss(p, batch):
        h = relu(dense_unchecked(batch["x"], p["fc1"]["w"], p["fc1"]["b"]))
        z = dense_unchecked(h, p["fc2"]["w"], p["fc2"]["b"])
        return _sce(z, batch["y"], axis=1, smoothing=0.0, reduction="mean")

    def checked_loss(p, batch):
        h = relu(dense_unchecked(batch["x"], p["fc1"]["w"], p["fc1"]["b"]))
        return losses.softmax_cross_entropy(dense_unchecked(h, p["fc2"]["w"], p["fc2"]["b"]), batch["y"])

    model = nn.Sequential([nn.Dense(1024, name="fc1"), nn.ReLU(), nn.Dense(10, name="fc2")])

    def layers_loss(p, batch):
        out, _ = model.apply(p, {}, batch["x"], train=True)
        return losses.softmax_cross_entropy(out, batch["y"])

    def with_sgd(loss_fn):
        value_and_grad = fnn.value_and_grad(loss_fn)

        def step(p, batch):
            loss, grads = value_and_grad(p, batch)
            for layer, leaves in grads.items():
                for k, g in leaves.items():
                    p[layer][k] -= lr * g
            return p, loss, grads

        return (lambda weights: common.unflatten({k: np.array(v) for k, v in weights.items()})), step

    return {
        "fnn, primitives only": with_sgd(primitives_loss),
        "+ loss checks": with_sgd(checked_loss),
        "+ layers": with_sgd(layers_loss),
        "+ fnn.optim (the suite's fnn step)": fnn_impl.mlp(lr),
    }


WORKLOAD_TITLES = {
    "rnn": "What a tape costs: the W4 RNN loop (`benchmarks/tape_floor.py`)",
    "mlp": "What each layer of fnn costs: the W1 step (`benchmarks/tape_floor.py --workload mlp`)",
}


def stacks_for(workload: str) -> dict:
    """name -> (init, step) for `workload`, the hand-written NumPy step first."""
    from stacks import common, fnn_impl, numpy_ref  # noqa: PLC0415

    lr = common.LR[workload]
    if workload == "rnn":
        return {"numpy (hand-written)": numpy_ref.rnn(lr), "bare tape": bare_tape_rnn(lr),
                "fnn (loop)": fnn_impl.rnn_loop(lr)}
    return {"numpy (hand-written)": numpy_ref.mlp(lr), "bare tape": bare_tape_mlp(lr),
            **fnn_mlp_rungs(lr)}


def check_gradients(workload: str, stacks: dict) -> None:
    """Raise unless every stack's float64 gradients after one step equal the hand-written ones
    (the first stack's), to rtol 1e-9."""
    import numpy as np  # noqa: PLC0415

    from stacks import common  # noqa: PLC0415

    weights, batch = common.init_weights(workload), common.make_batch(workload)
    w64 = {k: v.astype(np.float64) for k, v in weights.items()}
    b64 = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in batch.items()}
    names = list(stacks)
    g_ref = stacks[names[0]][1](stacks[names[0]][0](w64), b64)[2]
    for name in names[1:]:
        init, step = stacks[name]
        g = common.flatten(step(init(w64), b64)[2])  # (fnn's gradients are nested dicts)
        assert sorted(g) == sorted(g_ref), f"{name}: gradients for {sorted(g)}, expected {sorted(g_ref)}"
        for k in g_ref:
            np.testing.assert_allclose(np.asarray(g[k]), g_ref[k], rtol=1e-9, atol=1e-12,
                                       err_msg=f"{name}: {k}")


def settle_process(script: str, argv, threads: int) -> None:
    """Before NumPy is imported: restart `script` with the suite's pinned malloc thresholds
    unless they are set, and set the BLAS thread counts.

    glibc reads its malloc settings at start-up; without the pinned mmap and trim thresholds the
    hand-written W4 step takes 2.2 or 3.2 ms depending on what the process happened to allocate
    and free before (see suite.MALLOC_ENV)."""
    sys.path.insert(0, HERE)
    from suite import MALLOC_ENV  # noqa: PLC0415

    if any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        os.execve(sys.executable, [sys.executable, script, *(argv or sys.argv[1:])],
                  {**os.environ, **MALLOC_ENV})
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def emit(lines: list, out: str | None) -> None:
    """Print the Markdown report, and write it to `out` if given."""
    report = "\n".join(lines) + "\n"
    print(report)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(report)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=sorted(WORKLOAD_TITLES), default="rnn")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=30, help="timed steps per stack and round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", metavar="FILE.md")
    args = p.parse_args(argv)
    settle_process(os.path.abspath(__file__), argv, args.threads)
    import numpy as np  # noqa: PLC0415 (after the thread settings)

    from stacks import common  # noqa: PLC0415

    weights, batch = common.init_weights(args.workload), common.make_batch(args.workload)
    stacks = stacks_for(args.workload)
    names = list(stacks)
    check_gradients(args.workload, stacks)

    state = {name: init(weights) for name, (init, _) in stacks.items()}
    samples: dict[str, list] = {name: [] for name in stacks}
    for name in names:  # warm-up
        for _ in range(3):
            state[name] = stacks[name][1](state[name], batch)[0]
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            step = stacks[name][1]
            time.sleep(0.2)  # let the previous stack's BLAS threads go idle
            state[name] = step(state[name], batch)[0]
            for _ in range(args.steps):
                t0 = time.perf_counter()
                state[name] = step(state[name], batch)[0]
                samples[name].append(time.perf_counter() - t0)

    floor = float(np.median(samples[names[0]]))
    lines = [
        f"## {WORKLOAD_TITLES[args.workload]}",
        "",
        f"- {time.strftime('%Y-%m-%d %H:%M:%S')}; {cpu_description()}; "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}; NumPy {np.__version__}; "
        f"{args.threads} BLAS threads; glibc's mmap/trim thresholds pinned as in suite.py",
        f"- one process, {args.rounds} interleaved rounds x {args.steps} steps per stack; median ms per "
        "training step; every stack's float64 gradients equal the hand-written ones (rtol 1e-9)",
        "",
        "| stack | median ms/step | IQR | × numpy |",
        "|---|---:|---:|---:|",
    ]
    for name in names:
        s = np.array(samples[name]) * 1e3
        q1, med, q3 = np.percentile(s, [25, 50, 75])
        lines.append(f"| {name} | {med:.2f} | {q1:.2f} – {q3:.2f} | {med / (floor * 1e3):.3f} |")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
