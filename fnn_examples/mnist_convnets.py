"""MNIST with four small conv nets side by side: max pooling, average pooling, BatchNorm, BatchNorm + Dropout.

    python -m fnn_examples.mnist_convnets [--epochs 3] [--channels 8 16] [--hidden 64] [--data-dir DIR]

Every variant is conv 3x3 (pad 1) -> ReLU -> pool 2 twice (C1 then C2 channels), then
dense H -> ReLU -> dense 10; by default C1, C2, H = 8, 16, 64:

- maxpool:           conv-relu-maxpool x2, dense, dense
- avgpool:           the same with 2x2 average pooling
- batchnorm:         conv-BatchNorm-relu-maxpool x2, dense, dense
- batchnorm_dropout: as batchnorm, with Dropout(0.25) after each pooling and Dropout(0.5) before
                     the last dense layer

All are trained alike (Adam, warmup-cosine schedule, softmax cross-entropy, batch 64) with
`train=True`, and evaluated with `train=False`, so BatchNorm normalises with its running
statistics and Dropout is the identity. Each variant writes its history, plot and best checkpoint
to `--out/<variant>/`; `convnets.md` holds the comparison table (parameters, test accuracy,
seconds per epoch) and `convnets.png` the test error of every variant per epoch.
"""

from __future__ import annotations

from pathlib import Path

from fnn import data, losses, nn, optim, training
from fnn_examples import common

NAME = "mnist_convnets"
VARIANTS = ("maxpool", "avgpool", "batchnorm", "batchnorm_dropout")


def convnet(variant: str, channels: tuple[int, int] = (8, 16), hidden: int = 64,
            num_classes: int = 10) -> nn.Sequential:
    """One of `VARIANTS`: two conv 3x3 blocks of `channels`, then dense `hidden` and dense `num_classes`."""
    if variant not in VARIANTS:
        raise ValueError(f"convnet: variant must be one of {VARIANTS}, got {variant!r}")
    batchnorm = variant.startswith("batchnorm")
    dropout = variant == "batchnorm_dropout"
    pool = nn.AvgPool2d if variant == "avgpool" else nn.MaxPool2d
    layers: list = []
    for c in channels:
        layers.append(nn.Conv2d(c, 3, padding=1))
        if batchnorm:
            layers.append(nn.BatchNorm())
        layers += [nn.ReLU(), pool(2)]
        if dropout:
            layers.append(nn.Dropout(0.25))
    layers += [nn.Flatten(), nn.Dense(hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Dense(num_classes))
    return nn.Sequential(layers)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| variant | parameters | test accuracy | best test accuracy | seconds per epoch |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['parameters']:,} | {100 * r['test_accuracy']:.2f}% | "
                     f"{100 * r['best_test_accuracy']:.2f}% | {r['seconds_per_epoch']:.1f} |")
    return "\n".join(lines)


def plot_comparison(histories: dict, path: Path, title: str) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for variant, history in histories.items():
        epochs = history.column("epoch")
        axes[0].plot(epochs, history.column("train_loss"), marker="o", markersize=3, label=variant)
        axes[1].plot(epochs, [100 * e for e in history.column("test_error")], marker="o", markersize=3,
                     label=variant)
    axes[0].set_ylabel("train loss")
    axes[1].set_ylabel("test error (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0], epochs=3, batch_size=64, lr=2e-3, devices=("cpu", "gpu"))
    p.add_argument("--channels", type=int, nargs=2, default=[8, 16], metavar=("C1", "C2"),
                   help="output channels of the two conv layers")
    p.add_argument("--hidden", type=int, default=64, help="width of the hidden dense layer")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = p.parse_args(argv)
    out = common.out_dir(args, NAME)
    (x_train, y_train), (x_test, y_test) = common.load_image_data(data.mnist, args)
    channels = tuple(args.channels)
    sizes = (f"conv 3x3 {channels[0]} and {channels[1]} channels, dense {args.hidden}, "
             f"{args.epochs} epochs, batch {args.batch_size}, {len(x_train)} training images")
    print(f"{NAME}: {sizes}", flush=True)

    def loss_fn(logits, labels, params):
        return losses.softmax_cross_entropy(logits, labels)

    rows, histories = [], {}
    for variant in args.variants:
        (out / variant).mkdir(parents=True, exist_ok=True)
        opt = optim.adam(common.warmup_cosine(args, len(x_train)))
        result = common.train_classifier(convnet(variant, channels, args.hidden), loss_fn, opt,
                                         (x_train, y_train), (x_test, y_test), epochs=args.epochs,
                                         batch_size=args.batch_size, seed=args.seed, out=out / variant,
                                         progress=not args.no_progress, name=f"{NAME}/{variant}",
                                         device=args.device)
        histories[variant] = result["history"]
        rows.append({"variant": variant, "parameters": nn.count_params(result["params"]),
                     "test_accuracy": result["test_accuracy"],
                     "best_test_accuracy": result["best_test_accuracy"],
                     "seconds_per_epoch": result["seconds_per_epoch"]})

    table = markdown_table(rows)
    text = (f"# MNIST: small conv nets\n\n{sizes}.\n\nTest accuracy after the last epoch (and the best "
            f"epoch's); seconds per epoch are training time on {common.machine()}.\n\n{table}\n")
    training.write_text_atomic(out / "convnets.md", text)
    plot_comparison(histories, out / "convnets.png", f"MNIST conv nets ({sizes})")
    print(table, flush=True)

    summary = {"sizes": sizes, "epochs": args.epochs, "batch_size": args.batch_size}
    for r in rows:
        summary[f"{r['variant']}_parameters"] = r["parameters"]
        summary[f"{r['variant']}_test_accuracy"] = r["test_accuracy"]
        summary[f"{r['variant']}_seconds_per_epoch"] = r["seconds_per_epoch"]
    best = max(rows, key=lambda r: r["test_accuracy"])
    summary["best_variant"] = best["variant"]
    summary["test_accuracy"] = best["test_accuracy"]
    common.write_summary(out, NAME, summary)
    return summary


if __name__ == "__main__":
    main()
