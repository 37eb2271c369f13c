"""What a define-by-run step's bookkeeping costs between large array operations, against small ones.

W1's fnn step makes the same NumPy calls as the hand-written one; what it adds is Python work
between them (boxing the inputs, recording four nodes, the backward pass's dispatch, gathering
the gradients). Counted in instructions (`instructions.py`) that work is the same at any size,
but its time is not: after each product over W1's 3.2 MB weight the caches hold the arrays, not
the interpreter's objects, and the same Python work runs several times slower.

This times one W1 training step (784-1024-10, batch 128; and the same layout at 8-16-10, batch
2, where everything stays in cache) two ways, in one process with the two stacks alternating
step by step:

- bare tape: `tape_floor.py`'s closure tape (the same NumPy calls as the hand-written step);
- fnn: `fnn.value_and_grad` of the loss written with fnn's dense, ReLU and softmax cross-entropy
  primitives (no layers, no loss checks: the tracer alone).

Every array operation of both (each primitive's function and VJP rule in fnn, the same
expressions in the bare tape, one wrapper per cotangent in both, and the SGD update) goes through
a timing wrapper, so both pay about the same for being measured (fnn one wrapper call more: its
softmax cross-entropy has a forward and a rule, the bare tape computes both at once). "Rest" is
the step's time outside those operations: the bookkeeping.

    PYTHONPATH=. python benchmarks/cold_overhead.py [--steps 800] [--threads 2] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

from machine import cpu_description

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = {"W1 (784-1024-10, batch 128)": (784, 1024, 128), "small (8-16-10, batch 2)": (8, 16, 2)}


class Clock:
    """Time spent inside wrapped functions since the last `reset`."""

    def __init__(self):
        self.inside = 0.0

    def wrap(self, fn):
        now = time.perf_counter

        def timed(*args, **kwargs):
            t0 = now()
            try:
                return fn(*args, **kwargs)
            finally:
                self.inside += now() - t0

        return timed


def _problem(n_in: int, hidden: int, batch: int) -> tuple:
    import numpy as np  # noqa: PLC0415 (after the thread settings)

    rng = np.random.default_rng(0)
    f32 = np.float32
    weights = {"fc1.w": (rng.normal(size=(n_in, hidden)) / np.sqrt(n_in)).astype(f32),
               "fc1.b": np.zeros(hidden, f32),
               "fc2.w": (rng.normal(size=(hidden, 10)) / np.sqrt(hidden)).astype(f32),
               "fc2.b": np.zeros(10, f32)}
    data = {"x": rng.normal(size=(batch, n_in)).astype(f32), "y": rng.integers(0, 10, batch)}
    return weights, data


def _sgd(p: dict, grads: dict, lr: float) -> None:
    for k, g in grads.items():
        p[k] -= lr * g


def bare_step(clock: Clock, lr: float):
    """W1's step on a closure tape (as `tape_floor.bare_tape_mlp`), each array operation timed."""
    import numpy as np  # noqa: PLC0415

    from tape_floor import _Var  # noqa: PLC0415

    @clock.wrap
    def affine(x, w, b):
        y = x @ w
        y += b
        return y

    # one wrapper per cotangent, as fnn calls one rule per traced argument
    weight_grad = clock.wrap(lambda g, x: x.T @ g)
    bias_grad = clock.wrap(lambda g: g.sum(0))
    input_grad = clock.wrap(lambda g, w: g @ w.T)

    relu = clock.wrap(lambda a: np.maximum(a, 0))
    relu_grad = clock.wrap(lambda g, y: g * (y > 0))

    @clock.wrap
    def softmax_ce(z, labels):
        shifted = z - z.max(1, keepdims=True)
        e = np.exp(shifted)
        sums = e.sum(1, keepdims=True)
        n = shifted.shape[0]
        loss = (np.log(sums[:, 0]).sum() - shifted[np.arange(n), labels].sum()) / n
        e /= sums * n
        e[np.arange(n), labels] -= 1.0 / n
        return loss, e

    sgd = clock.wrap(_sgd)

    def step(p, batch):
        tape = []
        w = {k: _Var(v) for k, v in p.items()}

        def dense(x, weight, bias, need_dx=True):
            out = _Var(affine(x.value, weight.value, bias.value))

            def back():
                weight.add_grad(weight_grad(out.grad, x.value))
                bias.add_grad(bias_grad(out.grad))
                if need_dx:
                    x.add_grad(input_grad(out.grad, weight.value))
            tape.append(back)
            return out

        x = _Var(batch["x"])
        a = dense(x, w["fc1.w"], w["fc1.b"], need_dx=False)
        h = _Var(relu(a.value))
        tape.append(lambda: a.add_grad(relu_grad(h.grad, h.value)))
        z = dense(h, w["fc2.w"], w["fc2.b"])
        loss, dz = softmax_ce(z.value, batch["y"])
        tape.append(lambda: z.add_grad(dz))
        for back in reversed(tape):
            back()
        grads = {k: v.grad for k, v in w.items()}
        sgd(p, grads, lr)
        return p, loss, grads

    return step


