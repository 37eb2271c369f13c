"""The epoch runner and batched evaluation: small functions, not a framework.

A training step is any function `step(carry, batch) -> (carry, metrics)`, where `carry` holds
whatever the loop threads through (params, state, optimizer state, key) and `metrics` is a dict of
scalars for that batch. `run_epoch` folds it over the batches, showing a progress bar (tqdm when
installed) with the running means, and returns the new carry and the epoch's mean metrics.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterable

__all__ = ["run_epoch", "evaluate", "RunningMeans"]


class RunningMeans:
    """Means of named scalars over batches, weighted by batch size."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, metrics: dict, weight: int = 1) -> None:
        for name, value in metrics.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value) * weight
        self.count += weight

    def means(self) -> dict[str, float]:
        return {name: total / max(self.count, 1) for name, total in self.sums.items()}


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(first.shape[0]) if hasattr(first, "shape") and first.shape else 1


def _progress(iterable: Iterable, total: int | None, desc: str | None, enabled: bool):
    """A tqdm bar when tqdm is installed and `enabled`; otherwise the iterable itself."""
    if not enabled:
        return iterable, None
    try:
        from tqdm.auto import tqdm  # noqa: PLC0415 (optional, imported only when a bar is shown)
    except ImportError:
        return iterable, None
    bar = tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)
    return bar, bar


def run_epoch(step: Callable[[Any, Any], tuple[Any, dict]], carry: Any, batches: Iterable, *,
              total: int | None = None, desc: str | None = None,
              progress: bool = True) -> tuple[Any, dict[str, float]]:
    """Apply `step` to every batch; return the final carry and the mean of each metric
    (weighted by batch size), plus `seconds` for the epoch."""
    start = time.perf_counter()
    means = RunningMeans()
    iterator, bar = _progress(batches, total, desc, progress)
    for batch in iterator:
        carry, metrics = step(carry, batch)
        means.add(metrics, _batch_size(batch))
        if bar is not None:
            bar.set_postfix({k: f"{v:.4g}" for k, v in means.means().items()}, refresh=False)
    if bar is not None:
        bar.close()
    result = means.means()
    result["seconds"] = time.perf_counter() - start
    return carry, result


def evaluate(metrics_fn: Callable[[Any], dict], batches: Iterable) -> dict[str, float]:
    """The batch-size-weighted mean of `metrics_fn(batch)` over all batches (no gradients)."""
    means = RunningMeans()
    for batch in batches:
        means.add(metrics_fn(batch), _batch_size(batch))
    return means.means()
