"""Memory traffic per training step, by cache simulation: what a stack moves between the cache
levels, which the host's noise does not move either.

At W1's sizes a few hundred kilobytes more moved per step cost as much time as fnn's whole
bookkeeping, and a timing on a shared machine cannot see them. This script runs the suite's
steps under `valgrind --tool=cachegrind` with its cache simulation: a 32 KiB first level and a
last level of `--ll-kib` (default 1024: this host's per-core L2, the level an activation of W1
falls out of), one BLAS thread, a fixed hash seed. Like `instructions.py` it counts a run of 2
warm-up steps and one of 2 + K, and reports the difference over K: instructions, and the lines
of the last level read from and written to memory (its misses), for the hand-written step and
fnn. `--functions N` adds the N functions with the most misses per stack (NumPy loops, BLAS
copy kernels, the interpreter), which is how to find the operation that moves more.

The cache is simulated, not measured: no prefetching, one core. Compare stacks and versions
with it, not with the machine's own counters.

    PYTHONPATH=. python benchmarks/cache_traffic.py [--workload mlp] [--steps 2] [--functions 8]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
STACKS = ("numpy", "fnn")
WORKLOADS = ("mlp", "lenet", "tiny", "rnn", "resnet")
WARMUP = 2
LINE = 64  # bytes per simulated cache line
TOTALS = re.compile(r"I\s+refs:\s+([\d,]+).*?LLd misses:\s+[\d,]+\s+\(\s*([\d,]+) rd\s+\+\s+([\d,]+) wr\)",
                    re.S)


def parse_totals(valgrind_stderr: str) -> tuple[int, int, int]:
    """(instructions, last-level data read misses, write misses) from cachegrind's summary."""
    match = TOTALS.search(valgrind_stderr)
    if match is None:
        raise RuntimeError(f"no cache summary in valgrind's output:\n{valgrind_stderr[-2000:]}")
    return tuple(int(group.replace(",", "")) for group in match.groups())


def per_step(short: tuple, long: tuple, steps: int) -> tuple:
    """The counts of one step: (long run - short run) / steps, entry by entry."""
    return tuple((b - a) / steps for a, b in zip(short, long))


def _run_steps(workload: str, stack: str, steps: int) -> None:
    """The child: the suite's step of `workload` for `stack`, warmed up, then `steps` more."""
    sys.path.insert(0, HERE)
    from stacks import common, fnn_impl, numpy_ref  # noqa: PLC0415 (after the thread settings)

    init, step = {"numpy": numpy_ref, "fnn": fnn_impl}[stack].WORKLOADS[workload]()
    state, batch = init(common.init_weights(workload)), common.make_batch(workload)
    for _ in range(WARMUP + steps):
        state = step(state, batch)[0]


def _simulate(workload: str, stack: str, steps: int, ll_kib: int, out_file: str) -> tuple:
    from suite import MALLOC_ENV  # noqa: PLC0415 (the suite's pinned malloc thresholds)

    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", **MALLOC_ENV)
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", f"--I1=32768,8,{LINE}",
           f"--D1=32768,8,{LINE}", f"--LL={ll_kib * 1024},16,{LINE}", f"--cachegrind-out-file={out_file}",
           sys.executable, os.path.abspath(__file__), "--child", stack, "--workload", workload,
           "--steps", str(steps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stderr
    return parse_totals(out)


def _top_functions(short_file: str, long_file: str, n: int) -> str:
    """The n functions with the most last-level read misses in the difference of two runs."""
    diff = subprocess.run(["cg_diff", short_file, long_file], capture_output=True, text=True,
                          check=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".cg", delete=False) as f:
        f.write(diff)
    try:
        table = subprocess.run(["cg_annotate", "--show=Ir,DLmr,DLmw", "--sort=DLmr", f.name],
                               capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    rows = table.split("file:function", 1)[-1].splitlines()[2:2 + n]
    return "\n".join("      " + row.strip() for row in rows if row.strip())


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=WORKLOADS, default="mlp")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--ll-kib", type=int, default=1024, help="simulated last-level size (KiB)")
    p.add_argument("--functions", type=int, default=0, help="list the N functions that miss most")
    p.add_argument("--stacks", nargs="+", choices=STACKS, default=list(STACKS))
    p.add_argument("--child", choices=STACKS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        _run_steps(args.workload, args.child, args.steps)
        return
    if shutil.which("valgrind") is None:
        sys.exit("cache_traffic.py needs valgrind (e.g. apt-get install valgrind)")
    print(f"{args.workload}: per training step, simulated {args.ll_kib} KiB last level "
          f"({args.steps} steps after {WARMUP} warm-up steps, one BLAS thread)")
    print(f"  {'stack':6s} {'instructions':>13s} {'lines read':>11s} {'written':>9s} {'MB moved':>9s}"
          f" {'x numpy':>8s}")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for stack in args.stacks:
            files = [os.path.join(tmp, f"{stack}.{k}.cg") for k in (0, args.steps)]
            short = _simulate(args.workload, stack, 0, args.ll_kib, files[0])
            long = _simulate(args.workload, stack, args.steps, args.ll_kib, files[1])
            ir, reads, writes = per_step(short, long, args.steps)
            moved = reads + writes
            first = moved if first is None else first
            relative = f"{moved / first:8.3f}" if first else f"{'-':>8s}"  # (W3 may move nothing)
            print(f"  {stack:6s} {ir / 1e6:11.2f} M {reads / 1e3:9.1f} k {writes / 1e3:7.1f} k "
                  f"{moved * LINE / 1e6:9.2f} {relative}")
            if args.functions:
                print(_top_functions(files[0], files[1], args.functions))


if __name__ == "__main__":
    main()
