"""Instructions per training step, counted by valgrind: a measure the host's noise does not move.

On a shared machine the time of one RNN-loop step wanders by 10-50% from run to run, which hides
the few percent that a change to the tracer's per-node work is worth. The number of instructions
a step executes does not wander: this script counts them with `valgrind --tool=cachegrind` (no
cache simulation), once for a run of 3 warm-up steps and once for 3 + K steps, and reports the
difference divided by K, for the hand-written NumPy step, the bare closure tape of
`tape_floor.py` (W4 loop only) and fnn. One BLAS thread and a fixed hash seed keep the counts
exact.

Instructions are not time: a BLAS instruction does far more work than an interpreter's, so compare
the counts of one stack before and after a change (what this is for), not stacks with each other.
Workloads (`--workload`): `rnn-loop` (the default), the W4 loop; `tiny`, W3 at its own sizes
(its products are small enough that the count is fnn's fixed cost per step: the transforms, tree
walks and optimizer); `mlp`, W1's layout (Dense, ReLU, Dense, softmax cross-entropy, SGD) with
8 inputs, `--hidden` units and `--batch` examples. The default sizes are tiny (hidden 4, batch 2),
so that the count is the per-node bookkeeping rather than the products; `--hidden 64
--batch 32` gives W4's own sizes.

    PYTHONPATH=. python benchmarks/instructions.py [--workload rnn-loop] [--steps 10] [--hidden 4 --batch 2]
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
WORKLOADS = ("rnn-loop", "tiny", "mlp")
TITLE = {"rnn-loop": "W4 loop, hidden {hidden}, batch {batch}, {time_steps} time steps",
         "tiny": "W3 tiny (2-10-10-1, batch 64)",
         "mlp": "W1 layout, 8-{hidden}-10, batch {batch}"}


def _problem(workload: str, hidden: int, batch: int, time_steps: int) -> tuple:
    """(weights, batch, builders by stack) of `workload` at the given sizes."""
    import numpy as np  # noqa: PLC0415 (after the thread settings)

    import tape_floor  # noqa: PLC0415
    from stacks import common, fnn_impl, numpy_ref  # noqa: PLC0415

    rng = np.random.default_rng(0)
    f32 = np.float32
    if workload == "tiny":
        makers = {"numpy": numpy_ref.tiny, "fnn": fnn_impl.tiny}
        return common.init_weights("tiny"), common.make_batch("tiny"), makers
    if workload == "mlp":
        weights = {"fc1.w": (0.3 * rng.normal(size=(8, hidden))).astype(f32),
                   "fc1.b": np.zeros(hidden, f32),
                   "fc2.w": (0.3 * rng.normal(size=(hidden, 10))).astype(f32),
                   "fc2.b": np.zeros(10, f32)}
        data = {"x": rng.normal(size=(batch, 8)).astype(f32),
                "y": rng.integers(0, 10, batch).astype(np.int64)}
        # fnn's builder reads the batch's spec for the model's init: give it these sizes
        fnn_impl.make_batch = lambda name, seed=1: data
        return weights, data, {"numpy": numpy_ref.mlp, "fnn": fnn_impl.mlp}
    weights = {"rnn.w_ih": (0.3 * rng.normal(size=(1, hidden))).astype(f32),
               "rnn.w_hh": (0.3 * rng.normal(size=(hidden, hidden))).astype(f32),
               "rnn.b_ih": np.zeros(hidden, f32), "rnn.b_hh": np.zeros(hidden, f32),
               "out.w": rng.normal(size=(hidden, 1)).astype(f32), "out.b": np.zeros(1, f32)}
    data = {"x": rng.normal(size=(batch, time_steps, 1)).astype(f32),
            "y": rng.normal(size=(batch, time_steps, 1)).astype(f32)}
    return weights, data, {"numpy": numpy_ref.rnn, "bare": lambda: tape_floor.bare_tape_rnn(common.LR["rnn"]),
                           "fnn": fnn_impl.rnn_loop}


def _run_steps(stack: str, steps: int, args: argparse.Namespace) -> None:
    """The child: build `stack`'s step of the workload, warm up, then run `steps` steps."""
    sys.path.insert(0, HERE)
    weights, data, makers = _problem(args.workload, args.hidden, args.batch, args.time_steps)
    init, step = makers[stack]()
    state = init(weights)
    for _ in range(3 + steps):
        state = step(state, data)[0]


def _count(stack: str, steps: int, args: argparse.Namespace, root: str | None = None) -> int:
    """Instructions of a child that runs 3 + `steps` steps; with `root`, the fnn and benchmarks
    of that source tree (e.g. `compiled_core.py`'s compiled copy) instead of this one's."""
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    script = os.path.abspath(__file__)
    if root is not None:
        env["PYTHONPATH"] = root
        script = os.path.join(root, "benchmarks", os.path.basename(script))
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, script, "--child", stack, "--steps", str(steps),
           "--workload", args.workload, "--hidden", str(args.hidden), "--batch", str(args.batch),
           "--time-steps", str(args.time_steps)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stderr
    match = re.search(r"I\s+refs:\s+([\d,]+)", out)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(match.group(1).replace(",", ""))


def per_step(stack: str, args: argparse.Namespace, root: str | None = None) -> float:
    """Instructions per training step of `stack`: (3 + K steps) minus (3 steps), over K."""
    return (_count(stack, args.steps, args, root) - _count(stack, 0, args, root)) / args.steps


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (also how `compiled_core.py` builds the settings it passes on)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=WORKLOADS, default="rnn-loop")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--hidden", type=int, default=4)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--time-steps", type=int, default=50)
    p.add_argument("--stacks", nargs="+", choices=STACKS, default=list(STACKS))
    p.add_argument("--child", choices=STACKS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        _run_steps(args.child, args.steps, args)
        return
    if shutil.which("valgrind") is None:
        sys.exit("instructions.py needs valgrind (e.g. apt-get install valgrind)")
    title = TITLE[args.workload].format(hidden=args.hidden, batch=args.batch, time_steps=args.time_steps)
    print(f"{title}: instructions per training step (valgrind, {args.steps} steps after 3 warm-up "
          "steps)")
    for stack in args.stacks:
        if stack == "bare" and args.workload != "rnn-loop":
            continue  # the bare tape is written for the W4 loop only
        print(f"  {stack:6s} {per_step(stack, args) / 1e6:8.3f} M")


if __name__ == "__main__":
    main()
