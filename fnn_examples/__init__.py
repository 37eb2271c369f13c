"""Runnable example programs for fnn: `python -m fnn_examples.NAME`."""
