"""One product for a weight used at every time step, against one product per step.

In the W4 loop, `h @ w_hh` at each of T steps gives w_hh the cotangent sum_t h_{t-1}.T @ g_t. A
tape that forms each term when its node is reached makes T small (K x N) @ (N x M) products and
T - 1 sums; fnn keeps the factors (`fnn.autodiff.pieces.Products`) and, when the sum is read,
joins them into one (K x TN) @ (TN x M) product, as the hand-written step does with the hidden
states it stored. This times the two ways on the same factors, alternating call by call in one
process, and, as a check that the difference reaches the gradient, fnn's W4 loop step with the
factors kept and with every product formed at once (`_PRODUCT_PIECE` set to -1).

    PYTHONPATH=. python benchmarks/weight_products.py [--rounds 15] [--threads 2] [--out FILE.md]
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


def _ways(np, hidden: int, batch: int, steps: int) -> dict:
    """The two ways of forming the weight's cotangent from the same T pairs of factors."""
    rng = np.random.default_rng(0)
    a_parts = [rng.standard_normal((batch, hidden)).astype(np.float32) for _ in range(steps)]
    g_parts = [rng.standard_normal((batch, hidden)).astype(np.float32) for _ in range(steps)]

    def per_step():
        total = a_parts[0].T @ g_parts[0]
        for a, g in zip(a_parts[1:], g_parts[1:]):
            total = total + a.T @ g
        return total

    def joined():
        return np.concatenate(a_parts).T @ np.concatenate(g_parts)

    np.testing.assert_allclose(joined(), per_step(), rtol=1e-4, atol=1e-3)
    return {"one product per step, summed": per_step, "one joined product (fnn)": joined}


def _loop_steps() -> dict:
    """fnn's W4 loop training step with the factors kept and with each product formed at once."""
    sys.path.insert(0, HERE)
    from fnn.autodiff import pieces  # noqa: PLC0415
    from stacks.common import init_weights, make_batch  # noqa: PLC0415
    from stacks.fnn_impl import rnn_loop  # noqa: PLC0415

    batch = make_batch("rnn")
    init, step = rnn_loop()
    kept_piece = pieces._PRODUCT_PIECE

    def run(piece):
        state = init(init_weights("rnn"))  # each way its own weights (the step updates them in place)

        def one():
            pieces._PRODUCT_PIECE = piece
            try:
                return step(state, batch)[2]  # the gradients
            finally:
                pieces._PRODUCT_PIECE = kept_piece
        return one

    return {"fnn W4 loop step, products formed per step": run(-1), "fnn W4 loop step (factors kept)": run(kept_piece)}


def _alternate(fns: dict, rounds: int, calls: int) -> dict:
    """Median ms per call of each function, the functions alternating round by round."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - t0) / calls * 1e3)
    return {name: (statistics.median(t), min(t), max(t)) for name, t in times.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", metavar="FILE.md")
    args = p.parse_args(argv)
    sys.path.insert(0, HERE)
    from tape_floor import emit, settle_process  # noqa: PLC0415

    settle_process(os.path.abspath(__file__), argv, args.threads)
    import numpy as np  # noqa: PLC0415 (after the thread settings)

    products = _alternate(_ways(np, hidden=64, batch=32, steps=50), args.rounds, calls=50)
    loop = _alternate(_loop_steps(), args.rounds, calls=10)
    lines = [
        "## One product for a weight used at every step (`benchmarks/weight_products.py`)",
        "",
        f"- {time.strftime('%Y-%m-%d %H:%M:%S')}; {cpu_description()}; {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}; NumPy {np.__version__}; {args.threads} BLAS threads; "
        "glibc's mmap/trim thresholds pinned as in suite.py",
        f"- one process, the two ways alternating, {args.rounds} rounds; median (min - max) ms per call",
        "",
        "| what | median ms | range | ratio |",
        "|---|---:|---:|---:|",
    ]
    for results in (products, loop):
        reference = next(iter(results.values()))[0]
        for name, (median, low, high) in results.items():
            lines.append(f"| {name} | {median:.3f} | {low:.3f} - {high:.3f} | {median / reference:.2f} |")
    lines += ["", "The factors: 50 steps of h (32 x 64) and g (32 x 64), float32, W4's sizes."]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
