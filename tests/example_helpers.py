"""What the example tests share: skipping when a dataset is absent, and recognising a PNG."""

from __future__ import annotations

import pytest


def needs(loader_name: str) -> None:
    """Skip the calling test unless `fnn.data.<loader_name>`'s files are in the data directory."""
    from fnn import data

    try:
        getattr(data, loader_name)("test", download=False)
    except (FileNotFoundError, OSError):
        pytest.skip(f"{loader_name} files not found (set FNN_DATA_DIR to the folder holding them)")


def is_png(path) -> bool:
    return path.read_bytes()[:4] == b"\x89PNG"
