"""Per-op tracing overhead of fnn.grad, against NumPy floors and HIPS autograd.

The workload is the gradient of a chain of elementwise ops ending in a sum. The chain repeats a
fixed block of ten ops (a small residual cell, so values and gradients stay of order one over
1,000 ops):

    t = sin(h); t = t * c1; t = t + c2; t = tanh(t)          # c1, c2: constant arrays
    u = t * 0.5; u = exp(u); u = u - 1.0                      # exp of a scaled value
    t = t * u; t = t / 8.0; h = h + t                         # traced * traced, residual add

Stacks, each timed on the same input:

- numpy forward:       the same chain on plain arrays, no gradient (the floor for the forward)
- numpy hand-written:  forward + a hand-written backward of the chain (the floor for the gradient)
- fnn.grad:            the chain written with fnn.numpy, differentiated by fnn
- autograd.grad:       the chain written with autograd.numpy (skipped, with a note, if missing)

Every gradient is checked against the hand-written one (which is itself checked against central
differences) before anything is timed. Timing: warm-up calls, then several rounds; each round
times every stack a few calls in a row, with the stack order rotated from round to round. Reported
is the median per call over all rounds, with its interquartile range and min-max.

Run from the repository root:

    PYTHONPATH=. python benchmarks/overhead.py [--quick] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import sys

from machine import cpu_description


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 50-op chain, 200x200 large array, 3 rounds (a few seconds)")
    p.add_argument("--out", metavar="FILE.md", help="also write the Markdown report to this file")
    p.add_argument("--ops", type=int, default=None,
                   help="elementwise ops in the chain, a multiple of 10 (default 1000; 50 with --quick)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7; 3 with --quick)")
    p.add_argument("--small-reps", type=int, default=None,
                   help="calls per stack per round, small case (default 30; 5 with --quick)")
    p.add_argument("--large-reps", type=int, default=None,
                   help="calls per stack per round, large case (default 1)")
    p.add_argument("--large-dtype", choices=("float64", "float32"), default="float64",
                   help="dtype of the large case (default float64)")
    p.add_argument("--no-large", action="store_true", help="run the small case only")
    p.add_argument("--threads", type=int, default=2,
                   help="OMP/OpenBLAS/MKL threads, set before NumPy is imported (default 2)")
    p.add_argument("--memory", action="store_true",
                   help="after timing each case, one extra untimed call per stack under tracemalloc "
                        "for its peak traced memory (NumPy reports its array buffers to tracemalloc)")
    p.add_argument("--profile", type=int, metavar="N", default=0,
                   help="after timing, cProfile fnn.grad on the small case and print the top N "
                        "functions by own time")
    args = p.parse_args(argv)
    if args.ops is None:
        args.ops = 50 if args.quick else 1000
    if args.ops <= 0 or args.ops % BLOCK_OPS:
        p.error(f"--ops must be a positive multiple of {BLOCK_OPS}")
    if args.rounds is None:
        args.rounds = 3 if args.quick else 7
    if args.small_reps is None:
        args.small_reps = 5 if args.quick else 30
    if args.large_reps is None:
        args.large_reps = 1
    return args


BLOCK_OPS = 10  # elementwise ops per block of the chain (see `chain`)


def pin_threads(n: int) -> None:
    """Pin the BLAS/OpenMP thread pools; must run before NumPy is first imported."""
    if "numpy" in sys.modules:
        raise RuntimeError("pin_threads must run before numpy is imported")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)


# --------------------------------------------------------------------------------------------
# The workload. `m` is a NumPy-like namespace: numpy, fnn.numpy or autograd.numpy.


def chain(m, x, c1, c2, n_blocks):
    """The elementwise chain, `n_blocks * 10` ops; returns an array of x's shape."""
    h = x
    for _ in range(n_blocks):
        t = m.sin(h)
        t = t * c1
        t = t + c2
        t = m.tanh(t)
        u = t * 0.5
        u = m.exp(u)
        u = u - 1.0
        t = t * u
        t = t / 8.0
        h = h + t
    return h


def loss(m, x, c1, c2, n_blocks):
    return m.sum(chain(m, x, c1, c2, n_blocks))


def handwritten_grad(np, x, c1, c2, n_blocks, with_value=False):
    """The chain's forward in plain NumPy, then its backward written by hand."""
    tape = []
    h = x
    for _ in range(n_blocks):
        t = np.sin(h)
        t = t * c1
        t = t + c2
        t = np.tanh(t)
        e = t * 0.5
        e = np.exp(e)
        u = e - 1.0
        p = t * u
        p = p / 8.0
        tape.append((h, t, e, u))
        h = h + p
    value = np.sum(h)
    g = np.ones_like(h)
    while tape:  # pop, so each block's residuals are freed as soon as they are used
        h, t, e, u = tape.pop()
        gp = g / 8.0                          # d p/8
        gt = gp * u + (gp * t) * e * 0.5      # d (t * (exp(t/2) - 1))
        gt = gt * (1.0 - t * t)               # d tanh
        gt = gt * c1                          # d (s * c1), the + c2 passes through
        g = g + gt * np.cos(h)                # d sin, plus the residual path
    return (value, g) if with_value else g


