"""What every experiment shares: its command line, its output folder, and a classifier's train loop.

Each experiment takes `--epochs --batch-size --lr --seed --data-dir --out --quick --device`, writes
its history (JSON, CSV, a plot), pictures and best checkpoint to `--out`, and prints its final
metrics. `--quick` runs a tiny version in seconds (the tests run every experiment that way).

`--device gpu` (in the experiments that offer it) trains on the GPU with CuPy: the model is
initialised on the host and its parameters, state and optimizer state moved to the GPU once;
each batch is copied there (one batch ahead); random numbers inside the step (dropout,
augmentation) are made there; the step's loss and error counts stay there and are read back once
per epoch. Evaluation and checkpoints read the GPU once per epoch as well. The trained model is
handed back on the host.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import fnn
from fnn import backend, data, metrics, optim, training


def parser(description: str, *, epochs: int, batch_size: int, lr: float,
           devices: tuple[str, ...] = ("cpu",)) -> argparse.ArgumentParser:
    """The shared command line, with this experiment's defaults; `devices` are the `--device`
    choices the experiment supports (those that train with `train_classifier` offer 'gpu')."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="where the datasets are (else FNN_DATA_DIR, then ~/.cache/fnn)")
    p.add_argument("--out", default=None, help="output folder (default runs/<experiment>)")
    p.add_argument("--quick", action="store_true", help="a tiny run, for smoke tests")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from the last finished epoch saved in --out")
    p.add_argument("--device", choices=devices, default="cpu",
                   help="where to train: 'cpu' (NumPy) or 'gpu' (CuPy), where offered")
    return p


def out_dir(args: argparse.Namespace, name: str) -> Path:
    path = Path(args.out or Path("runs") / name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_image_data(loader: Callable, args: argparse.Namespace, quick_sizes=(1000, 300),
                    quick_epochs: int = 1) -> tuple[tuple, tuple]:
    """((x_train, y_train), (x_test, y_test)) from `loader` (fnn.data.mnist, ...); with `--quick`,
    the first `quick_sizes` examples of each split and at most `quick_epochs` epochs."""
    x_train, y_train = loader("train", data_dir=args.data_dir)
    x_test, y_test = loader("test", data_dir=args.data_dir)
    if args.quick:
        n_train, n_test = quick_sizes
        x_train, y_train, x_test, y_test = x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test]
        args.epochs = min(args.epochs, quick_epochs)
    return (x_train, y_train), (x_test, y_test)


