"""Which hidden activations let a 2-10-10-1 MLP fit two moons? Twelve plain functions, AdamW,
full-batch binary cross-entropy with logits, and a decision-boundary animation for each.

    python -m fnn_examples.activations_moons [--epochs 600] [--lr 0.02]

The activations are relu, sigmoid, abs, exp, x^2, sin, exp*cos (exp(x) cos(x)), tan, 1/x, sign,
sort (the hidden vector sorted along the feature axis: a differentiable permutation of its own
entries) and permute (no elementwise nonlinearity at all: the second layer's output is reordered
by the sort order of the first hidden vector, with indices from `argsort`, which carry no gradient,
and a differentiable gather, `take_along_axis`). An activation "fits" when the final train
accuracy reaches 95%; a run whose loss or gradients stop being finite is stopped and reported as
diverged (its last finite parameters are the ones scored and drawn).

Writes `activations.md` (the table, also printed), `history.json`/`history.csv`/`history.png`
(train loss and accuracy per activation), one `boundary_<name>.gif` per activation, the grid
`boundaries.png` of the final boundaries, and `params.npz` (every activation's parameters).
"""

from __future__ import annotations

import math

import numpy as np

import fnn
from fnn import data, io, losses, metrics, nn, optim, training
from fnn import numpy as fnp
from fnn_examples import common

NAME = "activations_moons"
FIT_ACCURACY = 0.95
WEIGHT_DECAY = 1e-4
FRAMES = 20


def _exp_cos(x):
    return fnp.exp(x) * fnp.cos(x)


def _reciprocal(x):
    return 1.0 / x


# Elementwise activations, applied after both hidden Dense layers. "permute" is handled in
# `forward`, since it needs the first hidden vector while acting on the second layer.
ELEMENTWISE = {
    "relu": nn.functional.relu,
    "sigmoid": nn.functional.sigmoid,
    "abs": fnp.abs,
    "exp": fnp.exp,
    "x^2": fnp.square,
    "sin": fnp.sin,
    "exp*cos": _exp_cos,
    "tan": fnp.tan,
    "1/x": _reciprocal,
    "sign": fnp.sign,
    "sort": lambda x: fnp.sort(x, axis=-1),
}
ACTIVATIONS = [*ELEMENTWISE, "permute"]

LAYERS = {"dense_0": nn.Dense(10), "dense_1": nn.Dense(10), "dense_2": nn.Dense(1)}


def init(key, x):
    params = {}
    spec = x
    for k, (name, layer) in zip(fnn.random.split(key, len(LAYERS)), LAYERS.items()):
        params[name], _ = layer.init(k, spec)
        spec = np.zeros((x.shape[0], layer.features), np.float32)
    return params


def forward(params, x, activation: str):
    """Logits of shape (N,) for the 2-10-10-1 MLP with the named hidden activation."""

    def dense(name, h):
        return LAYERS[name].apply(params[name], {}, h)[0]

    if activation == "permute":
        h1 = dense("dense_0", x)
        order = fnp.argsort(h1, axis=-1)  # integer indices: no gradient flows through them
        h2 = fnp.take_along_axis(dense("dense_1", h1), order, axis=-1)
    else:
        act = ELEMENTWISE[activation]
        h2 = act(dense("dense_1", act(dense("dense_0", x))))
    return dense("dense_2", h2)[:, 0]


def _finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in fnn.tree.leaves(tree))


def _accuracy(logits, y) -> float:
    return metrics.accuracy((np.asarray(logits) > 0).astype(np.int64), y)