# --------------------------------------------------------------------------------------------


def make_case(np, shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, shape).astype(dtype)
    c1 = rng.uniform(0.5, 1.5, shape).astype(dtype)
    c2 = rng.uniform(-0.5, 0.5, shape).astype(dtype)
    return x, c1, c2


def make_stacks(np, x, c1, c2, n_blocks, fnn, fnp, autograd, anp):
    """name -> zero-argument callable, in display order; the first two are the NumPy floors."""
    stacks = {
        "numpy forward (no grad)": lambda: loss(np, x, c1, c2, n_blocks),
        "numpy hand-written grad": lambda: handwritten_grad(np, x, c1, c2, n_blocks),
    }
    fnn_grad = fnn.grad(lambda x_: loss(fnp, x_, c1, c2, n_blocks))
    stacks["fnn.grad"] = lambda: fnn_grad(x)
    if autograd is not None:
        ag_grad = autograd.grad(lambda x_: loss(anp, x_, c1, c2, n_blocks))
        stacks["autograd.grad"] = lambda: ag_grad(x)
    return stacks


def check(np, stacks, x, c1, c2, n_blocks):
    """Assert every stack's answer against the hand-written gradient, and that one against
    central differences, so that nothing wrong is ever timed."""
    dtype = x.dtype
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    value, ref = handwritten_grad(np, x, c1, c2, n_blocks, with_value=True)
    if not (np.all(np.isfinite(ref)) and np.isfinite(value)):
        raise AssertionError("hand-written gradient is not finite")
    scale = float(np.max(np.abs(ref)))
    if not 1e-3 < scale < 1e3:
        raise AssertionError(f"gradient scale {scale:g} is degenerate; the check would be vacuous")
    # The chain is elementwise, so its Jacobian is diagonal: one central difference of the
    # unsummed chain (in float64) checks every coordinate of the gradient at once.
    x64, c164, c264 = (a.astype(np.float64) for a in (x, c1, c2))
    eps = 1e-6
    fd = (chain(np, x64 + eps, c164, c264, n_blocks) - chain(np, x64 - eps, c164, c264, n_blocks)) / (2 * eps)
    fd_rtol = 1e-5 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(ref, fd, rtol=fd_rtol, atol=fd_rtol * scale,
                               err_msg="hand-written gradient vs central differences")
    fwd = stacks["numpy forward (no grad)"]()
    np.testing.assert_allclose(fwd, value, rtol=rtol, err_msg="numpy forward vs hand-written forward")
    for name, fun in stacks.items():
        if name.startswith("numpy forward"):
            continue
        g = fun()
        g = np.asarray(g)
        if g.shape != ref.shape or g.dtype != ref.dtype:
            raise AssertionError(f"{name}: gradient has shape/dtype {g.shape}/{g.dtype}, "
                                 f"expected {ref.shape}/{ref.dtype}")
        np.testing.assert_allclose(g, ref, rtol=rtol, atol=rtol * scale,
                                   err_msg=f"{name} gradient vs hand-written gradient")
    return scale


def measure(stacks, rounds, reps, warmup):
    """Per-call times (seconds) per stack: warm-up, then `rounds` interleaved rounds of `reps`
    back-to-back calls per stack, the stack order rotated each round."""
    import gc
    import time

    names = list(stacks)
    for name in names:
        for _ in range(warmup):
            stacks[name]()
    samples = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fun = stacks[name]
            gc.collect()  # do not charge one stack for the garbage of another
            for _ in range(reps):
                t0 = time.perf_counter()
                fun()
                samples[name].append(time.perf_counter() - t0)
    return samples


def peak_memory(stacks):
    """Peak traced memory (bytes) of one call of each stack, above what was live before it."""
    import gc
    import tracemalloc

    out = {}
    for name, fun in stacks.items():
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            fun()
            out[name] = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    return out


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def summarize(np, samples):
    out = {}
    for name, s in samples.items():
        a = np.asarray(s)
        q25, med, q75 = np.percentile(a, [25, 50, 75])
        out[name] = dict(median=med, q25=q25, q75=q75, min=a.min(), max=a.max(), n=a.size)
    return out


def fmt_time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def fmt_range(lo: float, hi: float) -> str:
    return f"{fmt_time(lo)} – {fmt_time(hi)}"


