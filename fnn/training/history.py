"""Recording a run: per-epoch metrics to JSON and CSV, plots of them, and checkpoints saved when a
monitored metric improves."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from fnn.files import atomic_write_text

__all__ = ["History", "CheckpointOnImprovement", "plot_history", "write_text_atomic"]


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: never a half-written file."""
    atomic_write_text(path, text)


class History:
    """Metrics per epoch: `record(epoch, train_loss=..., test_error=...)`, then save or plot."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def record(self, epoch: int, **metrics: float) -> dict[str, Any]:
        row = {"epoch": epoch, **{k: float(v) for k, v in metrics.items()}}
        self.rows.append(row)
        return row

    def column(self, name: str) -> list[float]:
        return [row[name] for row in self.rows if name in row]

    def best(self, name: str, mode: str = "min") -> dict[str, Any]:
        """The row where `name` is lowest (mode='min') or highest ('max')."""
        rows = [r for r in self.rows if name in r]
        if not rows:
            raise KeyError(f"no epoch recorded {name!r}")
        return (min if mode == "min" else max)(rows, key=lambda r: r[name])

    def to_json(self, path: str | os.PathLike) -> None:
        write_text_atomic(path, json.dumps(self.rows, indent=1))

    def to_csv(self, path: str | os.PathLike) -> None:
        names = list(dict.fromkeys(k for row in self.rows for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=names)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(path, buffer.getvalue())

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "History":
        history = cls()
        history.rows = json.loads(Path(path).read_text(encoding="utf-8"))
        return history


def plot_history(history: History, path: str | os.PathLike, *, title: str | None = None) -> None:
    """Losses on the left, error rates (or other metrics) on the right, one line per series.

    Drawn on a bare `Figure` (no pyplot, no backend switch), so it leaves a notebook's plotting as
    it found it."""
    from matplotlib.figure import Figure  # noqa: PLC0415 (plots are optional: pip install 'fnn[examples]')

    names = [k for k in dict.fromkeys(k for row in history.rows for k in row) if k not in ("epoch", "seconds")]
    losses = [n for n in names if "loss" in n]
    others = [n for n in names if n not in losses]
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, group, label in ((axes[0], losses, "loss"), (axes[1], others, "metric")):
        for name in group:
            epochs = [r["epoch"] for r in history.rows if name in r]
            ax.plot(epochs, history.column(name), marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if group:
            ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


class CheckpointOnImprovement:
    """Save a tree (params, state, optimizer state...) with `fnn.io.save` whenever `monitor`
    improves; `mode` is 'min' for losses and errors, 'max' for accuracies."""

    def __init__(self, path: str | os.PathLike, monitor: str, mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"CheckpointOnImprovement: mode must be 'min' or 'max', got {mode!r}")
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch: int | None = None

    def __call__(self, epoch: int, metrics: dict[str, float], tree: Any) -> bool:
        """Save `tree` if `metrics[monitor]` beats the best so far; True when it saved."""
        if self.monitor not in metrics:
            raise KeyError(f"CheckpointOnImprovement: metrics have no {self.monitor!r} "
                           f"(they have {sorted(metrics)})")
        value = float(metrics[self.monitor])
        better = value < self.best if self.mode == "min" else value > self.best
        if better:
            from fnn import io as fnn_io  # noqa: PLC0415 (io sits beside training)

            fnn_io.save(self.path, tree)
            self.best, self.best_epoch = value, epoch
        return better
