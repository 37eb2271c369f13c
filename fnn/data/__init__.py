"""Data: IDX files, MNIST and Fashion-MNIST, small synthetic sets, minibatches and augmentations.

    import fnn
    from fnn import data

    x, y = data.mnist("train")                                  # float32 (60000, 1, 28, 28), int64
    for xb, yb in data.batches(fnn.random.key(0), (x, y), 128):
        ...
    for xb, yb in data.batches(fnn.random.key(0), (x, y), 128, device="gpu"):   # CuPy batches
        ...
"""

from fnn.data.batching import (
    batches,
    normalize,
    num_batches,
    prefetch_to_device,
    random_crop,
    random_horizontal_flip,
)
from fnn.data.datasets import (
    FASHION_MNIST,
    MNIST,
    ChecksumError,
    DatasetSpec,
    cache_dir,
    data_dir,
    fashion_mnist,
    load_idx_dataset,
    mnist,
)
from fnn.data.idx import read_idx, write_idx
from fnn.data.synthetic import digits, linear_regression_data, sin_cos_sequences, two_moons

__all__ = [
    "read_idx", "write_idx",
    "data_dir", "cache_dir", "mnist", "fashion_mnist", "load_idx_dataset", "DatasetSpec", "MNIST",
    "FASHION_MNIST", "ChecksumError",
    "two_moons", "linear_regression_data", "sin_cos_sequences", "digits",
    "batches", "num_batches", "prefetch_to_device", "random_crop", "random_horizontal_flip", "normalize",
]
