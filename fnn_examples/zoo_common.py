"""What the model-zoo experiments (`mnist_zoo`, `fashion_zoo`) share: the four models and their
command-line options, an optimizer per model, augmentation (training is common.train_classifier,
which records top-1 and top-5 error on train and test), and the comparison table and plot.

The models are the zoo's (`fnn.models`): LeNet-5, VGG-11 with BatchNorm (small-input variant),
ResNet-18 (CIFAR-style stem) and a Vision Transformer, each at a width chosen so that an epoch of
60,000 28x28 images takes minutes on a 2-core CPU; the options below change them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable


import fnn
from fnn import data, losses, nn, optim
from fnn.models import lenet5, resnet18, vgg11_bn
from fnn.models.vit import VisionTransformer
from fnn_examples import common

MODELS = ("lenet", "vgg", "resnet18", "vit")


def add_arguments(p: argparse.ArgumentParser, *, vit_epochs: int, widths: dict) -> None:
    """The zoo options: which models, their sizes, the ViT's epochs, augmentation. The shared
    `--epochs` is the CNNs' (LeNet, VGG, ResNet); the shared `--lr`, when given, replaces every
    model's own peak learning rate (`LR`)."""
    p.set_defaults(lr=None)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--vit-epochs", type=int, default=vit_epochs, help="epochs of the ViT")
    p.add_argument("--vgg-width", type=float, default=widths["vgg"], help="VGG-11-BN width multiplier")
    p.add_argument("--resnet-width", type=float, default=widths["resnet18"], help="ResNet-18 width multiplier")
    p.add_argument("--vit-patch", type=int, default=4)
    p.add_argument("--vit-dim", type=int, default=64)
    p.add_argument("--vit-depth", type=int, default=6)
    p.add_argument("--vit-heads", type=int, default=4)
    p.add_argument("--vit-mlp", type=int, default=128)
    p.add_argument("--vit-gelu", choices=("tanh", "exact"), default="tanh",
                   help="GELU of the ViT's MLPs: the tanh approximation (fast on CPU) or exact (erf)")
    p.add_argument("--no-augment", action="store_true", help="train without augmentation")


def shrink_for_quick(args: argparse.Namespace) -> None:
    """Tiny widths and depths for `--quick` (smoke tests)."""
    if args.quick:
        args.vgg_width = min(args.vgg_width, 0.125)
        args.resnet_width = min(args.resnet_width, 0.0625)
        args.vit_patch, args.vit_dim, args.vit_depth, args.vit_heads, args.vit_mlp = 7, 16, 1, 2, 32
        args.vit_epochs = min(args.vit_epochs, args.epochs)


# Learning rates and optimizers: AdamW for LeNet and the ViT, SGD with Nesterov momentum for the
# BatchNorm nets. Weight decay only on weights with two or more axes (not on biases, norm scales).
LR = {"lenet": 2e-3, "vgg": 0.05, "resnet18": 0.1, "vit": 1e-3}


def _decay_mask(params):
    return fnn.tree.map(lambda p: getattr(p, "ndim", 0) > 1, params)


def optimizer(name: str, schedule: Callable) -> tuple[Any, str]:
    """(optimizer, description) of model `name` with the learning-rate `schedule`."""
    if name == "lenet":
        return optim.adamw(schedule, weight_decay=1e-2, mask=_decay_mask), "AdamW, weight decay 0.01"
    if name in ("vgg", "resnet18"):
        opt = optim.chain(optim.add_decayed_weights(5e-4, mask=_decay_mask),
                          optim.sgd(schedule, momentum=0.9, nesterov=True))
        return opt, "SGD, Nesterov momentum 0.9, weight decay 5e-4"
    if name == "vit":
        opt = optim.chain(optim.clip_by_global_norm(1.0),
                          optim.adamw(schedule, weight_decay=0.05, mask=_decay_mask))
        return opt, "AdamW, weight decay 0.05, gradient clipping at norm 1"
    raise ValueError(f"unknown model {name!r}")


def build(name: str, args: argparse.Namespace, num_classes: int = 10) -> tuple[nn.Module, str]:
    """(model, description) of zoo model `name` for 28x28 single-channel images."""
    if name == "lenet":
        return lenet5(num_classes), "LeNet-5 (ReLU, max-pool), full size"
    if name == "vgg":
        model = vgg11_bn(num_classes, 1, small_input=True, width_multiplier=args.vgg_width)
        return model, f"VGG-11-BN, small-input variant (512-512 classifier), width x{args.vgg_width:g}"
    if name == "resnet18":
        model = resnet18(num_classes=num_classes, in_channels=1, small_input=True,
                         width_multiplier=args.resnet_width)
        base = max(1, int(round(64 * args.resnet_width)))
        return model, (f"ResNet-18, CIFAR-style stem (3x3 conv, no max-pool), width x{args.resnet_width:g} "
                       f"(stages {base}-{2 * base}-{4 * base}-{8 * base})")
    if name == "vit":
        model = VisionTransformer(28, args.vit_patch, in_channels=1, num_classes=num_classes,
                                  dim=args.vit_dim, depth=args.vit_depth, num_heads=args.vit_heads,
                                  mlp_dim=args.vit_mlp, approximate_gelu=args.vit_gelu == "tanh")
        return model, (f"ViT, patch {args.vit_patch} ({model.num_patches} patches), dim {args.vit_dim}, "
                       f"depth {args.vit_depth}, {args.vit_heads} heads, MLP {args.vit_mlp}, "
                       f"{args.vit_gelu} GELU")
    raise ValueError(f"unknown model {name!r}")


