"""The teaching notebooks under notebooks/ still run, and the committed copies carry their outputs.

No Jupyter needed: each notebook's JSON is parsed and its code cells are executed in order in one
namespace, with FNN_NOTEBOOK_QUICK=1 (the notebooks then shrink their data and training) and
matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["01_autodiff_tour.ipynb", "02_mnist_lenet.ipynb", "03_activations.ipynb", "04_model_zoo.ipynb"]
NEEDS_MNIST = {"02_mnist_lenet.ipynb"}
NEEDS_FASHION = {"04_model_zoo.ipynb"}


def _load(name: str) -> dict:
    return json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _available(loader_name: str) -> bool:
    from fnn import data

    try:
        getattr(data, loader_name)("test", download=False)
    except (FileNotFoundError, OSError):
        return False
    return True


def _single_threaded_blas():
    """Limit BLAS threads when threadpoolctl is around: small matrices on a shared machine run
    much faster without oversubscription."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, monkeypatch):
    if name in NEEDS_MNIST and not _available("mnist"):
        pytest.skip("MNIST files not found (set FNN_DATA_DIR to the folder holding mnist/)")
    if name in NEEDS_FASHION and not _available("fashion_mnist"):
        pytest.skip("Fashion-MNIST files not found (set FNN_DATA_DIR to the folder holding fashion-mnist/)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setenv("FNN_NOTEBOOK_QUICK", "1")
    monkeypatch.chdir(NOTEBOOKS)
    namespace: dict = {"__name__": "__main__"}
    with _single_threaded_blas(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")   # plt.show() under Agg
        for i, cell in enumerate(_code_cells(_load(name))):
            code = compile(_source(cell), f"{name}[code cell {i}]", "exec")
            try:
                exec(code, namespace)
            finally:
                plt.close("all")


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_was_executed(name):
    nb = _load(name)
    assert nb["nbformat"] == 4
    cells = _code_cells(nb)
    assert cells, f"{name} has no code cells"
    shows = ("print(", "plt.show()")    # cells that must have produced output
    missing = [i for i, c in enumerate(cells) if any(s in _source(c) for s in shows) and not c.get("outputs")]
    assert not missing, f"{name}: code cells {missing} have no outputs; run the notebook and save it"
    counts = [c.get("execution_count") for c in cells]
    assert all(isinstance(n, int) for n in counts), f"{name}: unexecuted cells (execution counts {counts})"
    assert counts == sorted(counts), f"{name}: cells were not run top to bottom (execution counts {counts})"
    errors = [(i, o.get("ename")) for i, c in enumerate(cells) for o in c["outputs"] if o.get("output_type") == "error"]
    assert not errors, f"{name}: error outputs in code cells {errors}"
    images = sum("image/png" in o.get("data", {}) for c in cells for o in c["outputs"])
    assert images, f"{name}: no figures in the outputs"