def fnn_step(clock: Clock, lr: float):
    """W1's step with fnn's primitives under `fnn.value_and_grad`, their functions and rules timed."""
    import fnn  # noqa: PLC0415
    from fnn.losses.classification import _sce  # noqa: PLC0415
    from fnn.nn.functional import relu  # noqa: PLC0415
    from fnn.nn.functional.dense import dense_unchecked  # noqa: PLC0415

    for prim in (dense_unchecked, relu, _sce):  # (the primitives are module singletons: wrap once)
        if getattr(prim, "_timed_by", None) is clock:
            continue
        if getattr(prim, "_timed_by", None) is not None:
            raise RuntimeError("fnn's primitives are already timed by another clock")
        prim._timed_by = clock
        if prim.fwd is not None:
            prim.fwd = clock.wrap(prim.fwd)
        else:
            prim.fun = clock.wrap(prim.fun)
        for k in list(prim.vjps):
            prim.vjps[k] = clock.wrap(prim.vjps[k])

    def loss_fn(p, batch):
        h = relu(dense_unchecked(batch["x"], p["fc1.w"], p["fc1.b"]))
        z = dense_unchecked(h, p["fc2.w"], p["fc2.b"])
        return _sce(z, batch["y"], axis=1, smoothing=0.0, reduction="mean")

    value_and_grad = fnn.value_and_grad(loss_fn)
    sgd = clock.wrap(_sgd)

    def step(p, batch):
        loss, grads = value_and_grad(p, batch)
        sgd(p, grads, lr)
        return p, loss, grads

    return step


CLOCK = Clock()  # one for the process: fnn's primitives are wrapped once, for every size


def measure(sizes: tuple, steps: int) -> dict:
    """{stack: (median ms in operations, median ms of the rest, median ms per step)} at `sizes`."""
    import numpy as np  # noqa: PLC0415

    clock = CLOCK
    weights, batch = _problem(*sizes)
    stacks = {"bare tape": bare_step(clock, 0.1), "fnn": fnn_step(clock, 0.1)}
    params = {name: {k: np.array(v) for k, v in weights.items()} for name in stacks}
    times: dict = {name: [] for name in stacks}
    for i in range(steps + 20):
        for name, step in stacks.items():
            clock.inside = 0.0
            t0 = time.perf_counter()
            step(params[name], batch)
            total = time.perf_counter() - t0
            if i >= 20:  # warm-up steps
                times[name].append((clock.inside, total - clock.inside, total))
    return {name: tuple(statistics.median(c) * 1e3 for c in zip(*t)) for name, t in times.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=800, help="timed steps per stack and size")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", metavar="FILE.md")
    args = p.parse_args(argv)
    sys.path.insert(0, HERE)
    from tape_floor import emit, settle_process  # noqa: PLC0415

    settle_process(os.path.abspath(__file__), argv, args.threads)
    import numpy as np  # noqa: PLC0415 (after the thread settings)

    results = {label: measure(sizes, args.steps) for label, sizes in SIZES.items()}
    lines = [
        "## Bookkeeping between large array operations (`benchmarks/cold_overhead.py`)",
        "",
        f"- {time.strftime('%Y-%m-%d %H:%M:%S')}; {cpu_description()}; "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}; NumPy {np.__version__}; "
        f"{args.threads} BLAS threads; glibc's mmap/trim thresholds pinned as in suite.py",
        f"- one process, the two stacks alternating step by step, {args.steps} steps each per size; "
        "medians in µs",
        "",
        "| size | stack | array operations | rest (bookkeeping) | step | fnn's extra rest |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, res in results.items():
        extra = res["fnn"][1] - res["bare tape"][1]
        for name, (ops, rest, total) in res.items():
            lines.append(f"| {label} | {name} | {ops * 1e3:.1f} | {rest * 1e3:.1f} | {total * 1e3:.1f} | "
                         + (f"{extra * 1e3:.1f} ({extra / res['bare tape'][2]:.1%} of the bare step) |"
                            if name == "fnn" else "|"))
    big, small = (results[label] for label in SIZES)
    lines.append("")
    lines.append(f"fnn's extra bookkeeping costs {(big['fnn'][1] - big['bare tape'][1]) / (small['fnn'][1] - small['bare tape'][1]):.1f}x "
                 "as much time at W1's sizes as at the small ones, for the same instructions.")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
