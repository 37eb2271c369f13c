"""Fashion-MNIST with four classic CNNs side by side: AlexNet, NiN, GoogLeNet and DenseNet (small-input variants).

    python -m fnn_examples.classic_cnns [--epochs 5] [--models alexnet nin googlenet densenet]
                                        [--estimate-only] [--data-dir DIR]

The zoo's small-input variants (3x3 stride-1 first convolutions, for 28x28 images), narrowed so
that an epoch over the 60,000 training images takes minutes on a 2-core CPU:

- alexnet:   `alexnet(small_input=True, width_multiplier=0.25)`: convs 16-48-96-64-64, classifier
             256-256, dropout 0.5;
- nin:       `nin(small_input=True, width_multiplier=0.25, final_relu=False)`: NiN blocks of 24, 64
             and 96 channels, the last block's 1x1 convolution giving the logits without a
             ReLU: with it (d2l's NiN), coat and sneaker went dead in our run (their logits 0 for
             every image: 66.6% test accuracy after 5 epochs, against 78.2% without the ReLU);
             `--nin-final-relu` restores it;
- googlenet: `googlenet(small_input=True, width_multiplier=0.125)`: every Inception branch at 1/8;
- densenet:  DenseNet-BC (`densenet(small_input=True)`), growth 12, blocks (3, 3, 3), 24 stem
             features, plus a 2x2 max-pool after the 3x3 stem (torchvision's `pool0` slot): the
             dense blocks then run at 14, 7 and 3 px instead of 28, 14 and 7 (about 4x cheaper).

`--alexnet-width`, `--nin-width`, `--nin-final-relu`, `--googlenet-width`, `--densenet-growth`,
`--densenet-blocks`, `--densenet-features` and `--densenet-stem-pool/--no-densenet-stem-pool`
change these.

Before training, each model's seconds per training step are measured (`--timing-steps` steps
after one warm-up step, at `--batch-size`) and turned into an estimate of minutes per epoch over
the full 60,000 images; `--estimate-only` stops there. All models are trained alike (Adam,
warmup-cosine schedule, softmax cross-entropy, batch 128), with top-1 and top-5 error each epoch
and the best checkpoint kept. Outputs in `--out`:

- `<model>/`: history (JSON, CSV, plot) and `best.npz` of each model;
- `classic_cnns.md` (also in `result.json` as `table`): parameters, measured seconds per step,
  estimated and measured time per epoch, test accuracy and test top-5 error side by side;
- `classic_cnns.png`: train loss and test error per epoch of every model;
- `<model>_kernels.png`: the first convolution's kernels as a grid of pictures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import attrs
import numpy as np

import fnn
from fnn import data, losses, models, nn, optim, training
from fnn_examples import common
from fnn_examples.mnist_convnets import plot_comparison

NAME = "classic_cnns"
MODELS = ("alexnet", "nin", "googlenet", "densenet")
FULL_TRAIN_SIZE = 60000
QUICK = {"alexnet_width": 0.0625, "nin_width": 0.0625, "googlenet_width": 0.0625,
         "densenet_growth": 4, "densenet_blocks": [1, 1, 1], "densenet_features": 8}


def with_stem_pool(model: nn.Sequential) -> nn.Sequential:
    """A zoo DenseNet with a 2x2 max-pool (`features.pool0`) after its stem's ReLU."""
    features = model.layers[0]
    layers = list(features.layers)
    stem_end = next(i for i, name in enumerate(features.names) if name == "relu0") + 1
    layers.insert(stem_end, nn.MaxPool2d(2, name="pool0"))
    return attrs.evolve(model, layers=(attrs.evolve(features, layers=layers), *model.layers[1:]))


def build(name: str, args, num_classes: int = 10) -> tuple[nn.Module, str]:
    """The model `name` of `MODELS` at the widths in `args`, and a one-line description of it."""
    if name == "alexnet":
        w = args.alexnet_width
        return (models.alexnet(num_classes, 1, small_input=True, width_multiplier=w),
                f"small_input, width x{w:g}")
    if name == "nin":
        w = args.nin_width
        return (models.nin(num_classes, 1, small_input=True, width_multiplier=w, final_relu=args.nin_final_relu),
                f"small_input, width x{w:g}" + ("" if args.nin_final_relu else ", no ReLU on the logits"))
    if name == "googlenet":
        w = args.googlenet_width
        return (models.googlenet(num_classes, 1, small_input=True, width_multiplier=w),
                f"small_input, width x{w:g}")
    if name == "densenet":
        blocks = tuple(args.densenet_blocks)
        model = models.densenet(args.densenet_growth, blocks, args.densenet_features, 4,
                                num_classes=num_classes, small_input=True)
        desc = (f"BC, small_input, growth {args.densenet_growth}, blocks {blocks}, "
                f"{args.densenet_features} stem features")
        if args.densenet_stem_pool:
            model, desc = with_stem_pool(model), desc + ", 2x2 stem max-pool"
        return model, desc
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


