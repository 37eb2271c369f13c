"""Fashion-MNIST with four networks of the model zoo, with augmentation, and precision, recall, F1 and PR curves.

    python -m fnn_examples.fashion_zoo [--models lenet vgg resnet18 vit] [--epochs 20] [--vit-epochs 20]
                                       [--padding 2] [--data-dir DIR]

The models and optimizers of `mnist_zoo` (LeNet-5; VGG-11-BN width x0.25; ResNet-18, CIFAR-style
stem, width x0.25; ViT patch 4, dim 64, depth 6), 20 epochs each, batch 128, warmup-cosine
schedules, images in [0, 1]. Training images are augmented with random crops of the image
padded by `--padding` pixels (2 to 4) and random horizontal flips, drawn with explicit keys on
NumPy arrays. After training, each final model is scored on the whole test set:

- `zoo.md`: per model its parameters, test accuracy (last and best epoch), top-5, macro precision,
  recall and F1 and the mean one-vs-rest average precision;
- `pr_curves.png`: one panel per model with its ten one-vs-rest precision-recall curves and the
  micro-averaged curve;
- `<model>/per_class.md`: precision, recall, F1 and support per class; `<model>/`: history (top-1
  and top-5 error on train and test per epoch), plot and best checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fnn import data, metrics, training
from fnn_examples import common, zoo_common
from fnn_examples.fashion_mnist import CLASSES, per_class_table, predict_scores

NAME = "fashion_zoo"


def score(row: dict, x_test, y_test) -> dict:
    """Macro precision / recall / F1, per-class figures, PR curves and average precisions of the
    final model of `row` on the test set."""
    k = len(CLASSES)
    scores = predict_scores(row["_model"], row["_params"], row["_state"], x_test)
    per_class = [np.asarray(v) for v in metrics.precision_recall_f1(scores, y_test, num_classes=k)]
    macro = metrics.precision_recall_f1(scores, y_test, num_classes=k, average="macro")
    support = np.bincount(np.asarray(y_test), minlength=k)
    curves = metrics.pr_curves(scores, y_test)
    aps = [metrics.average_precision(scores[:, c], y_test == c) if support[c] else float("nan")
           for c in range(k)]
    onehot = np.asarray(y_test)[:, None] == np.arange(k)
    micro_curve = metrics.pr_curve(scores.ravel(), onehot.ravel())
    micro_ap = metrics.average_precision(scores.ravel(), onehot.ravel())
    return {"accuracy": metrics.accuracy(scores, y_test), "macro_precision": macro[0],
            "macro_recall": macro[1], "macro_f1": macro[2], "mean_average_precision": float(np.nanmean(aps)),
            "micro_average_precision": micro_ap, "per_class": per_class, "support": support,
            "curves": curves, "aps": aps, "micro_curve": micro_curve}


def plot_pr_curves(rows: list[dict], path: Path, title: str) -> None:
    """One panel per model: the one-vs-rest PR curve of every class, and the micro average in black
    (on a bare Figure: no pyplot state is touched)."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    n = len(rows)
    cols = min(n, 2)
    nrows = (n + cols - 1) // cols
    fig = Figure(figsize=(6.5 * cols, 5.5 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax, r in zip(axes.ravel(), rows):
        s = r["scores"]
        for name, (precision, recall, _), ap in zip(CLASSES, s["curves"], s["aps"]):
            ax.step(recall, precision, where="post", linewidth=1, label=f"{name} (AP {ap:.3f})")
        precision, recall, _ = s["micro_curve"]
        ax.step(recall, precision, where="post", color="black", linewidth=2,
                label=f"micro average (AP {s['micro_average_precision']:.3f})")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.01)
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=7)
        ax.set_title(f"{r['model']}: accuracy {100 * s['accuracy']:.2f}%, macro F1 {s['macro_f1']:.4f}", fontsize=10)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0], epochs=20, batch_size=128, lr=0.0, devices=("cpu", "gpu"))
    zoo_common.add_arguments(p, vit_epochs=20, widths={"vgg": 0.25, "resnet18": 0.25})
    p.add_argument("--padding", type=int, default=2, choices=(2, 3, 4), help="random-crop padding in pixels")
    args = p.parse_args(argv)
    out = common.out_dir(args, NAME)
    (x_train, y_train), (x_test, y_test) = common.load_image_data(data.fashion_mnist, args,
                                                                  quick_sizes=(512, 256))
    zoo_common.shrink_for_quick(args)
    augment = None if args.no_augment else zoo_common.augmentation(args.padding, flip=True)
    augmentation_text = ("none" if args.no_augment else
                         f"random crops (padding {args.padding}) and horizontal flips")

    rows = zoo_common.run_models(args, out, NAME, (x_train, y_train), (x_test, y_test), augment,
                                 num_classes=len(CLASSES))
    for r in rows:
        s = r["scores"] = score(r, x_test, y_test)
        for key in ("macro_precision", "macro_recall", "macro_f1", "mean_average_precision"):
            r[key] = s[key]
        precision, recall, f1 = s["per_class"]
        macro = (s["macro_precision"], s["macro_recall"], s["macro_f1"])
        training.write_text_atomic(out / r["model"] / "per_class.md",
                                   f"# Fashion-MNIST per class: {r['model']} ({r['description']})\n\n"
                                   f"Test accuracy {100 * s['accuracy']:.2f}% on {len(y_test)} images.\n\n"
                                   f"{per_class_table(precision, recall, f1, s['support'], macro)}\n")

    extra = (("macro precision", "macro_precision"), ("macro recall", "macro_recall"),
             ("macro F1", "macro_f1"), ("mean AP", "mean_average_precision"))
    table = zoo_common.markdown_table(rows, extra=extra)
    text = (f"# Fashion-MNIST: the model zoo\n\nBatch {args.batch_size}, warmup-cosine schedules, "
            f"augmentation: {augmentation_text}; {len(x_train)} training and {len(x_test)} test images. "
            f"Test accuracy after the last epoch and at the best epoch; precision, recall, F1 (macro "
            f"averages over the 10 classes) and one-vs-rest average precision of the final model. "
            f"Seconds per epoch are training time on {common.machine()}.\n\n{table}\n")
    training.write_text_atomic(out / "zoo.md", text)
    zoo_common.plot_comparison(rows, out / "zoo.png", f"Fashion-MNIST, model zoo ({augmentation_text})")
    plot_pr_curves(rows, out / "pr_curves.png", f"Fashion-MNIST one-vs-rest PR curves ({augmentation_text})")
    print(table, flush=True)

    summary = zoo_common.summary_of(rows, args, augmentation_text)
    for r in rows:
        for key in ("macro_precision", "macro_recall", "macro_f1", "mean_average_precision"):
            summary[f"{r['model']}_{key}"] = r[key]
    common.write_summary(out, NAME, summary)
    return summary


if __name__ == "__main__":
    main()
