"""What compiling fnn's own Python would give: the modules on a training step's path compiled by
Cython, against the same source run by the interpreter.

fnn's cost above a hand-written NumPy step is interpreter work (boxing, recording nodes, the
backward pass's dispatch, tree walks, argument checks; see `cold_overhead.py`). Cython compiles
the unchanged `.py` source, with no type declarations, into C that makes the same CPython API
calls. That removes the bytecode dispatch and keeps all the object work. This script measures how
much of fnn's fixed cost per step that is:

1. it copies this checkout's `fnn/` and `benchmarks/` into BUILD_DIR and compiles the modules
   named in `COMPILED` there, in place, two at a time. These are the tracer, the backward pass,
   the transforms, the tree walks, `fnn.numpy`, and the layers, losses and optimizers that the
   suite's steps use;
2. it checks that the compiled copy is what gets imported, and that its W1 gradients equal the
   hand-written ones in float64 (`tape_floor.check_gradients`);
3. it counts instructions per training step (`instructions.py`'s protocol) for the hand-written
   step and for fnn, interpreted and compiled: W1's layout, W3, and the W4 loop.

Needs Cython (`pip install cython`), a C compiler with the Python headers, and valgrind. The
build takes 2-4 minutes on two cores. The copy is reused while the source it was built from is
unchanged. To time the compiled copy, run the suite from its folder:
`cd BUILD_DIR && PYTHONPATH=. python benchmarks/suite.py --workloads mlp tiny --stacks numpy fnn`.

    PYTHONPATH=. python benchmarks/compiled_core.py [--build-dir DIR] [--steps 5] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import instructions  # noqa: E402
from tape_floor import emit  # noqa: E402

# The modules a training step runs, relative to the checkout (globs allowed; package __init__
# files stay interpreted). GPU-only modules are left out: no step on the CPU runs them.
COMPILED = (
    "fnn/autodiff/*.py",
    "fnn/tree.py",
    "fnn/backend.py",
    "fnn/numpy/*.py",
    "fnn/nn/module.py",
    "fnn/nn/combinators.py",
    "fnn/nn/layers/core.py",
    "fnn/nn/layers/recurrent.py",
    "fnn/nn/functional/dense.py",
    "fnn/nn/functional/activations.py",
    "fnn/nn/functional/recurrent.py",
    "fnn/losses/_common.py",
    "fnn/losses/classification.py",
    "fnn/losses/regression.py",
    "fnn/optim/*.py",
)

# workload -> instructions.py's arguments: the sizes at which its count is the fixed cost
WORKLOADS = {
    "W1 layout, 8-16-10, batch 2": ["--workload", "mlp", "--hidden", "16", "--batch", "2"],
    "W3 tiny (2-10-10-1, batch 64)": ["--workload", "tiny"],
    "W4 loop, hidden 4, batch 2, 50 time steps": ["--workload", "rnn-loop"],
}

# binding=True: compiled functions keep the introspection of Python ones (signatures, __doc__)
_BUILD = """
import sys
from Cython.Build import cythonize
from setuptools import setup
modules = sys.argv[1:]
setup(ext_modules=cythonize(modules, nthreads=2, quiet=True,
                            compiler_directives={"language_level": 3, "binding": True}),
      script_args=["build_ext", "--inplace", "-j", "2"])
"""


def modules_to_compile(root: str) -> list[str]:
    """The paths (relative to `root`) that `COMPILED` names, sorted; a name that matches no file
    is an error (a module was moved or renamed)."""
    found = set()
    for pattern in COMPILED:
        matches = [os.path.relpath(p, root) for p in glob.glob(os.path.join(root, pattern))]
        matches = [m for m in matches if os.path.basename(m) != "__init__.py"]
        if not matches:
            raise FileNotFoundError(f"compiled_core.COMPILED names {pattern!r}, which matches no "
                                    f"module under {root}")
        found.update(m.replace(os.sep, "/") for m in matches)
    return sorted(found)


def source_stamp(root: str, cython_version: str) -> str:
    """A digest of every file under `root`'s fnn/ and benchmarks/ folders that the copy is built
    from (paths and contents), with the interpreter's and Cython's versions."""
    digest = hashlib.sha256(f"{sys.version}|{cython_version}".encode())
    for top in ("fnn", "benchmarks"):
        for path in sorted(glob.glob(os.path.join(root, top, "**", "*.py"), recursive=True)):
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def build_copy(build_dir: str, cython_version: str) -> list[str]:
    """Copy the checkout into `build_dir` and compile its step modules with Cython
    `cython_version` (unless an up-to-date build is there); return the compiled modules' paths."""
    stamp_path = os.path.join(build_dir, "BUILT_FROM")
    if os.path.isdir(build_dir) and os.listdir(build_dir) and not os.path.exists(stamp_path):
        sys.exit(f"{build_dir} is not empty and holds no earlier build (no BUILT_FROM): "
                 "choose another --build-dir")
    modules = modules_to_compile(ROOT)
    stamp = source_stamp(ROOT, cython_version)
    if os.path.exists(stamp_path):
        with open(stamp_path) as f:
            if f.read() == stamp:
                return modules
    shutil.rmtree(build_dir, ignore_errors=True)  # an earlier build of other source
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.c")
    for top in ("fnn", "benchmarks"):
        shutil.copytree(os.path.join(ROOT, top), os.path.join(build_dir, top), ignore=ignore)
    print(f"compiling {len(modules)} modules in {build_dir} ...", flush=True)
    subprocess.run([sys.executable, "-c", _BUILD, *modules], cwd=build_dir, check=True,
                   stdout=subprocess.DEVNULL)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return modules


