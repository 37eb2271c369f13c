"""One stack on one workload, kept alive by benchmarks/suite.py and driven over stdin/stdout.

    python benchmarks/stacks/worker.py STACK WORKLOAD DATA_DIR THREADS

Reads DATA_DIR/weights_WORKLOAD.npz and DATA_DIR/batch_WORKLOAD.npz, builds the step, prints one
JSON line ({"ready": ...} or {"error": ...}), then answers one JSON line per command line:

    check PATH [float64]   one step from the initial weights (cast to float64 if asked); the
                   gradients go to PATH (.npz)
    fdcheck        (numpy only) central difference of the loss along a random direction, float64
    warmup N       N untimed steps
    time N         one untimed step (caches are cold after the other stacks' turns), a
                   gc.collect(), then N steps, each timed with perf_counter
    rss            max resident set size of this process so far
    quit
"""

import json
import os
import sys

STACK, WORKLOAD, DATA_DIR, THREADS = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = THREADS

import gc  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

_out = sys.stdout
sys.stdout = sys.stderr  # anything a library prints stays off the protocol channel
_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(_root, "benchmarks"))
sys.path.insert(0, _root)


def reply(obj):
    _out.write(json.dumps(obj) + "\n")
    _out.flush()


def load_stack(stack):
    """(workload table, flat_grads, version string)."""
    if stack == "numpy":
        from stacks import numpy_ref as m
        return m.WORKLOADS, m.flat_grads, f"NumPy {np.__version__}"
    if stack in ("fnn", "fnn-loop"):
        import fnn
        from stacks import fnn_impl as m
        table = m.WORKLOADS if stack == "fnn" else m.LOOP_WORKLOADS
        return table, m.flat_grads, f"fnn {getattr(fnn, '__version__', '?')}"
    if stack == "autograd":
        from importlib.metadata import version
        from stacks import autograd_impl as m
        return m.WORKLOADS, m.flat_grads, f"autograd {version('autograd')}"
    if stack == "torch":
        import torch
        torch.set_num_threads(int(THREADS))
        from stacks import torch_impl as m
        return m.WORKLOADS, m.flat_grads, f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    raise ValueError(f"unknown stack {stack!r}")


def as_float64(arrays):
    return {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in arrays.items()}


def fdcheck(make, weights, batch):
    """Relative error of <grad, d> against a central difference of the loss along d (float64)."""
    w, b = as_float64(weights), as_float64(batch)
    init, step = make(lr=0.0)
    _, _, g = step(init(w), b)
    rng = np.random.default_rng(7)
    d = {k: rng.normal(size=v.shape) for k, v in w.items()}
    eps = 1e-9  # small: ReLU and max-pool kinks crossed by a larger step spoil the difference
    lp = step(init({k: w[k] + eps * d[k] for k in w}), b)[1]
    lm = step(init({k: w[k] - eps * d[k] for k in w}), b)[1]
    fd = (lp - lm) / (2 * eps)
    an = float(sum(np.sum(g[k] * d[k]) for k in w))
    return abs(fd - an) / max(abs(an), 1e-12), fd, an


def main():
    try:
        table, flat_grads, version = load_stack(STACK)
        make = table[WORKLOAD]
    except Exception as exc:  # noqa: BLE001 - reported to the driver, which skips the stack
        reply({"error": f"{type(exc).__name__}: {exc}"})
        return
    with np.load(os.path.join(DATA_DIR, f"weights_{WORKLOAD}.npz")) as f:
        weights = {k: f[k] for k in f.files}
    with np.load(os.path.join(DATA_DIR, f"batch_{WORKLOAD}.npz")) as f:
        batch = {k: f[k] for k in f.files}
    init, step = make()
    params = init(weights)
    reply({"ready": True, "version": version})
    loss = None
    for line in sys.stdin:
        cmd, *args = line.split()
        try:
            if cmd == "check":
                if args[1:] == ["float64"]:
                    check_init, check_step = make()
                    w64, b64 = as_float64(weights), as_float64(batch)
                    _, loss, grads = check_step(check_init(w64), b64)
                else:
                    params, loss, grads = step(init(weights), batch)
                np.savez(args[0], **flat_grads(grads))
                reply({"loss": float(loss)})
            elif cmd == "fdcheck":
                rel, fd, an = fdcheck(make, weights, batch)
                reply({"rel": rel, "fd": fd, "analytic": an})
            elif cmd == "warmup":
                for _ in range(int(args[0])):
                    params, loss, _ = step(params, batch)
                reply({"loss": float(loss)})
            elif cmd == "time":
                params, loss, _ = step(params, batch)  # untimed: caches are cold after other stacks ran
                gc.collect()
                times = []
                for _ in range(int(args[0])):
                    t0 = time.perf_counter()
                    params, loss, _ = step(params, batch)
                    times.append(time.perf_counter() - t0)
                reply({"times": times, "loss": float(loss)})
            elif cmd == "rss":
                reply({"maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
            elif cmd == "quit":
                reply({"bye": True})
                return
            else:
                reply({"error": f"unknown command {cmd!r}"})
        except Exception as exc:  # noqa: BLE001
            reply({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
