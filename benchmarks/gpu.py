"""Training-step benchmark on a GPU: fnn on CuPy against PyTorch CUDA eager, on the same device.

Workloads: the CPU suite's (stacks/common.py: mlp, lenet, tiny, rnn, resnet at base width 16 and
batch 32) plus `resnet18-full`: the same ResNet-18 layout at full width (64, 128, 256, 512) on
3x32x32 inputs, 10 classes, batch 128, with the suite's CIFAR stem (3x3 convolution, stride 1,
padding 1, no max-pool). One training step = forward + backward + SGD update, float32, one fixed
batch reused.

Stacks (stacks/gpu_stacks.py): fnn on CuPy (fnn_impl's models, trees moved with
fnn.backend.to_cupy; for rnn also the Python loop over time), torch CUDA eager with TF32 off
everywhere (the main comparison: fnn's products run in plain float32 unless CUPY_TF32 is set),
and, for the workloads that use cuDNN (lenet, rnn, resnet, resnet18-full), torch with its own
default precision settings (cuDNN convolutions in TF32) as a second column. Every stack starts
from the same initial weights.

Before timing: one step from the same weights on every stack; fnn's loss must match torch's
(rtol 1e-3) and each gradient must match in relative norm (< 1e-3); where float32 disagrees, the
same step in float64 on both stacks decides, as in the CPU suite (a batch-norm bias gradient is a
sum that cancels, so its float32 relative error is large for two correct stacks): "ok (float64)"
when the float64 gradients agree within 1e-6, else FAILED (still timed). Then one fnn step runs inside `cupyx.allow_synchronize(False)` (host round trips) and
one torch step under `torch.cuda.set_sync_debug_mode("error")`.

Timing: warm-up, then R interleaved rounds (stack order rotated); in each round every stack does
one untimed step and C chunks of K back-to-back steps, each chunk ended by a device sync, K chosen
so that a turn lasts about --turn-seconds; wall clock per step (median and IQR over the chunks).
Host overhead per step: the time the Python call of step() takes when the device queue is empty
(after a sync, before the next; the step is not waited for), and the issue time per step inside a
chunk (before its sync). A stack is host-bound where the first is at least 0.9x its synced step.

    PYTHONPATH=. python benchmarks/gpu.py [--workloads ...] [--rounds R] [--out FILE.md]
    PYTHONPATH=tests/fake_cupy:. python benchmarks/gpu.py --dry-run     # no GPU: fake CuPy, torch CPU
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import sys
import time
import traceback
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

WORKLOADS = ("mlp", "resnet", "resnet18-full", "lenet", "tiny", "rnn")
CUDNN_WORKLOADS = ("lenet", "rnn", "resnet", "resnet18-full")
TARGETS = {"resnet": 0.7, "resnet18-full": 0.7, "mlp": 0.5}
LOSS_RTOL = 1e-3
GRAD_RTOL = 1e-3     # relative norm error of each gradient, float32
GRAD_RTOL64 = 1e-6   # the same in float64 (diagnostic)
HOST_BOUND = 0.9     # host issue time >= this x synced step time: host-bound


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; dry run 2)")
    ap.add_argument("--chunks", type=int, default=None, help="synced chunks per turn (default 3; dry run 1)")
    ap.add_argument("--turn-seconds", type=float, default=None,
                    help="about how long one stack's turn lasts (default 0.3; dry run 0.01)")
    ap.add_argument("--no-torch-defaults", action="store_true",
                    help="leave out the torch column with torch's default (TF32) precision settings")
    ap.add_argument("--no-loop", action="store_true", help="leave out fnn's loop-over-time RNN")
    ap.add_argument("--max-seconds", type=float, default=210.0,
                    help="start no new workload after this many seconds (the rest are listed as skipped)")
    ap.add_argument("--dry-run", action="store_true",
                    help="tiny sizes, torch on the CPU, CuPy may be the fake in tests/fake_cupy: checks the script")
    ap.add_argument("--out", help="also write the Markdown report here (rewritten after each workload)")
    return ap.parse_args(argv)


# workloads ---------------------------------------------------------------------------------------

def workload_spec(name, dry):
    """(base workload, ResNet width, weights, batch, batch size, description)."""
    import numpy as np

    from stacks import common

    if name == "resnet18-full":
        width, n = (8, 8) if dry else (64, 128)
        rng = np.random.default_rng(1)
        batch = {"x": rng.normal(size=(n, 3, 32, 32)).astype(np.float32),
                 "y": rng.integers(0, 10, n).astype(np.int64)}
        desc = (f"ResNet-18 layout for 32x32, base width {width} (stages {width}-{8 * width}), CIFAR stem "
                f"(3x3 conv stride 1, no max-pool), BatchNorm (train), batch {n} of 3x32x32, 10 classes")
        if dry:
            desc += " [dry run: reduced from width 64, batch 128]"
        return "resnet", width, common.init_weights("resnet", width=width), batch, n, desc
    batch = common.make_batch(name)
    desc = common.DESCRIPTION[name]
    if dry and name == "resnet":
        batch = {k: v[:8] for k, v in batch.items()}
        desc += " [dry run: the first 8 of the batch]"
    return name, common.RESNET_WIDTH, common.init_weights(name), batch, len(batch["x"]), desc


def unit_of(name):
    return "sequences" if name == "rnn" else "images" if name != "tiny" else "samples"


# checks ------------------------------------------------------------------------------------------

def compare(ref, got, dtype, rtol):
    """(max relative norm error, worst name, reason or None)."""
    import numpy as np

    if set(ref) != set(got):
        return math.inf, "", f"names differ: missing {sorted(set(ref) - set(got))}, extra {sorted(set(got) - set(ref))}"
    worst, worst_k = 0.0, ""
    for k, r in ref.items():
        g = got[k]
        if g.shape != r.shape:
            return math.inf, k, f"{k}: shape {g.shape}, expected {r.shape}"
        if g.dtype != dtype:
            return math.inf, k, f"{k}: dtype {g.dtype}, expected {np.dtype(dtype).name}"
        r64, g64 = r.astype(np.float64), g.astype(np.float64)
        den = float(np.linalg.norm(r64)) or float(np.linalg.norm(g64)) or 1.0
        err = float(np.linalg.norm(g64 - r64)) / den
        if not err <= worst:  # NaN counts as worst
            worst, worst_k = err, k
    reason = None if worst < rtol else f"gradient {worst_k}: relative norm error {worst:.2g} (limit {rtol:g})"
    return worst, worst_k, reason


def as_float64(arrays):
    import numpy as np

    return {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in arrays.items()}


def innermost(tb_exc, prefer="fnn"):
    frames = traceback.extract_tb(tb_exc.__traceback__)
    mine = [f for f in frames if f"{os.sep}{prefer}{os.sep}" in f.filename]
    f = (mine or frames or [None])[-1]
    return f"{os.path.relpath(f.filename, ROOT)}:{f.lineno} in {f.name}" if f else "?"


def fnn_sync_check(stack):
    """'none', or the error that the first host round trip raised, for one training step."""
    import cupy
    import cupyx

    allow = getattr(cupyx, "allow_synchronize", None)
    if allow is None:
        return "not checked (this CuPy has no cupyx.allow_synchronize)", None
    fake = getattr(cupy, "_SyncState", None)
    stack.sync()
    n0 = fake.count if fake is not None else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with allow(False):
                stack.step()
    except Exception as exc:  # noqa: BLE001 - reported
        return f"{type(exc).__name__}: {exc} (at {innermost(exc)})", traceback.format_exc()
    finally:
        stack.sync()
    if fake is not None and fake.count - n0 > 1:  # the final sync counts once
        return f"{fake.count - n0 - 1} host reads", None
    return "none", None


def torch_sync_check(stack):
    torch = stack.torch
    if stack.device.type != "cuda":
        return "not checked (CPU)"
    stack.sync()
    try:
        torch.cuda.set_sync_debug_mode("error")
        try:
            stack.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    except Exception as exc:  # noqa: BLE001 - reported
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        stack.sync()
    return "none"


# timing ------------------------------------------------------------------------------------------

class Timings:
    def __init__(self):
        self.step, self.issue_loop, self.issue_iso, self.k = [], [], [], None


def timed_steps(stack, k):
    stack.sync()
    t0 = time.perf_counter()
    for _ in range(k):
        stack.step()
    t1 = time.perf_counter()
    stack.sync()
    t2 = time.perf_counter()
    return (t2 - t0) / k, (t1 - t0) / k


def measure(stacks, cfg, res):
    """Interleaved rounds over the live stacks; fills res[label]['timings']."""
    live = []
    for s in stacks:
        r = res[s.label]
        try:
            s.enter()
            for _ in range(cfg["warmup"]):
                s.step()
            s.sync()
            est = min(timed_steps(s, cfg["calibrate"])[0] for _ in range(2))
            t = Timings()
            t.k = max(cfg["kmin"], min(cfg["kmax"], round(cfg["turn"] / cfg["chunks"] / max(est, 1e-7))))
            t.iso_n = cfg["iso"] if est < 0.05 else 1
            r["timings"] = t
            live.append(s)
        except Exception as exc:  # noqa: BLE001
            r["error"] = f"warm-up: {type(exc).__name__}: {exc}"
            r["traceback"] = traceback.format_exc()
            log(r["traceback"])
    for rnd in range(cfg["rounds"]):
        order = live[rnd % len(live):] + live[:rnd % len(live)] if live else []
        for s in order:
            r = res[s.label]
            if "error" in r:
                continue
            t = r["timings"]
            try:
                s.enter()
                s.step()  # untimed: the other stacks ran in between
                s.sync()
                gc.collect()
                for _ in range(cfg["chunks"]):
                    per_step, issue = timed_steps(s, t.k)
                    t.step.append(per_step)
                    t.issue_loop.append(issue)
                for _ in range(t.iso_n):
                    s.sync()
                    t0 = time.perf_counter()
                    s.step()
                    t.issue_iso.append(time.perf_counter() - t0)
                    s.sync()
            except Exception as exc:  # noqa: BLE001
                r["error"] = f"timing: {type(exc).__name__}: {exc}"
                r["traceback"] = traceback.format_exc()
                log(r["traceback"])
        if any(s.kind == "fnn" for s in live):
            log(f"    round {rnd + 1}/{cfg['rounds']} done")


def stats(values):
    import numpy as np

    a = np.asarray(values, dtype=float)
    q25, med, q75 = np.percentile(a, [25, 50, 75])
    return {"med": float(med), "q25": float(q25), "q75": float(q75), "n": len(a)}


# one workload ------------------------------------------------------------------------------------

def run_workload(name, args, env, cfg):
    import numpy as np

    from stacks import gpu_stacks as gs

    base, width, weights, batch, n, desc = workload_spec(name, args.dry_run)
    lr = gs.lr_of(base)
    out = {"name": name, "desc": desc, "n": n, "rows": {}, "notes": [], "order": []}
    rows = out["rows"]

    def add(label, factory):
        rows[label] = {}
        out["order"].append(label)
        try:
            return factory()
        except Exception as exc:  # noqa: BLE001
            rows[label]["error"] = f"build: {type(exc).__name__}: {exc}"
            rows[label]["traceback"] = traceback.format_exc()
            log(rows[label]["traceback"])
            return None

    torch_parts = gs.torch_parts(base, width)
    tdev = env["torch_device"]
    stacks = []
    fnn_s = add("fnn (CuPy)", lambda: gs.FnnStack("fnn (CuPy)", gs.make_fnn_builder(base, width), lr, weights, batch))
    stacks.append(fnn_s)
    if name == "rnn" and not args.no_loop:
        stacks.append(add("fnn (CuPy, loop over time)", lambda: gs.FnnStack(
            "fnn (CuPy, loop over time)", gs.make_fnn_builder(base, loop=True), lr, weights, batch)))
    torch_s = add("torch (TF32 off)", lambda: gs.TorchStack("torch (TF32 off)", torch_parts, lr, weights, batch,
                                                            tdev, env["precision"], "ieee"))
    stacks.append(torch_s)
    if name in CUDNN_WORKLOADS and not args.no_torch_defaults:
        stacks.append(add("torch (defaults)", lambda: gs.TorchStack("torch (defaults)", torch_parts, lr, weights,
                                                                    batch, tdev, env["precision"], "default")))
    stacks = [s for s in stacks if s is not None]

    # gradient check: one step from the same weights; torch with TF32 off is the reference
    checked = {}
    for s in stacks:
        try:
            checked[s.label] = s.check(weights, batch)
        except Exception as exc:  # noqa: BLE001
            rows[s.label]["error"] = f"check step: {type(exc).__name__}: {exc}"
            rows[s.label]["traceback"] = traceback.format_exc()
            log(rows[s.label]["traceback"])
    ref = checked.get("torch (TF32 off)")
    for s in stacks:
        row = rows[s.label]
        if s.label not in checked or s is torch_s:
            if s is torch_s and s.label in checked:
                row["check"] = "reference"
            continue
        if ref is None:
            row["check"] = "not checked (no reference)"
            continue
        loss, grads = checked[s.label]
        err, worst, why = compare(ref[1], grads, np.float32, GRAD_RTOL)
        loss_ok = abs(loss - ref[0]) <= LOSS_RTOL * abs(ref[0]) + 1e-7
        row["grad_err"] = err
        if s.kind == "torch":  # torch's default precision: shown, not judged
            row["check"] = f"TF32: rel. err {err:.1e}"
            continue
        if why is None and not loss_ok:
            why = f"loss {loss:.7g} vs torch {ref[0]:.7g}"
        row["check"] = "ok" if why is None else "FAILED"
        row["check_detail"] = (f"loss {loss:.6g} vs {ref[0]:.6g}; max grad rel. err {err:.1e} ({worst})"
                               + ("" if why is None else f"; {why}"))
        if why is not None:  # is it rounding? the same step in float64 on both stacks
            try:
                l64, g64 = s.check(as_float64(weights), as_float64(batch))
                lt64, gt64 = torch_s.check(as_float64(weights), as_float64(batch))
                e64, w64, why64 = compare(gt64, g64, np.float64, GRAD_RTOL64)
                row["check_detail"] += (f"; float64: loss {l64:.10g} vs {lt64:.10g}, max grad rel. err "
                                        f"{e64:.1e} ({w64})" + (" -> float32 gap is rounding" if why64 is None
                                                               else " -> disagrees in float64 too"))
                loss64_ok = abs(l64 - lt64) <= 1e-9 * abs(lt64) + 1e-12
                if why64 is None and loss64_ok:  # judged in float64, as the CPU suite does
                    row["check"] = "ok (float64)"
            except Exception as exc:  # noqa: BLE001
                row["check_detail"] += f"; float64 check failed: {type(exc).__name__}: {exc}"
        log(f"[{name}] {s.label}: {row['check']} ({row['check_detail']})")

    # host round trips: one step each, after a warm-up step (first-use compilation done)
    for s in stacks:
        row = rows[s.label]
        if "error" in row:
            continue
        try:
            s.enter()
            s.step()
            s.sync()
            if s.kind == "fnn":
                row["sync"], tb = fnn_sync_check(s)
                if tb:
                    row["sync_traceback"] = tb
                    log(f"[{name}] {s.label}: host round trip in a training step:\n{tb}")
            else:
                row["sync"] = torch_sync_check(s)
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"first steps: {type(exc).__name__}: {exc}"
            row["traceback"] = traceback.format_exc()
            log(row["traceback"])
    stacks = [s for s in stacks if "error" not in rows[s.label]]

    measure(stacks, cfg, rows)
    for s in stacks:
        row = rows[s.label]
        t = row.get("timings")
        if t and t.step and "error" not in row:
            row["step"] = stats(t.step)
            row["issue_loop"] = stats(t.issue_loop)
            row["issue_iso"] = stats(t.issue_iso)
            row["k"] = t.k
            try:  # the loss after the last step, as a sanity check (outside the timed steps)
                row["final_loss"] = float(np.asarray(_host(s.loss)))
            except Exception:  # noqa: BLE001
                pass
        s.close()
    free_device_memory()
    return out


def _host(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    from fnn import backend

    return backend.to_numpy(x)


def free_device_memory():
    gc.collect()
    try:
        import cupy

        pool = getattr(cupy, "get_default_memory_pool", None)
        if pool is not None:
            pool().free_all_blocks()
    except Exception:  # noqa: BLE001
        pass
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001
        pass


# environment -------------------------------------------------------------------------------------

def environment(args):
    import numpy as np
    try:
        import cupy
        import torch
    except ImportError as exc:
        raise SystemExit(f"{exc}: the benchmark needs CuPy and torch (for a dry run without a GPU, put "
                         "tests/fake_cupy first on PYTHONPATH)") from None

    from stacks import gpu_stacks as gs

    fake = bool(getattr(cupy, "FAKE", False))
    env = {"fake": fake}
    if args.dry_run:
        env["torch_device"] = torch.device("cpu")
    else:
        if fake:
            raise SystemExit("the fake CuPy is on the path: a real run needs CuPy and a GPU (or use --dry-run)")
        if not torch.cuda.is_available():
            raise SystemExit("torch sees no CUDA device: a real run needs one (or use --dry-run)")
        env["torch_device"] = torch.device("cuda", 0)
    env["precision"] = gs.TorchPrecision(torch)
    env["precision"].set("ieee")
    info = []

    def attempt(label, fn):
        try:
            info.append(f"{label} {fn()}")
        except Exception as exc:  # noqa: BLE001
            info.append(f"{label} ? ({type(exc).__name__})")

    def gpu_name():
        if env["torch_device"].type == "cuda":
            return torch.cuda.get_device_name(0)
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else name

    def cuda_versions():
        rt, drv = cupy.cuda.runtime.runtimeGetVersion(), cupy.cuda.runtime.driverGetVersion()
        return f"runtime {rt // 1000}.{rt % 1000 // 10}, driver API {drv // 1000}.{drv % 1000 // 10}"

    def cupy_cudnn():
        from cupy.cuda import cudnn  # noqa: PLC0415

        return cudnn.getVersion()

    attempt("GPU:", gpu_name)
    attempt("CUDA (CuPy's):", cuda_versions)
    info.append(f"CuPy {cupy.__version__}" + (" (the NumPy-backed fake in tests/fake_cupy)" if fake else ""))
    attempt("CuPy's cuDNN:", cupy_cudnn)
    info.append(f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN "
                f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else 'n/a'}); "
                f"torch device: {env['torch_device']}")
    try:
        import fnn

        info.append(f"fnn {getattr(fnn, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        info.append(f"fnn ? ({exc})")
    info.append(f"Python {platform.python_version()}; NumPy {np.__version__}; {platform.system()} {platform.machine()}")
    env["info"] = info
    env["env_vars"] = {k: os.environ[k] for k in ("CUPY_TF32", "CUPY_ACCELERATORS", "CUDA_LAUNCH_BLOCKING",
                                                  "CUBLAS_WORKSPACE_CONFIG", "NVIDIA_TF32_OVERRIDE")
                       if k in os.environ}
    if os.environ.get("CUDA_LAUNCH_BLOCKING", "0") not in ("", "0"):
        log("warning: CUDA_LAUNCH_BLOCKING is set: every launch waits, host overhead numbers are meaningless")
    return env


# report ------------------------------------------------------------------------------------------

def fmt_ms(sec):
    ms = sec * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def fmt_rate(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def report(argv, args, env, cfg, results, skipped, elapsed):
    prec = env["precision"]
    lines = [
        "## GPU training step: fnn on CuPy vs PyTorch CUDA eager" + (" (DRY RUN: numbers mean nothing)"
                                                                      if args.dry_run else ""),
        "",
        f"- command: `python benchmarks/gpu.py {' '.join(argv)}`".rstrip(),
        f"- {time.strftime('%Y-%m-%d %H:%M:%S')}; " + "; ".join(env["info"]),
        "- environment: " + (", ".join(f"{k}={v}" for k, v in env["env_vars"].items()) or
                             "CUPY_TF32 unset (CuPy's matrix products in plain float32)"),
        f"- torch (TF32 off), the reference: {prec.describe('ieee')}; torch (defaults): {prec.describe('default')} "
        "(TF32 in cuDNN convolutions and RNNs, not in matmul); cudnn.benchmark off (torch's default)",
        "- one step = forward + backward + SGD (fnn: optim.sgd applied with donation; torch: grads set to "
        "None, loss.backward(), one torch._foreach_add_ over the parameters), float32, same initial "
        "weights and fixed batch on every stack; the loss stays on the device",
        f"- check: one step from the same weights; fnn's loss vs torch (TF32 off) within rtol {LOSS_RTOL:g}, "
        f"every gradient within relative norm error {GRAD_RTOL:g}; a float64 rerun on both where it fails",
        f"- timing: {cfg['warmup']} warm-up steps, then {cfg['rounds']} interleaved rounds; per round and "
        f"stack one untimed step and {cfg['chunks']} chunk(s) of K back-to-back steps, each chunk ended by a "
        f"device sync (K: about {cfg['turn']:g} s per turn); median and IQR of the per-step wall time over "
        "the chunks",
        "- host issue (queue empty): the Python call of one step() right after a sync, not waited for "
        "(the host's cost of a step); host issue (in loop): time per step to issue a chunk, before its sync "
        f"(equal to the step when the launch queue fills). host-bound: host issue (queue empty) >= "
        f"{HOST_BOUND:g}x the synced step",
        "- host round trips: one fnn step inside cupyx.allow_synchronize(False); one torch step under "
        "torch.cuda.set_sync_debug_mode('error')",
        "",
        "### Summary",
        "",
        "| workload | batch | fnn ms/step | torch ms/step | fnn ÷ torch throughput | target | "
        "fnn ÷ torch (defaults) | fnn host ms/step | torch host ms/step | fnn check | fnn host round trips |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---|---|",
    ]
    detail = []
    failures = []
    for res in results:
        rows = res["rows"]
        f, t, d = rows.get("fnn (CuPy)", {}), rows.get("torch (TF32 off)", {}), rows.get("torch (defaults)", {})

        def ms(r):
            return fmt_ms(r["step"]["med"]) if "step" in r else ("error" if "error" in r else "—")

        def host(r):
            return fmt_ms(r["issue_iso"]["med"]) if "issue_iso" in r else "—"

        ratio = t["step"]["med"] / f["step"]["med"] if "step" in f and "step" in t else None
        ratio_d = d["step"]["med"] / f["step"]["med"] if "step" in f and "step" in d else None
        tgt = TARGETS.get(res["name"])
        tgt_cell = "—" if tgt is None else f"≥ {tgt:g}: " + ("n/a" if ratio is None else
                                                               "**met**" if ratio >= tgt else "**not met**")
        lines.append(
            f"| {res['name']} | {res['n']} | {ms(f)} | {ms(t)} | "
            f"{'—' if ratio is None else f'{ratio:.2f}'} | {tgt_cell} | "
            f"{'—' if ratio_d is None else f'{ratio_d:.2f}'} | {host(f)} | {host(t)} | {f.get('check', f.get('error', '—'))} | {f.get('sync', '—')} |")
        detail += ["", f"### {res['name']}: {res['desc']}", "",
                   "| stack | check | median ms/step | IQR (p25 – p75) | " + unit_of(res["name"]) + "/s | "
                   "host issue ms/step (queue empty) | host issue ms/step (in loop) | bound | K × chunks × rounds | "
                   "fnn ÷ this (throughput) | host round trips |",
                   "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|"]
        for label in res["order"]:
            r = rows[label]
            if "step" not in r:
                detail.append(f"| {label} | {r.get('check', '—')} | {r.get('error', 'not timed')} | | | | | | | | "
                              f"{r.get('sync', '—')} |")
            else:
                st, iso, loop = r["step"], r["issue_iso"], r["issue_loop"]
                bound = "host" if iso["med"] >= HOST_BOUND * st["med"] else "device"
                x = "—" if label == "fnn (CuPy)" or "step" not in f else f"{st['med'] / f['step']['med']:.2f}"
                detail.append(
                    f"| {label} | {r.get('check', '—')} | {fmt_ms(st['med'])} | {fmt_ms(st['q25'])} – "
                    f"{fmt_ms(st['q75'])} | {fmt_rate(res['n'] / st['med'])} | {fmt_ms(iso['med'])} | "
                    f"{fmt_ms(loop['med'])} | {bound} | {r['k']} × {cfg['chunks']} × {cfg['rounds']} | {x} | "
                    f"{r.get('sync', '—')} |")
        for label in res["order"]:
            r = rows[label]
            if r.get("check_detail"):
                detail.append(f"- {label} check: {r['check_detail']}")
            if "final_loss" in r:
                detail.append(f"- {label}: loss after the last timed step {r['final_loss']:.4g}")
            for key in ("traceback", "sync_traceback"):
                if r.get(key):
                    what = "error" if key == "traceback" else "host round trip"
                    failures += ["", f"{res['name']} / {label} ({what}):",
                                 "", "```", *r[key].rstrip().splitlines()[-40:], "```"]
        if res.get("error"):
            detail.append(f"- workload error: {res['error']}")
            failures += ["", f"{res['name']}:", "", "```", *res["traceback"].rstrip().splitlines()[-40:], "```"]
    if skipped:
        lines += ["", "Skipped (time budget): " + ", ".join(skipped)]
    lines += detail
    if failures:
        lines += ["", "### Failures", *failures]
    lines += ["", f"Total wall time {elapsed:.0f} s."]
    return "\n".join(lines) + "\n"


def summary_line(res):
    parts = []
    for label in res["order"]:
        r = res["rows"][label]
        if "step" in r:
            parts.append(f"{label} {fmt_ms(r['step']['med'])} ms/step (host {fmt_ms(r['issue_iso']['med'])})")
        else:
            parts.append(f"{label} {r.get('error', 'not timed')}")
    f, t = res["rows"].get("fnn (CuPy)", {}), res["rows"].get("torch (TF32 off)", {})
    if "step" in f and "step" in t:
        parts.append(f"fnn ÷ torch throughput {t['step']['med'] / f['step']['med']:.2f}")
    return "; ".join(parts) or res.get("error", "")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, HERE)
    if ROOT not in sys.path:
        sys.path.insert(1, ROOT)
    args = parse_args(argv)
    dry = args.dry_run
    cfg = {"rounds": args.rounds or (2 if dry else 5), "chunks": args.chunks or (1 if dry else 3),
           "turn": args.turn_seconds or (0.01 if dry else 0.3), "warmup": 1 if dry else 3,
           "calibrate": 1 if dry else 2, "kmin": 1, "kmax": 2000, "iso": 1 if dry else 3}
    t_start = time.perf_counter()
    env = environment(args)
    for line in env["info"]:
        log(line)
    results, skipped = [], []
    text = ""
    for name in args.workloads:
        if time.perf_counter() - t_start > args.max_seconds:
            skipped.append(name)
            log(f"[{name}] skipped: past --max-seconds {args.max_seconds:g}")
            continue
        t0 = time.perf_counter()
        log(f"[{name}] start")
        try:
            results.append(run_workload(name, args, env, cfg))
        except Exception as exc:  # noqa: BLE001
            tb = traceback.format_exc()
            log(tb)
            results.append({"name": name, "desc": "", "n": 0, "rows": {}, "order": [],
                            "error": f"{type(exc).__name__}: {exc}", "traceback": tb})
            free_device_memory()
        log(f"[{name}] done in {time.perf_counter() - t0:.1f} s: " + summary_line(results[-1]))
        text = report(argv, args, env, cfg, results, skipped, time.perf_counter() - t_start)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(text)
    text = report(argv, args, env, cfg, results, skipped, time.perf_counter() - t_start)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
        log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
