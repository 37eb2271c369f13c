"""Training-step benchmark: forward + backward + SGD update, per workload and stack.

Stacks: hand-written NumPy (the floor), fnn, HIPS autograd, PyTorch eager (CPU). Workloads: an
MLP, LeNet-5, a tiny MLP, an Elman RNN, a ResNet-18 layout (see stacks/common.py). float32, one
fixed batch reused, the same number of BLAS/OpenMP threads for every stack.

Each (workload, stack) runs in its own worker process (stacks/worker.py) that stays alive: imports
and warm-up happen once, then the driver asks each worker for a batch of timed steps per round,
the stack order rotated from round to round. Before timing, every stack does one step from the
same initial weights (written here to an .npz), once in float32 (its gradients must stay float32
and its loss must match) and once in float64, whose gradients are compared tightly with the
hand-written NumPy ones, themselves checked against a central difference. A stack whose gradients
disagree is marked FAILED and not timed.

Why float64 for the comparison: in float32, two correct stacks that sum in different orders (BLAS
thread counts differ here) can land on opposite sides of a ReLU kink for an activation within
rounding of zero, and the gradient through that unit then differs by its full size; in ResNet's
batch-normalised blocks this happens every run. In float64 it does not, and the tolerance can be
tight enough to catch a wrong rule. A stack that cannot be imported is skipped
with a note.

    PYTHONPATH=. python benchmarks/suite.py [--quick] [--workloads mlp lenet ...] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from machine import cpu_description

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "stacks", "worker.py")

STACKS = ("numpy", "fnn", "fnn-loop", "autograd", "torch")
LABEL = {"numpy": "numpy (hand-written)", "fnn": "fnn", "fnn-loop": "fnn (loop over time, fnn.numpy)",
         "autograd": "autograd", "torch": "torch (eager)"}
# steps per stack per round, (full, quick)
REPS = {"mlp": (10, 3), "lenet": (5, 2), "tiny": (50, 10), "rnn": (5, 2), "resnet": (2, 1)}
WARMUP = {"mlp": 2, "lenet": 2, "tiny": 5, "rnn": 2, "resnet": 1}
MEMORY_WORKLOADS = ("lenet", "resnet")
RTOL = 1e-6      # float64 gradients of different summation orders
ATOL_REL = 1e-9  # absolute tolerance, relative to the largest |gradient| of the model
LOSS_RTOL = 1e-4  # float32 loss after one step from the same weights
FD_TOL = 1e-3
# Seconds between one stack's turn and the next: BLAS and OpenMP worker threads spin for a while
# after their last task, and on a 2-core machine a spinning neighbour halves the next stack's speed.
PAUSE = 0.5
# glibc's malloc serves large blocks with mmap and moves that threshold as blocks are freed, so a
# process may pay page faults on every fresh multi-megabyte array or on none, flipping from run
# to run (2x on the mlp step here). Fixed thresholds make every stack reuse freed memory alike;
# `--malloc default` leaves glibc's dynamic behaviour.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(256 * 2 ** 20), "MALLOC_TRIM_THRESHOLD_": str(512 * 2 ** 20)}


def parse_args(argv):
    from stacks.common import WORKLOADS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rounds, few steps: a smoke test")
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    ap.add_argument("--stacks", nargs="+", default=list(STACKS), choices=STACKS)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 9, quick 2)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--malloc", choices=("fixed", "default"), default="fixed",
                    help="fixed: pin glibc's mmap/trim thresholds in every worker (see MALLOC_ENV)")
    ap.add_argument("--out", help="also write the Markdown report here")
    return ap.parse_args(argv)


class Worker:
    def __init__(self, stack, workload, data_dir, threads, malloc="fixed"):
        env = dict(os.environ)
        if malloc == "fixed":
            env.update(MALLOC_ENV)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.stack = stack
        self.proc = subprocess.Popen(
            [sys.executable, "-u", WORKER, stack, workload, data_dir, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env=env)
        self.hello = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            return {"error": f"worker exited: {err.strip().splitlines()[-1] if err.strip() else '?'}"}
        return json.loads(line)

    def ask(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        try:
            if self.proc.poll() is None:
                self.ask("quit")
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def compare(ref, got, dtype):
    """None when every gradient matches (dtype `dtype`, values allclose), else a short reason."""
    import numpy as np
    if set(ref) != set(got):
        return f"gradient names differ: missing {sorted(set(ref) - set(got))}, extra {sorted(set(got) - set(ref))}"
    scale = max(float(np.max(np.abs(r))) for r in ref.values())
    for k in ref:
        r, g = ref[k], got[k]
        if r.shape != g.shape:
            return f"{k}: shape {g.shape}, expected {r.shape}"
        if g.dtype != dtype:
            return f"{k}: dtype {g.dtype}, expected {np.dtype(dtype).name}"
        atol = ATOL_REL * scale
        if not np.allclose(g, r, rtol=RTOL, atol=atol):
            err = float(np.max(np.abs(g - r)))
            return f"{k}: max abs diff {err:.3g} (max abs grad {float(np.max(np.abs(r))):.3g})"
    return None


def compare_dtypes(ref, got, dtype):
    """None when `got` has the same names and shapes as `ref` and every gradient is `dtype`."""
    import numpy as np
    for k in ref:
        if k not in got or got[k].shape != ref[k].shape or got[k].dtype != dtype:
            g = got.get(k)
            return f"{k}: float32 step gave {None if g is None else (g.shape, g.dtype.name)}, expected {ref[k].shape} float32"
    return None


def run_workload(workload, stacks, args, data_dir, log):
    import numpy as np
    from stacks.common import init_weights, make_batch

    np.savez(os.path.join(data_dir, f"weights_{workload}.npz"), **init_weights(workload))
    np.savez(os.path.join(data_dir, f"batch_{workload}.npz"), **make_batch(workload))
    stacks = [s for s in stacks if s != "fnn-loop" or workload == "rnn"]
    res = {s: {} for s in stacks}
    workers = {}
    try:
        for s in stacks:
            w = Worker(s, workload, data_dir, args.threads, args.malloc)
            if "error" in w.hello:
                res[s]["skipped"] = w.hello["error"]
                w.close()
            else:
                res[s]["version"] = w.hello["version"]
                workers[s] = w
        if "numpy" not in workers:
            raise RuntimeError(f"the NumPy reference did not start: {res['numpy'].get('skipped')}")
        grads, grads64 = {}, {}
        for s in workers:  # checks in a process of their own: the float64 step stays out of the RSS
            checker = Worker(s, workload, data_dir, args.threads, args.malloc)
            try:
                for dtype, into in (("float32", grads), ("float64", grads64)):
                    path = os.path.join(data_dir, f"grads_{workload}_{s}_{dtype}.npz")
                    r = checker.ask(f"check {path} {dtype}")
                    if "error" in r:
                        res[s]["failed"] = f"{dtype} check: {r['error']}"
                        break
                    res[s]["loss0" if dtype == "float32" else "loss0_64"] = r["loss"]
                    with np.load(path) as f:
                        into[s] = {k: f[k] for k in f.files}
            finally:
                checker.close()
        fd_worker = Worker("numpy", workload, data_dir, args.threads, args.malloc)  # own process: keeps the float64
        try:                                                             # check out of the timed worker's RSS
            fd = fd_worker.ask("fdcheck")
        finally:
            fd_worker.close()
        if "error" in fd or not fd["rel"] < FD_TOL:
            raise RuntimeError(f"{workload}: the hand-written gradient fails its finite-difference check: {fd}")
        res["numpy"]["fd_rel"] = fd["rel"]
        for s in workers:
            if s != "numpy" and s in grads64:
                why = (compare(grads64["numpy"], grads64[s], np.float64)
                       or compare_dtypes(grads["numpy"], grads[s], np.float32))
                if why is None and abs(res[s]["loss0"] - res["numpy"]["loss0"]) > LOSS_RTOL * max(1.0, abs(res["numpy"]["loss0"])):
                    why = f"float32 loss {res[s]['loss0']:.6g} vs {res['numpy']['loss0']:.6g}"
                if why:
                    res[s]["failed"] = why
        live = [s for s in workers if "failed" not in res[s]]
        log(f"[{workload}] gradients: " + ", ".join(
            f"{s} {'FAILED (' + res[s]['failed'] + ')' if 'failed' in res[s] else 'ok'}" for s in workers)
            + f"; numpy vs central difference rel. err {fd['rel']:.1e}")
        for s in live:
            workers[s].ask(f"warmup {WARMUP[workload]}")
        reps = REPS[workload][1 if args.quick else 0]
        for s in live:
            res[s]["times"] = []
            res[s]["round_medians"] = []  # None where the stack failed that round
        for r in range(args.rounds):
            order = live[r % len(live):] + live[:r % len(live)]
            for s in order:
                time.sleep(PAUSE)
                out = workers[s].ask(f"time {reps}")
                if "error" in out:
                    res[s]["failed"] = out["error"]
                    res[s]["round_medians"].append(None)
                    continue
                res[s]["times"] += out["times"]
                res[s]["round_medians"].append(statistics.median(out["times"]))
                res[s]["loss"] = out["loss"]
        for s, w in workers.items():
            out = w.ask("rss")
            res[s]["maxrss_kb"] = out.get("maxrss_kb")
    finally:
        for w in workers.values():
            w.close()
    res["_reps"] = reps
    return res


def interpreter_speed() -> float:
    """Median µs of a fixed piece of pure-Python work (object creation, attribute and dict
    access, calls): how fast this interpreter build runs on this host now. fnn's fixed cost per
    step is Python work, so it scales with this; hand-written NumPy steps hardly do."""

    class Slot:
        __slots__ = ("a", "b")

        def __init__(self, a):
            self.a, self.b = a, None

    def work():
        d = {}
        total = 0
        for i in range(2000):
            o = Slot(i)
            d[i & 15] = o
            total += len(d) + (o.a if o.b is None else 0)
        return total

    times = []
    for _ in range(31):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def fmt_ms(sec):
    ms = sec * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def paired_ratio(res, a, b):
    """The median over rounds of stack a's round median ÷ stack b's, or None.

    A round times every stack within a few seconds, so a drift of the host's load over minutes
    (30% and more on the shared machines) scales both sides of a round's ratio alike. The ratio
    of the overall medians pools the steps of all rounds instead, and its median falls wherever
    the mix of slow and fast rounds puts it."""
    ra, rb = res.get(a, {}).get("round_medians"), res.get(b, {}).get("round_medians")
    if not ra or not rb or "failed" in res[a] or "failed" in res[b]:
        return None
    ratios = [x / y for x, y in zip(ra, rb) if x is not None and y is not None]
    return statistics.median(ratios) if ratios else None


def table(workload, res, rounds):
    import numpy as np
    from stacks.common import DESCRIPTION
    reps = res.pop("_reps")
    stats = {}
    for s, r in res.items():
        if r.get("times") and "failed" not in r:
            a = np.asarray(r["times"])
            stats[s] = dict(zip(("q25", "med", "q75"), np.percentile(a, [25, 50, 75])), min=a.min(), max=a.max())
    ref = stats.get("numpy", {}).get("med")
    mem = workload in MEMORY_WORKLOADS
    lines = [f"### {workload}: {DESCRIPTION[workload]}", "",
             f"{rounds} rounds × {reps} step(s) per stack = {rounds * reps} samples per stack.", "",
             "| stack | median ms/step | IQR (p25 – p75) | min – max | × numpy | × numpy, paired | fnn × this | fnn × this, paired |"
             + (" peak RSS |" if mem else ""),
             "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if mem else "")]
    fnn_med = stats.get("fnn", {}).get("med")
    for s, r in res.items():
        if "skipped" in r:
            lines.append(f"| {LABEL[s]} | skipped: {r['skipped']} | | | | | | |" + (" |" if mem else ""))
            continue
        if "failed" in r:
            lines.append(f"| {LABEL[s]} | FAILED: {r['failed']} | | | | | | |" + (" |" if mem else ""))
            continue
        st = stats[s]
        x_np = f"{st['med'] / ref:.2f}" if ref else "n/a"
        x_fnn = f"{fnn_med / st['med']:.2f}" if fnn_med and s not in ("fnn",) else "—"
        p_np, p_fnn = paired_ratio(res, s, "numpy"), paired_ratio(res, "fnn", s) if s != "fnn" else None
        p_np = f"{p_np:.2f}" if p_np is not None else "—"
        p_fnn = f"{p_fnn:.2f}" if p_fnn is not None else "—"
        rss = r.get("maxrss_kb")
        lines.append(f"| {LABEL[s]} | {fmt_ms(st['med'])} | {fmt_ms(st['q25'])} – {fmt_ms(st['q75'])} | "
                     f"{fmt_ms(st['min'])} – {fmt_ms(st['max'])} | {x_np} | {p_np} | {x_fnn} | {p_fnn} |"
                     + (f" {rss / 1024:.0f} MB |" if mem and rss else (" |" if mem else "")))
    return lines, stats


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, HERE)
    args = parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 9
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    results, versions = {}, {}
    with tempfile.TemporaryDirectory(prefix="fnn_suite_") as data_dir:
        for wl in args.workloads:
            t0 = time.perf_counter()
            results[wl] = run_workload(wl, args.stacks, args, data_dir, log)
            for s, r in results[wl].items():
                if isinstance(r, dict) and "version" in r:
                    versions[s] = r["version"]
            log(f"[{wl}] done in {time.perf_counter() - t0:.0f} s")

    cpu = cpu_description()
    skipped = sorted({f"{s}: {r['skipped']}" for res in results.values() for s, r in res.items()
                      if isinstance(r, dict) and "skipped" in r})
    report = [
        "## Training step: forward + backward + SGD update",
        "",
        f"- command: `python benchmarks/suite.py {' '.join(argv)}`".rstrip(),
        f"- {time.strftime('%Y-%m-%d %H:%M:%S')}; {cpu}; {os.cpu_count()} CPUs; {platform.system()} "
        f"{platform.machine()}; Python {platform.python_version()}; NumPy {np.__version__}",
        f"- interpreter: {sys.executable} (CPython built {platform.python_build()[1]} by "
        f"{platform.python_compiler()}); the same in every worker; a fixed piece of pure-Python work "
        f"(`interpreter_speed`) took {interpreter_speed():.0f} µs",
        "- stacks: " + "; ".join(versions[s] for s in STACKS if s in versions and s != "fnn-loop"),
        f"- threads: OMP/OPENBLAS/MKL_NUM_THREADS={args.threads} in every worker, torch.set_num_threads({args.threads})",
        "- allocator: " + ("glibc's mmap/trim thresholds pinned in every worker ("
                           + ", ".join(f"{k}={v}" for k, v in MALLOC_ENV.items()) + ")"
                           if args.malloc == "fixed" else "glibc defaults (dynamic mmap threshold)"),
        "- float32, one fixed batch reused, each (workload, stack) in its own long-lived process; "
        f"{args.rounds} interleaved rounds, stack order rotated each round; times are per training step",
        "- before timing, every stack's gradients after one step from the same initial weights were "
        f"checked against the hand-written NumPy ones in float64 (allclose, rtol {RTOL:g}, atol {ATOL_REL:g} × the model's largest |grad|), those against a float64 central difference, and the float32 step had to keep float32 gradients and match the float32 loss (rtol {LOSS_RTOL:g})",
        "- × numpy: median ÷ median of the hand-written NumPy step. fnn × this: fnn's median ÷ this stack's "
        "(above 1 = fnn is slower). Paired: the median over rounds of the same ratio taken within each "
        "round (of round medians), so that each ratio compares steps taken seconds apart. Peak RSS: the "
        "worker's max resident set size (ru_maxrss) after its steps, interpreter and imports included",
        "- a shared, noisy machine: compare ratios within one run",
    ]
    if skipped:
        report.append("- skipped: " + "; ".join(skipped))
    summary = ["", "### Summary: median ms/step", "",
               "| workload | numpy | fnn | autograd | torch | fnn × numpy | fnn × numpy, paired "
               "| fnn × torch | fnn × torch, paired | fnn × autograd |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    sections = []
    for wl, res in results.items():
        paired = {(a, b): paired_ratio(res, a, b) for a in ("fnn", "fnn-loop") for b in ("numpy", "torch")}
        lines, stats = table(wl, res, args.rounds)
        sections += [""] + lines
        med = {s: st["med"] for s, st in stats.items()}

        def cell(s):
            return fmt_ms(med[s]) if s in med else "—"

        def ratio(a, b):
            return f"{med[a] / med[b]:.2f}" if a in med and b in med else "—"

        def ratio_cell(b):  # fnn's ratio, and the loop's where there is one
            return ratio("fnn", b) + (f" (loop {ratio('fnn-loop', b)})" if "fnn-loop" in med and b in med else "")

        def paired_cell(b):
            text = f"{paired['fnn', b]:.2f}" if paired["fnn", b] is not None else "—"
            return text + (f" (loop {paired['fnn-loop', b]:.2f})" if paired["fnn-loop", b] is not None else "")
        fnn_cell = cell("fnn") + (f" (loop {cell('fnn-loop')})" if "fnn-loop" in med else "")
        summary.append(f"| {wl} | {cell('numpy')} | {fnn_cell} | {cell('autograd')} | {cell('torch')} | "
                       f"{ratio_cell('numpy')} | {paired_cell('numpy')} | {ratio_cell('torch')} | "
                       f"{paired_cell('torch')} | {ratio('fnn', 'autograd')} |")
    report += summary + sections
    report.append("")
    report.append(f"Total wall time {time.perf_counter() - t_start:.0f} s.")
    text = "\n".join(report) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
        log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
