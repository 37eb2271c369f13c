"""Linear regression by gradient descent: recover known weights and bias from noisy data.

    python -m fnn_examples.linear_regression [--epochs 200] [--lr 0.1] [--seed 0] [--out DIR]

Everything is explicit: data come from `fnn.random` keys, the model is a parameter dict, the
gradient comes from `fnn.value_and_grad`, and the update is one line of tree arithmetic.
"""

from __future__ import annotations

import numpy as np

import fnn
import fnn.numpy as fnp
from fnn import io
from fnn_examples import common


def make_data(key, n: int, true_w: np.ndarray, true_b: float, noise: float):
    """Inputs x ~ N(0, 1) and targets y = x @ w + b + noise, both float32."""
    k_x, k_noise = fnn.random.split(key)
    x = fnn.random.normal(k_x, (n, true_w.shape[0]))
    y = x @ true_w + true_b + noise * fnn.random.normal(k_noise, (n,))
    return x, y.astype(np.float32)


def predict(params, x):
    return x @ params["w"] + params["b"]


def mse(params, x, y):
    return fnp.mean((predict(params, x) - y) ** 2)


def train(epochs: int, lr: float, seed: int, verbose: bool = True):
    true_w = np.array([2.0, -3.4, 0.5], dtype=np.float32)
    true_b = 4.2
    key = fnn.random.key(seed)
    k_data, k_init = fnn.random.split(key)
    x, y = make_data(k_data, 1000, true_w, true_b, noise=0.01)
    params = {"w": 0.01 * fnn.random.normal(k_init, (3,)), "b": np.zeros((), np.float32)}
    loss_and_grad = fnn.value_and_grad(mse)
    for epoch in range(1, epochs + 1):
        loss, grads = loss_and_grad(params, x, y)
        params = fnn.tree.map(lambda p, g: p - lr * g, params, grads)
        if verbose and (epoch == 1 or epoch % max(1, epochs // 10) == 0):
            print(f"epoch {epoch:4d}  mse {float(loss):.6f}")
    return params, true_w, true_b


def main(argv=None) -> dict:
    args = common.parser(__doc__.splitlines()[0], epochs=200, batch_size=1000, lr=0.1).parse_args(argv)
    out = common.out_dir(args, "linear_regression")
    epochs = min(args.epochs, 50) if args.quick else args.epochs
    params, true_w, true_b = train(epochs, args.lr, args.seed)
    print(f"learned w = {np.round(params['w'], 4)}  (true {true_w})")
    print(f"learned b = {float(params['b']):.4f}  (true {true_b})")
    io.save(out / "params.npz", params)
    summary = {"max_weight_error": float(np.max(np.abs(params["w"] - true_w))),
               "bias_error": abs(float(params["b"]) - true_b), "epochs": epochs}
    common.write_summary(out, "linear_regression", summary)
    return summary


if __name__ == "__main__":
    main()
