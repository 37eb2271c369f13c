"""Per-stack implementations of the training-step workloads used by benchmarks/suite.py."""