def table(stats, n_ops, memory=None):
    hand = stats["numpy hand-written grad"]["median"]
    ag = stats.get("autograd.grad", {}).get("median")
    lines = [
        "| stack | median / call | IQR (p25 – p75) | min – max | × hand-written grad | × autograd "
        "| overhead µs/op |" + (" peak memory |" if memory else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if memory else ""),
    ]
    for name, s in stats.items():
        med = s["median"]
        vs_ag = f"{med / ag:.2f}" if ag else "n/a"
        if name.startswith("numpy forward"):
            over = "—"
        else:
            over = f"{(med - hand) / n_ops * 1e6:.2f}"
        lines.append(
            f"| {name} | {fmt_time(med)} | {fmt_range(s['q25'], s['q75'])} | "
            f"{fmt_range(s['min'], s['max'])} | {med / hand:.2f} | {vs_ag} | {over} |"
            + (f" {fmt_bytes(memory[name])} |" if memory else "")
        )
    return lines


def profile_fnn(fnn, fnp, x, c1, c2, n_blocks, top, calls=20):
    import cProfile
    import io
    import pstats

    f = fnn.grad(lambda x_: loss(fnp, x_, c1, c2, n_blocks))
    f(x)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        f(x)
    prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("tottime").print_stats(top)
    text = buf.getvalue()
    return f"cProfile of {calls} calls of fnn.grad (small case), top {top} by own time:\n\n" + text


def main(argv=None):
    args = parse_args(argv)
    pin_threads(args.threads)

    import platform
    import time

    import numpy as np

    try:
        import fnn
    except ImportError:  # run from a checkout without PYTHONPATH=.
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        import fnn
    import fnn.numpy as fnp

    try:
        import autograd
        import autograd.numpy as anp
        from importlib.metadata import version as _version

        ag_version = _version("autograd")
    except ImportError as exc:
        autograd = anp = None
        ag_version = None
        ag_missing = (f"autograd not importable ({exc}); its rows are skipped. "
                      "`pip install autograd` to include it.")

    n_blocks = args.ops // BLOCK_OPS
    small_shape = (10,)
    large_shape = (200, 200) if args.quick else (1000, 1000)
    cases = [("small", small_shape, np.float64, args.small_reps, 3)]
    if not args.no_large:
        cases.append(("large", large_shape, np.dtype(args.large_dtype).type, args.large_reps, 1))

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    cli_args = list(argv if argv is not None else sys.argv[1:])
    report = [
        "# fnn tracing overhead: grad of a chain of elementwise ops",
        "",
        f"- command: `python {' '.join(['benchmarks/overhead.py', *cli_args])}`",
        f"- started {started}; Python {platform.python_version()}, NumPy {np.__version__}, "
        f"fnn {getattr(fnn, '__version__', '?')}, autograd {ag_version or 'missing'}; "
        f"{os.cpu_count()} CPUs, {args.threads} BLAS/OpenMP threads; "
        f"{cpu_description()}; {platform.machine()} {platform.system()}",
        f"- chain: {args.ops} elementwise ops ({n_blocks} blocks of sin, ×c1, +c2, tanh, ×0.5, exp, −1, "
        "×(traced), ÷8, +residual), then a sum",
        f"- {args.rounds} interleaved rounds (stack order rotated each round); times are per call; "
        "every gradient checked against the hand-written one before timing",
        "- numbers are medians on a noisy shared machine: compare ratios within one run, not across runs",
        "- overhead µs/op = (median − median of the hand-written gradient) / ops",
    ]
    if autograd is None:
        report.append(f"- note: {ag_missing}")
    print("\n".join(report), flush=True)

    for label, shape, dtype, reps, warmup in cases:
        x, c1, c2 = make_case(np, shape, dtype, seed=0)
        stacks = make_stacks(np, x, c1, c2, n_blocks, fnn, fnp, autograd, anp)
        t0 = time.perf_counter()
        scale = check(np, stacks, x, c1, c2, n_blocks)
        checked = time.perf_counter() - t0
        print(f"[{label}] gradients agree (max |grad| = {scale:.3g}); check took {checked:.1f} s; timing...",
              file=sys.stderr, flush=True)
        samples = measure(stacks, args.rounds, reps, warmup)
        stats = summarize(np, samples)
        memory = peak_memory(stacks) if args.memory else None
        shape_s = "x".join(map(str, shape)) + ("," if len(shape) == 1 else "")
        section = [
            "",
            f"## {label}: shape ({shape_s}), {np.dtype(dtype).name}, {args.ops} ops",
            "",
            f"{args.rounds} rounds × {reps} call(s) per stack = {args.rounds * reps} samples per stack; "
            f"{warmup} warm-up call(s) per stack (plus the correctness check).",
            "",
        ]
        section += table(stats, args.ops, memory)
        if label == "large":
            section += ["", "On the large array the overhead column is dominated by array work and memory "
                            "traffic (extra arithmetic in rules, residuals kept alive), not by Python."]
        print("\n".join(section), flush=True)
        report += section

    if args.profile:
        x, c1, c2 = make_case(np, small_shape, np.float64, seed=0)
        prof = profile_fnn(fnn, fnp, x, c1, c2, n_blocks, args.profile)
        print("\n" + prof)
        report += ["", "## profile", "", "```", prof.rstrip(), "```"]

    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write("\n".join(report) + "\n")
        print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