def check_copy(build_dir: str) -> None:
    """Raise unless the copy imports its compiled tracer and its W1 gradients are right."""
    probe = ("import fnn.autodiff.tracer as t, tape_floor\n"
             "assert not t.__file__.endswith('.py'), t.__file__\n"
             "tape_floor.check_gradients('mlp', tape_floor.stacks_for('mlp'))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([build_dir, os.path.join(build_dir, "benchmarks")]))
    subprocess.run([sys.executable, "-c", probe], cwd=build_dir, env=env, check=True)


def fixed_cost_change(hand: float, interpreted: float, compiled: float) -> float:
    """The relative change of fnn's instructions above the hand-written step's (-0.4: 40% fewer)."""
    return (compiled - hand) / (interpreted - hand) - 1.0


def measure(build_dir: str, steps: int) -> list[tuple]:
    """(workload, hand-written, fnn interpreted, fnn compiled) instructions per step."""
    rows = []
    for title, argv in WORKLOADS.items():
        args = instructions.parse_args([*argv, "--steps", str(steps)])
        hand = instructions.per_step("numpy", args)
        interpreted = instructions.per_step("fnn", args)
        compiled = instructions.per_step("fnn", args, root=build_dir)
        rows.append((title, hand, interpreted, compiled))
        print(f"{title}: {hand / 1e6:.3f} M hand-written, fnn {interpreted / 1e6:.3f} M interpreted, "
              f"{compiled / 1e6:.3f} M compiled", flush=True)
    return rows


def report(rows: list[tuple], modules: list[str], steps: int, cython_version: str) -> list[str]:
    """The Markdown section (lines)."""
    lines = [
        "## What a compiled core would give: fnn's step modules compiled by Cython",
        "",
        f"- command: `python benchmarks/compiled_core.py`; {platform.processor() or platform.machine()}; "
        f"Python {platform.python_version()}; Cython {cython_version}",
        f"- compiled, unchanged source, no type declarations: {len(modules)} modules "
        f"({', '.join(modules)})",
        f"- instructions per training step (valgrind, {steps} steps after 3 warm-up steps, one BLAS "
        "thread); fnn's fixed cost is its count minus the hand-written step's",
        "",
        "| workload | hand-written | fnn, interpreted | fnn, compiled | fnn's fixed cost, interpreted → compiled |",
        "|---|---:|---:|---:|---:|",
    ]
    for title, hand, interpreted, compiled in rows:
        lines.append(f"| {title} | {hand / 1e6:.3f} M | {interpreted / 1e6:.3f} M | {compiled / 1e6:.3f} M "
                     f"| {(interpreted - hand) / 1e6:.3f} → {(compiled - hand) / 1e6:.3f} M "
                     f"({fixed_cost_change(hand, interpreted, compiled):+.0%}) |")
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", default=os.path.join(tempfile.gettempdir(), "fnn_compiled_core"),
                   help="where the compiled copy is built and kept")
    p.add_argument("--steps", type=int, default=5, help="counted steps per measurement")
    p.add_argument("--out", metavar="FILE.md")
    args = p.parse_args(argv)
    try:
        import Cython  # noqa: PLC0415
    except ImportError:
        sys.exit("compiled_core.py needs Cython: pip install cython")
    if shutil.which("valgrind") is None:
        sys.exit("compiled_core.py needs valgrind (e.g. apt-get install valgrind)")
    build_dir = os.path.abspath(args.build_dir)
    modules = build_copy(build_dir, Cython.__version__)
    check_copy(build_dir)
    emit(report(measure(build_dir, args.steps), modules, args.steps, Cython.__version__), args.out)


if __name__ == "__main__":
    main()
