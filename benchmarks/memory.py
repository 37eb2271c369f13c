"""Peak memory of one gradient step of a deep MLP, with and without `fnn.checkpoint`.

The step is `fnn.value_and_grad` of the mean softmax cross-entropy of a 20-layer MLP (19 hidden
`Dense(width)` + `Tanh` blocks and a `Dense(10)` output, built with `fnn.nn`), float32. Variants:

- plain: no checkpointing.
- per layer: each hidden block wrapped in `fnn.checkpoint`.
- segments of s: the layers cut into consecutive segments, each wrapped in `fnn.checkpoint`, as
  PyTorch's `checkpoint_sequential(functions, segments)` does; about sqrt(depth) segments is the
  usual choice (rows for 4 and 5 segments).

What is measured. NumPy reports its data buffers to `tracemalloc`, so the traced memory follows
the arrays the step allocates. Each variant runs in its own process (peaks never mix): it builds
the model and the batch, does one warm-up step, times a few steps, then starts `tracemalloc` and,
for a few more steps, records the traced memory before the step, right after the forward pass
(the loss computed, the tape built: what the tape keeps for the backward pass) and the peak during
the whole step. "Peak above baseline" is the peak minus the memory held before the step
(parameters and batch are not counted); medians over the steps. It includes the backward pass's
transients (the cotangent, a rule's temporaries) and the gradients alive at the time of the peak,
so the activation-bound workload (batch large against width) is the one where the activations are
what the peak is made of. The process's max RSS (ru_maxrss: interpreter, imports, parameters
included) is shown for reference.

The analytic column counts the activations (batch × width × 4 bytes each) that the tape must keep:
fnn's tape keeps only what each rule reads (Dense keeps its input, Tanh its output), so plain keeps
one activation per hidden layer; per-layer checkpointing keeps each block's input, which is the
same; segments keep the segment boundaries and, during the backward pass of one segment, that
segment's recomputed activations: the peak is the largest (boundaries held + segment length) over
the segments. Before anything is reported, each variant's gradients must equal the plain ones
(allclose, rtol 1e-5, atol 1e-6 × the largest |gradient|).

    PYTHONPATH=. python benchmarks/memory.py [--quick] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

from machine import cpu_description

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEPTH = 20
CLASSES = 10
# (name, width, batch): activation-bound (batch x width activations outweigh the width^2 weights),
# then a weight-bound shape, where the gradients (as large as the parameters) make the peak.
WORKLOADS = {"full": [("activation-bound", 512, 2048), ("weight-bound", 1024, 256)],
             "quick": [("activation-bound", 256, 1024)]}
RTOL, ATOL_REL = 1e-5, 1e-6
MB = 2 ** 20


def variants(depth: int) -> list[tuple[str, str, list[int]]]:
    """(key, label, segment sizes in layers); per layer is segments of 1 over the hidden blocks."""
    out = [("plain", "plain", []), ("layer", "checkpoint per layer", [1] * depth)]
    for n in (4, 5):
        sizes = [depth // n + (1 if i < depth % n else 0) for i in range(n)]
        out.append((f"seg{n}", f"checkpoint {n} segments of {'/'.join(map(str, sorted(set(sizes))))} layers",
                    sizes))
    return out


def analytic_kept(depth: int, sizes: list[int]) -> tuple[int, int]:
    """(activations kept at the end of the forward, activations alive at the backward's peak),
    in hidden activations (batch x width); the logits (batch x 10) are left out."""
    hidden = depth - 1  # outputs of the hidden blocks; the last layer's output is the logits
    if not sizes:
        return hidden, hidden
    # boundaries: outputs of the segments (the last segment's is the logits)
    ends = [sum(sizes[:i + 1]) for i in range(len(sizes))]
    kept = sum(1 for e in ends if e <= hidden)
    peak = 0
    for j, s in enumerate(sizes):
        start = ends[j] - s
        held = sum(1 for e in ends[:j] if e <= hidden)  # inputs of segments 2..j+1, still held
        recomputed = sum(1 for layer in range(start + 1, ends[j] + 1) if layer <= hidden)
        # a segment's own output was held as a boundary; once its backward starts, only the
        # recomputed copy is alive
        peak = max(peak, held + recomputed)
    return kept, peak


# --- worker: one variant in one process -------------------------------------------------------------


def worker(args) -> None:
    import gc
    import tracemalloc

    import numpy as np

    import fnn
    import fnn.nn as nn
    from fnn.losses import softmax_cross_entropy

    width, batch, depth = args.width, args.batch, args.depth
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[args.act]
    blocks = [nn.Sequential([nn.Dense(width), act()]) for _ in range(depth - 1)] + [nn.Dense(CLASSES)]
    model = nn.Sequential(blocks)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, width)).astype(np.float32)
    y = rng.integers(0, CLASSES, batch)
    params, _ = model.init(fnn.random.key(0), x)
    names = model.names
    sizes = dict((k, s) for k, _, s in variants(depth))[args.variant]

    def run(blks, ps, h):
        for blk, p in zip(blks, ps):
            h, _ = blk.apply(p, {}, h)
        return h

    if args.variant == "layer":  # every hidden block on its own, the output layer as it is
        groups = [[i] for i in range(depth)]
        checked = [True] * (depth - 1) + [False]
    elif sizes:
        ends = np.cumsum(sizes)
        groups = [list(range(e - s, e)) for s, e in zip(sizes, ends)]
        checked = [True] * len(groups)
    else:
        groups, checked = [list(range(depth))], [False]
    calls = []
    for idx, ck in zip(groups, checked):
        blks = [blocks[i] for i in idx]
        f = (lambda b: lambda ps, h: run(b, ps, h))(blks)
        calls.append((fnn.checkpoint(f) if ck else f, [names[i] for i in idx]))

    marks = {}

    def loss(params, x, y):
        h = x
        for f, keys in calls:
            h = f([params[k] for k in keys], h)
        value = softmax_cross_entropy(h, y)
        if tracemalloc.is_tracing():
            marks["after_forward"] = tracemalloc.get_traced_memory()[0]
        return value

    step = fnn.value_and_grad(loss)
    value, grads = step(params, x, y)  # warm-up
    del value, grads
    times = []
    for _ in range(args.reps):
        gc.collect()
        t0 = time.perf_counter()
        value, grads = step(params, x, y)
        times.append(time.perf_counter() - t0)
        del value, grads
    gc.collect()
    tracemalloc.start()
    peaks, tapes = [], []
    for _ in range(args.reps):
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        value, grads = step(params, x, y)
        peak = tracemalloc.get_traced_memory()[1]
        peaks.append(peak - base)
        tapes.append(marks["after_forward"] - base)
        last = (value, grads)
        del value, grads
    tracemalloc.stop()
    value, grads = last
    leaves = fnn.tree.leaves(grads)
    np.savez(args.grads, *[np.asarray(g) for g in leaves])
    print(json.dumps({
        "peaks": peaks, "tapes": tapes, "times": times, "loss": float(value),
        "grad_dtypes": sorted({str(g.dtype) for g in leaves}),
        "param_bytes": int(sum(p.nbytes for p in fnn.tree.leaves(params))),
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "numpy": np.__version__,
    }), flush=True)


# --- driver -------------------------------------------------------------------------------------------


def run_variant(variant, width, batch, args, tmp, log):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    gpath = os.path.join(tmp, f"{variant}_{width}_{batch}.npz")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--width", str(width),
           "--batch", str(batch), "--depth", str(args.depth), "--act", args.act, "--reps", str(args.reps),
           "--grads", gpath]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {variant} failed:\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["grads"] = gpath
    log(f"  {variant}: {time.perf_counter() - t0:.0f} s")
    return res


def check_grads(res, ref):
    import numpy as np
    with np.load(res["grads"]) as a, np.load(ref["grads"]) as b:
        got = [a[k] for k in sorted(a.files, key=lambda s: int(s.split("_")[1]))]
        want = [b[k] for k in sorted(b.files, key=lambda s: int(s.split("_")[1]))]
    if len(got) != len(want):
        return f"{len(got)} gradient leaves, plain has {len(want)}"
    scale = max(float(np.abs(w).max()) for w in want)
    for i, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape or g.dtype != w.dtype:
            return f"leaf {i}: {g.shape} {g.dtype} vs plain {w.shape} {w.dtype}"
        if not np.allclose(g, w, rtol=RTOL, atol=ATOL_REL * scale):
            return f"leaf {i}: max |diff| {float(np.abs(g - w).max()):.3g} (largest |grad| {scale:.3g})"
    return None


def fmt_mb(b):
    return f"{b / MB:.1f}"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one small workload, 2 steps per variant")
    ap.add_argument("--out", help="also write the Markdown report here")
    ap.add_argument("--reps", type=int, default=None, help="measured steps per variant (default 5, quick 2)")
    ap.add_argument("--depth", type=int, default=DEPTH)
    ap.add_argument("--act", choices=("tanh", "relu"), default="tanh")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--width", type=int, help="one workload of this width (with --batch)")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--grads", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.reps is None:
        args.reps = 2 if args.quick else 5
    if args.worker:
        args.variant = args.worker
        return worker(args)
    import numpy as np

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if args.width or args.batch:
        if not (args.width and args.batch):
            ap.error("--width and --batch go together")
        workloads = [("custom", args.width, args.batch)]
    else:
        workloads = WORKLOADS["quick" if args.quick else "full"]
    t_start = time.perf_counter()
    sections, failures, worst = [], [], {}
    summary = ["", "### Summary: peak above baseline, checkpointed ÷ plain", "",
               "| workload | " + " | ".join(label for k, label, _ in variants(args.depth)[1:]) + " |",
               "|---|" + "---:|" * (len(variants(args.depth)) - 1)]
    with tempfile.TemporaryDirectory(prefix="fnn_memory_") as tmp:
        for wl, width, batch in workloads:
            log(f"[{wl}] width {width}, batch {batch}, depth {args.depth}")
            res = {k: run_variant(k, width, batch, args, tmp, log) for k, _, _ in variants(args.depth)}
            act_bytes = batch * width * 4
            plain = res["plain"]
            p_peak = float(np.median(plain["peaks"]))
            a_plain = analytic_kept(args.depth, [])[1]
            lines = [f"### {wl}: width {width}, batch {batch}, {args.depth} layers ({args.act})", "",
                     f"One activation (batch × width, float32) = {fmt_mb(act_bytes)} MB; parameters "
                     f"(and so the gradients) = {fmt_mb(plain['param_bytes'])} MB. "
                     f"Medians over {args.reps} steps per variant.", "",
                     "| variant | activations kept after forward / at peak (analytic) | analytic MB at peak "
                     "| tape after forward MB | peak above baseline MB | × plain | step ms | max RSS MB |",
                     "|---|---:|---:|---:|---:|---:|---:|---:|"]
            row = []
            for key, label, sizes in variants(args.depth):
                r = res[key]
                bad = None if key == "plain" else check_grads(r, plain)
                if r["grad_dtypes"] != ["float32"]:
                    bad = f"gradients are {r['grad_dtypes']}, not float32"
                kept, at_peak = analytic_kept(args.depth, sizes)
                if bad:
                    failures.append(f"{wl}/{label}: {bad}")
                    lines.append(f"| {label} | FAILED: {bad} | | | | | | |")
                    row.append("FAILED")
                    continue
                peak = float(np.median(r["peaks"]))
                ratio = peak / p_peak
                if key != "plain":
                    row.append(f"{ratio:.2f}")
                    worst[(wl, key)] = ratio
                lines.append(
                    f"| {label} | {kept} / {at_peak} | {fmt_mb(at_peak * act_bytes)} | "
                    f"{fmt_mb(float(np.median(r['tapes'])))} | {fmt_mb(peak)} | {ratio:.2f} | "
                    f"{float(np.median(r['times'])) * 1e3:.0f} | {r['maxrss_kb'] / 1024:.0f} |")
            lines += ["", "Analytic ratio at peak (activations only): " + ", ".join(
                f"{label} {analytic_kept(args.depth, s)[1] / a_plain:.2f}"
                for k, label, s in variants(args.depth)[1:]) + "."]
            sections += [""] + lines
            summary.append(f"| {wl} (w {width}, b {batch}) | " + " | ".join(row) + " |")
            numpy_version = plain["numpy"]

    cpu = cpu_description()
    report = [
        "## Peak memory of one gradient step: deep MLP, with and without fnn.checkpoint",
        "",
        f"- command: `python benchmarks/memory.py {' '.join(argv)}`".rstrip(),
        f"- {time.strftime('%Y-%m-%d %H:%M:%S')}; {cpu}; {os.cpu_count()} CPUs; {platform.system()} "
        f"{platform.machine()}; Python {platform.python_version()}; NumPy {numpy_version}",
        f"- threads: OMP/OPENBLAS/MKL_NUM_THREADS={args.threads}; each variant in its own process",
        "- step: fnn.value_and_grad of mean softmax cross-entropy, float32, one fixed batch; "
        f"{args.depth - 1} × (Dense(width) + {args.act}) + Dense({CLASSES})",
        "- tape after forward: traced memory (tracemalloc, which sees NumPy's buffers) when the loss "
        "has been computed, minus before the step; peak above baseline: the step's traced peak minus "
        "before the step (parameters and batch excluded; the backward's transients and the gradients "
        "alive at the peak included); max RSS: the process's ru_maxrss, for reference",
        "- analytic: hidden activations (batch × width × 4 B) the tape must hold, after the forward / "
        "at the backward's worst point; transients (the cotangent, rule temporaries: a few "
        "activations) and gradients come on top",
        f"- every checkpointed variant's gradients equal the plain ones (allclose, rtol {RTOL:g}, "
        f"atol {ATOL_REL:g} × largest |grad|) or its row says FAILED",
    ]
    report += summary + sections
    report += ["", f"Total wall time {time.perf_counter() - t_start:.0f} s."]
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
        log(f"wrote {args.out}")
    if failures:
        log("FAILED: " + "; ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
