"""Instructions per training step of the W4 loop, counted by valgrind: a measure the host's noise
does not move.

On a shared machine the time of one RNN-loop step wanders by 10-50% from run to run, which hides
the few percent that a change to the tracer's per-node work is worth. The number of instructions
a step executes does not wander: this script counts them with `valgrind --tool=cachegrind` (no
cache simulation), once for a run of 3 warm-up steps and once for 3 + K steps, and reports the
difference divided by K, for the hand-written NumPy step, the bare closure tape of
`tape_floor.py` and fnn's loop. One BLAS thread and a fixed hash seed keep the counts exact.

Instructions are not time: a BLAS instruction does far more work than an interpreter's, so compare
the counts of one stack before and after a change (what this is for), not stacks with each other.
The default sizes are tiny (hidden 4, batch 2), so that the count is the per-node bookkeeping
rather than the products; `--hidden 64 --batch 32` gives W4's own sizes.

    PYTHONPATH=. python benchmarks/instructions.py [--steps 10] [--hidden 4 --batch 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STACKS = ("numpy", "bare", "fnn")


def _run_steps(stack: str, steps: int, hidden: int, batch: int, time_steps: int) -> None:
    """The child: build `stack`'s W4 loop at the given sizes, warm up, then run `steps` steps."""
    sys.path.insert(0, HERE)
    import numpy as np  # noqa: PLC0415 (after the thread settings)

    import tape_floor  # noqa: PLC0415
    from stacks import fnn_impl, numpy_ref  # noqa: PLC0415

    rng = np.random.default_rng(0)
    f32 = np.float32
    weights = {"rnn.w_ih": (0.3 * rng.normal(size=(1, hidden))).astype(f32),
               "rnn.w_hh": (0.3 * rng.normal(size=(hidden, hidden))).astype(f32),
               "rnn.b_ih": np.zeros(hidden, f32), "rnn.b_hh": np.zeros(hidden, f32),
               "out.w": rng.normal(size=(hidden, 1)).astype(f32), "out.b": np.zeros(1, f32)}
    data = {"x": rng.normal(size=(batch, time_steps, 1)).astype(f32),
            "y": rng.normal(size=(batch, time_steps, 1)).astype(f32)}
    make = {"numpy": numpy_ref.rnn, "bare": tape_floor.bare_tape_rnn, "fnn": fnn_impl.rnn_loop}[stack]
    init, step = make(0.01)
    state = init(weights)
    for _ in range(3 + steps):
        state = step(state, data)[0]


def _count(stack: str, steps: int, args: argparse.Namespace) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, os.path.abspath(__file__), "--child", stack, "--steps", str(steps),
           "--hidden", str(args.hidden), "--batch", str(args.batch), "--time-steps", str(args.time_steps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stderr
    match = re.search(r"I\s+refs:\s+([\d,]+)", out)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(match.group(1).replace(",", ""))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--hidden", type=int, default=4)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--time-steps", type=int, default=50)
    p.add_argument("--stacks", nargs="+", choices=STACKS, default=list(STACKS))
    p.add_argument("--child", choices=STACKS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _run_steps(args.child, args.steps, args.hidden, args.batch, args.time_steps)
        return
    if shutil.which("valgrind") is None:
        sys.exit("instructions.py needs valgrind (e.g. apt-get install valgrind)")
    print(f"W4 loop, hidden {args.hidden}, batch {args.batch}, {args.time_steps} time steps: "
          f"instructions per training step (valgrind, {args.steps} steps after 3 warm-up steps)")
    for stack in args.stacks:
        per_step = (_count(stack, args.steps, args) - _count(stack, 0, args)) / args.steps
        print(f"  {stack:6s} {per_step / 1e6:8.3f} M")


if __name__ == "__main__":
    main()