def cross_entropy(logits, labels, params):
    return losses.softmax_cross_entropy(logits, labels)


def seconds_per_step(model, opt, x, y, batch_size: int, steps: int, seed: int = 0) -> float:
    """Median wall-clock seconds of one training step (forward, backward, optimizer update) on
    the first batches of (x, y), after one untimed warm-up step."""
    params, state = model.init(fnn.random.key(seed), x[:batch_size])
    opt_state = opt.init(params)

    def objective(params, state, xb, yb, key):
        logits, state = model.apply(params, state, xb, key=key, train=True)
        return cross_entropy(logits, yb, params), state

    grad_fn = fnn.value_and_grad(objective, has_aux=True)
    n_batches = max(1, len(x) // batch_size)
    times = []
    for i in range(steps + 1):
        j = (i % n_batches) * batch_size
        xb, yb = x[j:j + batch_size], y[j:j + batch_size]
        start = time.perf_counter()
        (_, state), grads = grad_fn(params, state, xb, yb, fnn.random.key(i))
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optim.apply_updates(params, updates)
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:])) if steps > 0 else times[0]


def first_conv(model, path: tuple = ()) -> tuple | None:
    """The parameter path (a tuple of child names) of the first Conv2d in `model`, in apply order."""
    if isinstance(model, nn.Conv2d):
        return path
    if isinstance(model, nn.Sequential):
        for name, layer in zip(model.names, model.layers):
            found = first_conv(layer, (*path, name))
            if found is not None:
                return found
    return None


def first_layer_kernels(model, params) -> np.ndarray:
    """The first convolution's weight, (out, in, kh, kw)."""
    path = first_conv(model)
    if path is None:
        raise ValueError("the model has no Conv2d")
    node = params
    for name in path:
        node = node[name]
    return np.asarray(node["w"])