def warmup_cosine(args: argparse.Namespace, n_train: int) -> Callable:
    """The learning-rate schedule the experiments share: a linear warmup over the first 5% of the
    steps to `--lr`, then cosine decay to zero at the last step."""
    steps = args.epochs * data.num_batches(n_train, args.batch_size, drop_last=True)
    return optim.warmup_cosine_decay_schedule(0.0, args.lr, max(1, steps // 20), steps)


def machine() -> str:
    """One line describing this machine, for results tables."""
    import os  # noqa: PLC0415

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, NumPy {np.__version__}"


def write_summary(out: Path, name: str, result: dict[str, Any]) -> None:
    """`result.json` in the output folder, and the result printed as `key: value` lines."""
    result = {"experiment": name, "machine": machine(), **result}
    training.write_text_atomic(out / "result.json", json.dumps(result, indent=1))
    for key, value in result.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")


class DeviceMeans:
    """Batch-size-weighted means of named scalars that stay on their device until `means()`,
    which reads them all back in one transfer (one synchronisation per epoch, not per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.count = 0

    def add(self, weight: int, **values: Any) -> None:
        for name, value in values.items():
            total = backend.get_array_module(value).asarray(value, dtype=np.float64) * weight
            self.sums[name] = total if name not in self.sums else self.sums[name] + total
        self.count += weight

    def means(self) -> dict[str, float]:
        """The means as Python floats; the sums are cleared for the next epoch."""
        if not self.sums:
            return {}
        names = list(self.sums)
        xp = backend.get_array_module(*self.sums.values())
        totals = backend.to_numpy(xp.stack([self.sums[n] for n in names]))
        count = max(self.count, 1)
        self.sums, self.count = {}, 0
        return {n: float(t) / count for n, t in zip(names, totals)}


def correct_counts(logits: Any, labels: Any, k: int) -> tuple[Any, Any]:
    """(top-1 correct, top-k correct) counts of a batch as 0-d arrays on the logits' device (no host
    read); ties rank as in `fnn.metrics` (the lower class id first)."""
    xp = backend.get_array_module(logits)
    lab = labels[:, None].astype(np.int64)
    true = xp.take_along_axis(logits, lab, axis=-1)
    ids = xp.arange(logits.shape[-1])
    rank = xp.sum((logits > true) | ((logits == true) & (ids < lab)), axis=-1)
    return xp.sum(rank < 1), xp.sum(rank < k)


def train_classifier(model, loss_fn: Callable, opt, train_set, test_set, *, epochs: int, batch_size: int,
                     seed: int, out: Path, progress: bool = True, augment: Callable | None = None,
                     name: str = "run", resume: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Train `model` with `loss_fn(logits, labels, params)`; each epoch record train loss, top-1 and
    top-5 error on train (over the epoch's batches, as trained) and test, save the best checkpoint
    (by test error) and the history.

    After every epoch the whole training state (parameters, model state, optimizer state, random
    key, epoch) goes to `out/last.npz` and the history so far to `out/history.json`; with
    `resume=True` a run finds them there and goes on after the last finished epoch, with the same
    batches and random numbers an uninterrupted run would have used.

    `device='gpu'` trains on the GPU (see the module docstring); the returned params and state are
    on the host either way."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"train_classifier: device must be 'cpu' or 'gpu', got {device!r}")
    on_gpu = device == "gpu"
    x_train, y_train = train_set
    x_test, y_test = test_set
    key = fnn.random.key(seed)
    k_init, k_run = fnn.random.split(key)
    params, state = model.init(k_init, x_train[:batch_size])
    params, state = backend.to_device((params, state), device)
    opt_state = opt.init(params)
    sums = DeviceMeans()

    def objective(params, state, x, y, key):
        logits, state = model.apply(params, state, x, key=key, train=True)
        return loss_fn(logits, y, params), (state, logits)

    grad_fn = fnn.value_and_grad(objective, has_aux=True)

    def step(carry, batch):
        params, state, opt_state, key = carry
        key, k_step, k_aug = fnn.random.split(key, 3)
        x, y = batch
        if augment is not None:
            x = augment(k_aug, x)
        (loss, (state, logits)), grads = grad_fn(params, state, x, y, k_step)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optim.apply_updates(params, updates)
        if on_gpu:  # the step's numbers stay on the GPU; read once per epoch
            top1, top5 = correct_counts(fnn.stop_gradient(logits), y, min(5, logits.shape[-1]))
            n = len(y)
            sums.add(n, loss=fnn.stop_gradient(loss), error=1.0 - top1 / n, top5_error=1.0 - top5 / n)
            return (params, state, opt_state, key), {}
        top5 = metrics.top_k_accuracy(logits, y, k=min(5, logits.shape[-1]))
        return (params, state, opt_state, key), {"loss": float(loss),
                                                  "error": 1.0 - metrics.accuracy(logits, y),
                                                  "top5_error": 1.0 - top5}

    def scores(params, state, x, y):
        if on_gpu:
            test = DeviceMeans()
            for xb, yb in data.batches(None, (x, y), 1000, shuffle=False, device=device):
                logits, _ = model.apply(params, state, xb, train=False)
                top1, top5 = correct_counts(logits, yb, min(5, logits.shape[-1]))
                n = len(yb)
                test.add(n, error=1.0 - top1 / n, top5_error=1.0 - top5 / n)
            return test.means()

        def batch_metrics(batch):
            xb, yb = batch
            logits, _ = model.apply(params, state, xb, train=False)
            top5 = metrics.top_k_accuracy(logits, yb, k=min(5, logits.shape[-1]))
            return {"error": 1.0 - metrics.accuracy(logits, yb), "top5_error": 1.0 - top5}
        return training.evaluate(batch_metrics, data.batches(None, (x, y), 1000, shuffle=False))

    history = training.History()
    keep_best = training.CheckpointOnImprovement(out / "best.npz", monitor="test_error")
    carry = (params, state, opt_state, k_run)
    n_batches = data.num_batches(len(x_train), batch_size, drop_last=True)
    last = out / "last.npz"
    first_epoch = 1
    if resume and last.exists():
        carry, first_epoch = _resume(last, out / "history.json", carry, epochs, history, keep_best)
        params, state = carry[0], carry[1]  # the trained model, also when no epoch is left to run
        print(f"{name}: resuming after epoch {first_epoch - 1} (from {last})", flush=True)
    for epoch in range(first_epoch, epochs + 1):
        batches = data.batches(fnn.random.fold_in(key, epoch), (x_train, y_train), batch_size, drop_last=True,
                               device=device if on_gpu else None)
        carry, train_metrics = training.run_epoch(step, carry, batches, total=n_batches,
                                                  desc=f"{name} epoch {epoch}", progress=progress)
        train_metrics.update(sums.means())
        params, state = carry[0], carry[1]
        test = scores(params, state, x_test, y_test)
        row = history.record(epoch, train_loss=train_metrics["loss"], train_error=train_metrics["error"],
                             train_top5_error=train_metrics["top5_error"], test_error=test["error"],
                             test_top5_error=test["top5_error"], seconds=train_metrics["seconds"])
        keep_best(epoch, row, {"params": params, "state": state})
        print(f"epoch {epoch:3d}  loss {row['train_loss']:.4f}  train error {row['train_error']:.4f} "
              f"(top-5 {row['train_top5_error']:.4f})  test error {row['test_error']:.4f} "
              f"(top-5 {row['test_top5_error']:.4f})  "
              f"({row['seconds']:.1f} s)", flush=True)
        history.to_json(out / "history.json")
        fnn.io.save(last, {"carry": carry, "epoch": epoch, "epochs": epochs})
    history.to_csv(out / "history.csv")
    training.plot_history(history, out / "history.png", title=name)
    best = history.best("test_error")
    params, state = backend.to_numpy((params, state))
    return {"params": params, "state": state, "history": history,
            "test_accuracy": 1.0 - history.rows[-1]["test_error"],
            "test_top5_accuracy": 1.0 - history.rows[-1]["test_top5_error"],
            "best_test_accuracy": 1.0 - best["test_error"], "best_epoch": best["epoch"],
            "seconds_per_epoch": float(np.mean(history.column("seconds")))}


def _resume(last: Path, history_path: Path, carry: Any, epochs: int, history: training.History,
            keep_best: training.CheckpointOnImprovement) -> tuple[Any, int]:
    """The training state saved in `last` and the epoch to go on from; fills `history` with the
    finished epochs and tells `keep_best` the best test error so far. Refuses a state saved by
    a run of another length (its learning-rate schedule would differ)."""
    saved = fnn.io.load(last, like={"carry": carry, "epoch": 0, "epochs": 0})
    if saved["epochs"] != epochs:
        raise ValueError(f"--resume: {last} was saved by a run of {saved['epochs']} epochs, this one "
                         f"has {epochs}; resume with the same settings or use another --out")
    done = saved["epoch"]
    rows = training.History.from_json(history_path).rows if history_path.exists() else []
    history.rows = [row for row in rows if row["epoch"] <= done]
    if len(history.rows) != done:
        raise ValueError(f"--resume: {history_path} has {len(history.rows)} of the {done} finished "
                         "epochs; the run folder is incomplete")
    if history.rows:
        best = history.best("test_error")
        keep_best.best, keep_best.best_epoch = best["test_error"], best["epoch"]
    return saved["carry"], done + 1


def timed(fn: Callable, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start
