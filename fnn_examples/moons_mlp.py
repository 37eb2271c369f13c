"""Two moons with a 2-10-1 MLP: tanh hidden layer, logistic output, L2 penalty 1e-3, plain
full-batch gradient descent at lr 0.1, and a picture of the decision boundary.

    python -m fnn_examples.moons_mlp [--epochs 3000] [--lr 0.1]
"""

from __future__ import annotations

import numpy as np

import fnn
from fnn import data, io, losses, metrics, nn, training
from fnn_examples import common

NAME = "moons_mlp"
L2 = 1e-3


def model() -> nn.Sequential:
    return nn.Sequential([nn.Dense(10), nn.Tanh(), nn.Dense(1)])


def plot_boundary(predict, x, y, path, title):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    lo, hi = x.min(0) - 0.5, x.max(0) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
    p = predict(grid).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.contourf(gx, gy, p, levels=20, cmap="RdBu", alpha=0.7)
    ax.contour(gx, gy, p, levels=[0.5], colors="k")
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu", edgecolors="k", s=12)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    args = common.parser(__doc__.splitlines()[0], epochs=3000, batch_size=0, lr=0.1).parse_args(argv)
    out = common.out_dir(args, NAME)
    if args.quick:
        args.epochs = min(args.epochs, 100)
    key = fnn.random.key(args.seed)
    k_train, k_test, k_init = fnn.random.split(key, 3)
    x, y = data.two_moons(k_train, 500, noise=0.1)
    x_test, y_test = data.two_moons(k_test, 500, noise=0.1)
    net = model()
    params, state = net.init(k_init, x)

    def objective(params):
        logits, _ = net.apply(params, state, x)
        return losses.binary_cross_entropy_with_logits(logits[:, 0], y.astype(np.float32)) + L2 * losses.l2(params)

    grad_fn = fnn.value_and_grad(objective)
    history = training.History()
    for epoch in range(1, args.epochs + 1):
        loss, grads = grad_fn(params)
        params = fnn.tree.map(lambda p, g: p - args.lr * g, params, grads)
        if epoch % max(1, args.epochs // 20) == 0 or epoch == args.epochs:
            logits, _ = net.apply(params, state, x_test)
            history.record(epoch, train_loss=float(loss),
                           test_error=1.0 - metrics.accuracy((logits[:, 0] > 0).astype(np.int64), y_test))

    def predict(points):
        logits, _ = net.apply(params, state, points)
        return 1.0 / (1.0 + np.exp(-logits[:, 0]))

    train_acc = metrics.accuracy((predict(x) > 0.5).astype(np.int64), y)
    test_acc = metrics.accuracy((predict(x_test) > 0.5).astype(np.int64), y_test)
    history.to_json(out / "history.json")
    history.to_csv(out / "history.csv")
    training.plot_history(history, out / "history.png", title=NAME)
    plot_boundary(predict, x_test, y_test, out / "decision_boundary.png",
                  f"2-10-1 MLP, test accuracy {test_acc:.3f}")
    io.save(out / "params.npz", params)
    summary = {"train_accuracy": train_acc, "test_accuracy": test_acc, "epochs": args.epochs}
    common.write_summary(out, NAME, summary)
    return summary


if __name__ == "__main__":
    main()