def train_one(activation, x, y, grid, *, epochs, lr, key, n_frames=FRAMES):
    """Full-batch AdamW; returns params, per-epoch rows, grid snapshots and where it diverged."""
    params = init(key, x)
    opt = optim.adamw(lr, weight_decay=WEIGHT_DECAY)
    opt_state = opt.init(params)
    target = y.astype(np.float32)

    def objective(params):
        return losses.binary_cross_entropy_with_logits(forward(params, x, activation), target)

    grad_fn = fnn.value_and_grad(objective)
    snap_every = max(1, epochs // n_frames)
    rows, frames, diverged_at = [], [], None

    def snapshot(epoch):
        frames.append((epoch, _sigmoid(np.asarray(forward(params, grid, activation), np.float64))))

    snapshot(0)
    for epoch in range(1, epochs + 1):
        loss, grads = grad_fn(params)
        if not (math.isfinite(float(loss)) and _finite(grads)):
            diverged_at = epoch
            break
        updates, opt_state = opt.update(grads, opt_state, params)
        new_params = optim.apply_updates(params, updates)
        if not _finite(new_params):
            diverged_at = epoch
            break
        params = new_params
        rows.append({"epoch": epoch, "loss": float(loss)})
        if epoch % snap_every == 0 or epoch == epochs:
            rows[-1]["accuracy"] = _accuracy(forward(params, x, activation), y)
            snapshot(epoch)
    if diverged_at is not None:
        snapshot(diverged_at - 1)
    return params, rows, frames, diverged_at


def _sigmoid(z):
    with np.errstate(all="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _plt():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _draw(ax, gx, gy, p, x, y, title):
    ax.clear()
    p = np.nan_to_num(p.reshape(gx.shape), nan=0.5)
    ax.imshow(p, origin="lower", extent=(gx[0, 0], gx[0, -1], gy[0, 0], gy[-1, 0]), aspect="auto",
              cmap="RdBu", vmin=0.0, vmax=1.0, alpha=0.7, interpolation="bilinear")
    if p.min() < 0.5 < p.max():
        ax.contour(gx, gy, p, levels=[0.5], colors="k", linewidths=1)
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu", edgecolors="k", s=6, linewidths=0.3)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def write_gif(path, frames, gx, gy, x, y, activation):
    plt = _plt()
    from matplotlib import animation  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(2.6, 2.2))

    def update(i):
        epoch, p = frames[i]
        _draw(ax, gx, gy, p, x, y, f"{activation}, epoch {epoch}")
        return []

    anim = animation.FuncAnimation(fig, update, frames=len(frames), blit=False)
    anim.save(path, writer=animation.PillowWriter(fps=4), dpi=72)
    plt.close(fig)


def write_grid(path, results, gx, gy, x, y):
    plt = _plt()
    cols = 4
    rows = math.ceil(len(results) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.2 * rows))
    for ax in axes.ravel()[len(results):]:
        ax.axis("off")
    for ax, (activation, r) in zip(axes.ravel(), results.items()):
        _draw(ax, gx, gy, r["frames"][-1][1], x, y, f"{activation}: {r['train_accuracy']:.3f}, {r['verdict']}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_histories(path, results):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for activation, r in results.items():
        rows = r["rows"]
        if rows:
            axes[0].plot([q["epoch"] for q in rows], [q["loss"] for q in rows], label=activation)
            acc = [q for q in rows if "accuracy" in q]
            axes[1].plot([q["epoch"] for q in acc], [q["accuracy"] for q in acc], marker="o", markersize=2,
                         label=activation)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("train loss (BCE)")
    axes[1].set_ylabel("train accuracy")
    axes[1].axhline(FIT_ACCURACY, color="k", linestyle=":", linewidth=1)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle("2-10-10-1 MLP on two moons, by hidden activation")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(results, epochs) -> str:
    lines = [f"| activation | train accuracy | final loss | verdict (fits = train accuracy >= {FIT_ACCURACY:.0%}) |",
             "|---|---|---|---|"]
    for activation, r in results.items():
        loss = f"{r['final_loss']:.4f}" if r["final_loss"] is not None else "n/a"
        lines.append(f"| {activation} | {r['train_accuracy']:.3f} | {loss} | {r['verdict']} |")
    fits = [a for a, r in results.items() if r["verdict"] == "fits"]
    lines += ["", f"{len(fits)} of {len(results)} fit in {epochs} full-batch AdamW epochs: {', '.join(fits) or 'none'}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = common.parser(__doc__.splitlines()[0], epochs=600, batch_size=0, lr=0.02).parse_args(argv)
    out = common.out_dir(args, NAME)
    n_points, grid_size, n_frames = 500, 70, FRAMES
    if args.quick:
        args.epochs = min(args.epochs, 40)
        n_points, grid_size, n_frames = 200, 30, 4
    key = fnn.random.key(args.seed)
    k_data, k_init = fnn.random.split(key)
    x, y = data.two_moons(k_data, n_points, noise=0.1)
    lo, hi = x.min(0) - 0.5, x.max(0) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], grid_size), np.linspace(lo[1], hi[1], grid_size))
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)

    results, by_epoch, all_params = {}, {}, {}
    with np.errstate(all="ignore"):
        for activation in ACTIVATIONS:
            (params, rows, frames, diverged_at), seconds = common.timed(
                train_one, activation, x, y, grid, epochs=args.epochs, lr=args.lr, key=k_init,
                n_frames=n_frames)
            accuracy = _accuracy(forward(params, x, activation), y)
            final_loss = rows[-1]["loss"] if rows else None
            if diverged_at is not None:
                verdict = f"diverged at epoch {diverged_at}"
            else:
                verdict = "fits" if accuracy >= FIT_ACCURACY else "does not fit"
            results[activation] = {"rows": rows, "frames": frames, "train_accuracy": accuracy,
                                   "final_loss": final_loss, "verdict": verdict, "seconds": seconds}
            all_params[activation] = params
            for row in rows:
                if "accuracy" in row:
                    by_epoch.setdefault(row["epoch"], {}).update({f"{activation}_train_loss": row["loss"],
                                                                  f"{activation}_train_accuracy": row["accuracy"]})
            print(f"{activation:8s} train accuracy {accuracy:.3f}  {verdict}  ({seconds:.1f} s)", flush=True)
            write_gif(out / f"boundary_{_file_name(activation)}.gif", frames, gx, gy, x, y, activation)

    history = training.History()  # one row per snapshot epoch, two columns per activation
    for epoch in sorted(by_epoch):
        history.record(epoch, **by_epoch[epoch])
    history.to_json(out / "history.json")
    history.to_csv(out / "history.csv")
    plot_histories(out / "history.png", results)
    write_grid(out / "boundaries.png", results, gx, gy, x, y)
    io.save(out / "params.npz", {_file_name(a): p for a, p in all_params.items()})
    text = table(results, args.epochs)
    training.write_text_atomic(out / "activations.md", text)
    print(text)
    summary = {f"{a}_train_accuracy": r["train_accuracy"] for a, r in results.items()}
    summary.update({"fits": [a for a, r in results.items() if r["verdict"] == "fits"],
                    "diverged": [a for a, r in results.items() if r["verdict"].startswith("diverged")],
                    "epochs": args.epochs})
    common.write_summary(out, NAME, summary)
    return {**summary, "results": {a: {k: v for k, v in r.items() if k not in ("rows", "frames")}
                                   for a, r in results.items()}}


def _file_name(activation: str) -> str:
    return {"x^2": "square", "exp*cos": "exp_cos", "1/x": "reciprocal"}.get(activation, activation)


if __name__ == "__main__":
    main()
