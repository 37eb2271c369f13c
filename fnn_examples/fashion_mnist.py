"""Fashion-MNIST with LeNet-5, and per-class precision, recall, F1, confusion matrix and PR curves.

    python -m fnn_examples.fashion_mnist [--epochs 10] [--augment] [--data-dir DIR]

The LeNet-5 of `mnist_lenet` (Adam, warmup-cosine schedule, softmax cross-entropy, batch 64);
`--augment` adds random crops (padding 2) and horizontal flips of the training images. After
training, the final model is scored on the whole test set:

- `per_class.md`: precision, recall, F1 and support per class, with macro averages;
- `confusion_matrix.png` (annotated heatmap, rows true class, columns predicted) and `.csv`;
- `pr_curves.png`: one-vs-rest precision-recall curves, average precision per class in the legend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import fnn
from fnn import data, losses, metrics, optim, training
from fnn.nn import functional as F
from fnn_examples import common
from fnn_examples.mnist_lenet import lenet5

NAME = "fashion_mnist"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def augment(key, x):
    k_crop, k_flip = fnn.random.split(key)
    return data.random_horizontal_flip(k_flip, data.random_crop(k_crop, x, 28, padding=2))


def predict_scores(model, params, state, x, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities (N, K) of the model in evaluation mode."""
    out = []
    for xb in data.batches(None, x, batch_size, shuffle=False):
        logits, _ = model.apply(params, state, xb, train=False)
        out.append(np.asarray(F.softmax(logits, axis=-1)))
    return np.concatenate(out)


def per_class_table(precision, recall, f1, support, macro) -> str:
    lines = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name, p, r, f, s in zip(CLASSES, precision, recall, f1, support):
        lines.append(f"| {name} | {p:.4f} | {r:.4f} | {f:.4f} | {int(s)} |")
    lines.append(f"| **macro average** | {macro[0]:.4f} | {macro[1]:.4f} | {macro[2]:.4f} | {int(np.sum(support))} |")
    return "\n".join(lines)


def plot_confusion(cm: np.ndarray, path: Path, title: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    k = cm.shape[0]
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > threshold else "black")
    ax.set_xticks(range(k), CLASSES[:k], rotation=45, ha="right")
    ax.set_yticks(range(k), CLASSES[:k])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pr_curves(curves, aps, path: Path, title: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 6))
    for name, (precision, recall, _), ap in zip(CLASSES, curves, aps):
        ax.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0], epochs=10, batch_size=64, lr=2e-3, devices=("cpu", "gpu"))
    p.add_argument("--augment", action="store_true", help="random crops (padding 2) and horizontal flips")
    args = p.parse_args(argv)
    out = common.out_dir(args, NAME)
    (x_train, y_train), (x_test, y_test) = common.load_image_data(data.fashion_mnist, args)
    opt = optim.adam(common.warmup_cosine(args, len(x_train)))

    def loss_fn(logits, labels, params):
        return losses.softmax_cross_entropy(logits, labels)

    model = lenet5(len(CLASSES))
    result = common.train_classifier(model, loss_fn, opt, (x_train, y_train), (x_test, y_test),
                                     epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                     out=out, progress=not args.no_progress,
                                     augment=augment if args.augment else None, name=NAME,
                                     device=args.device)

    scores = predict_scores(model, result["params"], result["state"], x_test)
    k = len(CLASSES)
    cm = np.asarray(metrics.confusion_matrix(scores, y_test, num_classes=k))
    precision, recall, f1 = (np.asarray(v) for v in metrics.precision_recall_f1(scores, y_test, num_classes=k))
    macro = metrics.precision_recall_f1(scores, y_test, num_classes=k, average="macro")
    support = cm.sum(axis=1)
    curves = metrics.pr_curves(scores, y_test)
    aps = [metrics.average_precision(scores[:, c], y_test == c) if np.any(y_test == c) else float("nan")
           for c in range(k)]
    accuracy = metrics.accuracy(scores, y_test)

    table = per_class_table(precision, recall, f1, support, macro)
    setting = f"LeNet-5, {args.epochs} epochs, batch {args.batch_size}, augmentation {'on' if args.augment else 'off'}"
    training.write_text_atomic(out / "per_class.md", f"# Fashion-MNIST per class ({setting})\n\n"
                                                     f"Test accuracy {100 * accuracy:.2f}% on {len(y_test)} images.\n\n{table}\n")
    training.write_text_atomic(out / "confusion_matrix.csv",
                               "\n".join(",".join(str(int(v)) for v in row) for row in cm) + "\n")
    plot_confusion(cm, out / "confusion_matrix.png", f"Fashion-MNIST confusion matrix ({setting})")
    plot_pr_curves(curves, aps, out / "pr_curves.png",
                   f"One-vs-rest PR curves, mean AP {np.nanmean(aps):.3f}")
    print(table, flush=True)

    summary = {"test_accuracy": accuracy, "best_test_accuracy": result["best_test_accuracy"],
               "macro_precision": macro[0], "macro_recall": macro[1], "macro_f1": macro[2],
               "mean_average_precision": float(np.nanmean(aps)), "epochs": args.epochs,
               "augment": bool(args.augment), "seconds_per_epoch": result["seconds_per_epoch"]}
    common.write_summary(out, NAME, summary)
    return summary


if __name__ == "__main__":
    main()