def epochs_of(name: str, args: argparse.Namespace) -> int:
    return args.vit_epochs if name == "vit" else args.epochs


def schedule(name: str, args: argparse.Namespace, n_train: int) -> tuple[Callable, float]:
    """common.warmup_cosine with this model's epochs and learning rate; (schedule, peak rate)."""
    lr = LR[name] if args.lr is None else args.lr
    run = argparse.Namespace(**{**vars(args), "epochs": epochs_of(name, args), "lr": lr})
    return common.warmup_cosine(run, n_train), lr


def augmentation(padding: int, flip: bool, fill: float = 0.0) -> Callable:
    """`augment(key, x)`: a random crop of the image padded by `padding` with `fill` (a shift of
    up to `padding` pixels), and with `flip` a random horizontal flip; explicit keys, NumPy arrays."""

    def augment(key, x):
        k_crop, k_flip = fnn.random.split(key)
        if padding:
            x = data.random_crop(k_crop, x, x.shape[-2:], padding=padding, fill=fill)
        if flip:
            x = data.random_horizontal_flip(k_flip, x)
        return x

    return augment


def _cross_entropy(logits, labels, params):
    return losses.softmax_cross_entropy(logits, labels)


def run_models(args: argparse.Namespace, out: Path, experiment: str, train_set, test_set,
               augment: Callable | None, num_classes: int = 10) -> list[dict]:
    """Train every model of `args.models` into `out/<model>/`; one row of results per model
    (with `params` and `state`, the final model, under `_params` / `_state`)."""
    rows = []
    for name in args.models:
        model, description = build(name, args, num_classes)
        sched, lr = schedule(name, args, len(train_set[0]))
        opt, opt_description = optimizer(name, sched)
        epochs = epochs_of(name, args)
        print(f"{experiment}/{name}: {description}; {opt_description}, peak lr {lr:g}, warmup-cosine, "
              f"{epochs} epochs, batch {args.batch_size}", flush=True)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        result = common.train_classifier(model, _cross_entropy, opt, train_set, test_set, epochs=epochs,
                                         batch_size=args.batch_size, seed=args.seed, out=folder,
                                         progress=not args.no_progress, augment=augment,
                                         name=f"{experiment}/{name}", resume=args.resume,
                                         device=args.device)
        n_params = nn.count_params(result["params"])
        rows.append({"model": name, "description": description, "parameters": n_params,
                     "optimizer": opt_description, "lr": lr, "epochs": epochs,
                     "test_accuracy": result["test_accuracy"],
                     "test_top5_accuracy": result["test_top5_accuracy"],
                     "best_test_accuracy": result["best_test_accuracy"], "best_epoch": result["best_epoch"],
                     "seconds_per_epoch": result["seconds_per_epoch"], "history": result["history"],
                     "_model": model, "_params": result["params"], "_state": result["state"]})
    return rows


def summary_of(rows: list[dict], args: argparse.Namespace, augmentation_text: str) -> dict[str, Any]:
    """The result.json entries: per model `<model>_<key>`, and the best model's test accuracy."""
    summary: dict[str, Any] = {"models": [r["model"] for r in rows], "batch_size": args.batch_size,
                               "augmentation": augmentation_text, "quick": bool(args.quick)}
    for r in rows:
        m = r["model"]
        for key in ("test_accuracy", "best_test_accuracy", "best_epoch", "test_top5_accuracy", "parameters",
                    "seconds_per_epoch", "epochs"):
            summary[f"{m}_{key}"] = r[key]
        summary[f"{m}_config"] = {"model": r["description"], "optimizer": r["optimizer"], "peak_lr": r["lr"],
                                  "schedule": "warmup-cosine (5% linear warmup)", "epochs": r["epochs"]}
    best = max(rows, key=lambda r: r["test_accuracy"])
    summary["best_model"] = best["model"]
    summary["test_accuracy"] = best["test_accuracy"]
    return summary


def plot_comparison(rows: list[dict], path: Path, title: str) -> None:
    """Test top-1 and top-5 error (%) per epoch of every model, side by side."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in rows:
        h = r["history"]
        for ax, column in zip(axes, ("test_error", "test_top5_error")):
            ax.plot(h.column("epoch"), [100 * e for e in h.column(column)], marker="o", markersize=3,
                    label=r["model"])
    axes[0].set_ylabel("test top-1 error (%)")
    axes[1].set_ylabel("test top-5 error (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown_table(rows: list[dict], extra: tuple = ()) -> str:
    """One line per model: description, parameters, test accuracy (last epoch, best epoch), top-5,
    seconds per epoch; `extra` adds (header, key) columns of fractions shown as percentages."""
    head = ["model", "configuration", "parameters", "epochs", "test accuracy", "best (epoch)",
            "test top-5", *(h for h, _ in extra), "s / epoch"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for r in rows:
        cells = [r["model"], r["description"], f"{r['parameters']:,}", str(r["epochs"]),
                 f"{100 * r['test_accuracy']:.2f}%", f"{100 * r['best_test_accuracy']:.2f}% ({r['best_epoch']})",
                 f"{100 * r['test_top5_accuracy']:.2f}%", *(f"{100 * r[k]:.2f}%" for _, k in extra),
                 f"{r['seconds_per_epoch']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
