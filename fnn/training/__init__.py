"""Training helpers: an epoch runner with a progress bar, batched evaluation, a history recorder
(JSON, CSV, plots) and save-on-improvement checkpoints. Small functions, not a framework."""

from fnn.training.history import CheckpointOnImprovement, History, plot_history, write_text_atomic
from fnn.training.loop import RunningMeans, evaluate, run_epoch

__all__ = ["run_epoch", "evaluate", "RunningMeans", "History", "CheckpointOnImprovement",
           "plot_history", "write_text_atomic"]