def plot_kernels(w: np.ndarray, path: Path, title: str, max_kernels: int = 64) -> None:
    """Each output channel's kernel (averaged over input channels) as a small picture, on one
    symmetric color scale (red positive, blue negative)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    kernels = w.mean(axis=1)[:max_kernels]
    n = len(kernels)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    scale = float(np.abs(kernels).max()) or 1.0
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols + 1.0, 1.1 * rows + 0.8),
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i < n:
            im = ax.imshow(kernels[i], cmap="RdBu_r", vmin=-scale, vmax=scale)
        else:
            ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.suptitle(f"{title}\n{w.shape[0]} kernels {w.shape[2]}x{w.shape[3]}"
                 + (f", first {n} shown" if n < w.shape[0] else ""), fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(value, spec: str, suffix: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{suffix}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| model | configuration | parameters | s/step (measured) | est. min/epoch | "
             "s/epoch (measured) | test accuracy | best test accuracy | test top-5 error |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        acc = None if r.get("test_accuracy") is None else 100 * r["test_accuracy"]
        best = None if r.get("best_test_accuracy") is None else 100 * r["best_test_accuracy"]
        top5 = None if r.get("test_top5_error") is None else 100 * r["test_top5_error"]
        lines.append(f"| {r['model']} | {r['configuration']} | {r['parameters']:,} | "
                     f"{r['seconds_per_step']:.3f} | {r['estimated_minutes_per_epoch']:.1f} | "
                     f"{_fmt(r.get('seconds_per_epoch'), '.1f')} | {_fmt(acc, '.2f', '%')} | "
                     f"{_fmt(best, '.2f', '%')} | {_fmt(top5, '.2f', '%')} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0], epochs=5, batch_size=128, lr=1e-3, devices=("cpu", "gpu"))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--alexnet-width", type=float, default=0.25)
    p.add_argument("--nin-width", type=float, default=0.25)
    p.add_argument("--nin-final-relu", action="store_true",
                   help="end NiN's last block with a ReLU, as d2l does (non-negative logits)")
    p.add_argument("--googlenet-width", type=float, default=0.125)
    p.add_argument("--densenet-growth", type=int, default=12)
    p.add_argument("--densenet-blocks", type=int, nargs="+", default=[3, 3, 3])
    p.add_argument("--densenet-features", type=int, default=24, help="the DenseNet stem's channels")
    p.add_argument("--densenet-stem-pool", action=argparse.BooleanOptionalAction, default=True,
                   help="a 2x2 max-pool after the DenseNet stem (default on)")
    p.add_argument("--timing-steps", type=int, default=3, help="timed training steps per model")
    p.add_argument("--estimate-only", action="store_true",
                   help="measure seconds per step and estimate minutes per epoch; no training")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
        args.timing_steps = min(args.timing_steps, 1)
    out = common.out_dir(args, NAME)
    (x_train, y_train), (x_test, y_test) = common.load_image_data(data.fashion_mnist, args,
                                                                  quick_sizes=(512, 200))
    steps_per_full_epoch = data.num_batches(FULL_TRAIN_SIZE, args.batch_size, drop_last=True)
    setting = (f"{args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr:g} warmup-cosine, "
               f"{len(x_train)} training / {len(x_test)} test images")
    print(f"{NAME}: {setting}", flush=True)

    rows, histories = [], {}
    for name in args.models:
        model, configuration = build(name, args)
        opt = optim.adam(common.warmup_cosine(args, len(x_train)))
        step_s = seconds_per_step(model, opt, x_train, y_train, args.batch_size, args.timing_steps, args.seed)
        row = {"model": name, "configuration": configuration,
               "seconds_per_step": step_s,
               "estimated_minutes_per_epoch": step_s * steps_per_full_epoch / 60}
        if args.estimate_only:
            params, _ = model.init(fnn.random.key(args.seed), x_train[:args.batch_size])
            row["parameters"] = nn.count_params(params)
        else:
            (out / name).mkdir(parents=True, exist_ok=True)
            result = common.train_classifier(model, cross_entropy, opt, (x_train, y_train), (x_test, y_test),
                                             epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                             out=out / name, progress=not args.no_progress,
                                             name=f"{NAME}/{name}", resume=args.resume,
                                             device=args.device)
            params = result["params"]
            histories[name] = result["history"]
            row.update(parameters=nn.count_params(params), test_accuracy=result["test_accuracy"],
                       best_test_accuracy=result["best_test_accuracy"],
                       test_top5_error=result["history"].rows[-1]["test_top5_error"],
                       seconds_per_epoch=result["seconds_per_epoch"])
        plot_kernels(first_layer_kernels(model, params), out / f"{name}_kernels.png",
                     f"{name}: first-layer kernels" + (" (initial)" if args.estimate_only else
                                                       f" after {args.epochs} epoch(s)"))
        print(f"{name} ({configuration}): {row['parameters']:,} parameters, {step_s:.3f} s/step -> "
              f"about {row['estimated_minutes_per_epoch']:.1f} min per 60,000-image epoch", flush=True)
        rows.append(row)

    table = markdown_table(rows)
    text = (f"# Fashion-MNIST: classic CNNs (small-input variants)\n\n{setting}.\n\n"
            f"Seconds per step: median of {args.timing_steps} training steps at batch {args.batch_size} "
            f"after a warm-up step; est. min/epoch = s/step x {steps_per_full_epoch} steps (60,000 images); "
            f"s/epoch (measured) is the training time of this run's epochs. Machine: {common.machine()}."
            f"\n\n{table}\n")
    training.write_text_atomic(out / "classic_cnns.md", text)
    if histories:
        plot_comparison(histories, out / "classic_cnns.png", f"Fashion-MNIST classic CNNs ({setting})")
    print(table, flush=True)

    summary = {"setting": setting, "epochs": args.epochs, "batch_size": args.batch_size,
               "estimate_only": bool(args.estimate_only), "table": table}
    for r in rows:
        for key, value in r.items():
            if key != "model":
                summary[f"{r['model']}_{key}"] = value
    if histories:
        best = max(rows, key=lambda r: r["test_accuracy"])
        summary["best_model"] = best["model"]
        summary["test_accuracy"] = best["test_accuracy"]
    common.write_summary(out, NAME, summary)
    return summary


if __name__ == "__main__":
    main()
