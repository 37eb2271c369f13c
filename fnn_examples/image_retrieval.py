"""Image retrieval with a CNN's penultimate-layer embeddings: nearest neighbours, precision@5, unknown-class rejection.

    python -m fnn_examples.image_retrieval [--model lenet5|resnet18] [--dataset fashion_mnist|mnist]
                                           [--held-out-class 9] [--checkpoint best.npz] [--epochs 5]

A small CNN (LeNet-5 by default, or a narrow ResNet-18, `--width`) is trained on the training set
without the images of `--held-out-class` (Adam, warmup-cosine schedule, softmax cross-entropy,
top-1 / top-5 error each epoch, best checkpoint kept), or loaded from `--checkpoint` (a `best.npz`
written by this or another experiment with the same model: `{"params", "state"}`). Its
penultimate layer (every layer but the last, `penultimate`) embeds the images:

- retrieval: the database is the known-class training images, the queries the test images; the 5
  nearest neighbours of each query by L1, L2 and cosine distance, and precision@5 (the share of
  the 5 with the query's class) over the known-class test queries, per metric;
- `neighbours.png`: one query per class (held-out class included) and its 5 neighbours per metric,
  framed green (same class) or red;
- unknown-class rejection: a query's distance to its nearest database image is its "unknown"
  score; AUROC of that score at telling held-out-class test images from known-class ones, per
  metric (`--held-out-class -1` trains on every class and skips this);
- `embedding_map.png`: a 2-D map of test embeddings (t-SNE when scikit-learn is installed, else
  PCA; `--map` chooses), colored by class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import fnn
from fnn import data, losses, metrics, models, nn, optim
from fnn_examples import common

NAME = "image_retrieval"
METRICS = ("l1", "l2", "cosine")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGITS = tuple(str(i) for i in range(10))


# --------------------------------------------------------------------------------------------
# Embeddings


def penultimate(model: nn.Sequential) -> nn.Sequential:
    """`model` without its last layer: its `apply(params, state, x)` takes the full model's params
    and state (the children keep their names) and returns the penultimate layer's output."""
    if not isinstance(model, nn.Sequential) or len(model.layers) < 2:
        raise TypeError("penultimate: needs an nn.Sequential of at least two layers")
    return nn.Sequential(model.layers[:-1], name=model.name)


def embed(model: nn.Sequential, params, state, x, batch_size: int = 1000) -> np.ndarray:
    """Penultimate-layer embeddings (N, D) of `x`, in evaluation mode, as float32 NumPy rows."""
    body = penultimate(model)
    out = []
    for xb in data.batches(None, x, batch_size, shuffle=False):
        e, _ = body.apply(params, state, xb, train=False)
        out.append(np.asarray(e, dtype=np.float32).reshape(len(xb), -1))
    return np.concatenate(out)


# --------------------------------------------------------------------------------------------
# Distances, neighbours, precision@k


def pairwise_distances(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """(len(a), len(b)) distances between the rows of `a` and `b`: 'l1' (sum of absolute
    differences), 'l2' (Euclidean) or 'cosine' (1 - cosine similarity; a zero row is at distance 1
    from everything)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if metric == "l1":
        return np.abs(a[:, None, :] - b[None, :, :]).sum(axis=-1)
    if metric == "l2":
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * (a @ b.T)
        return np.sqrt(np.maximum(sq, 0))
    if metric == "cosine":
        na = np.linalg.norm(a, axis=1, keepdims=True)
        nb = np.linalg.norm(b, axis=1, keepdims=True)
        a_n = np.divide(a, na, out=np.zeros_like(a), where=na > 0)
        b_n = np.divide(b, nb, out=np.zeros_like(b), where=nb > 0)
        return 1 - a_n @ b_n.T
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def nearest_neighbours(queries: np.ndarray, database: np.ndarray, k: int, metric: str,
                       max_block_elements: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """Indices (Q, k) into `database` of each query's k nearest rows, nearest first (ties to the
    lower index), and their distances (Q, k). Queries go in blocks so that no temporary holds
    more than about `max_block_elements` numbers."""
    n, d = len(database), database.shape[1]
    per_query = n * (d if metric == "l1" else 1)
    block = max(1, max_block_elements // max(1, per_query))
    k = min(k, n)
    idx = np.empty((len(queries), k), dtype=np.int64)
    dist = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), block):
        dm = pairwise_distances(queries[start:start + block], database, metric)
        part = np.argpartition(dm, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(dm), 1))
        pd = np.take_along_axis(dm, part, axis=1)
        order = np.lexsort((part, pd), axis=1)  # by distance, then by index
        idx[start:start + len(dm)] = np.take_along_axis(part, order, axis=1)
        dist[start:start + len(dm)] = np.take_along_axis(pd, order, axis=1)
    return idx, dist


def precision_at_k(neighbour_labels: np.ndarray, query_labels: np.ndarray, k: int | None = None) -> float:
    """Mean over queries of the share of the first k neighbours whose label is the query's."""
    neighbour_labels = np.asarray(neighbour_labels)
    k = neighbour_labels.shape[1] if k is None else k
    return float(np.mean(neighbour_labels[:, :k] == np.asarray(query_labels)[:, None]))


# --------------------------------------------------------------------------------------------
# Pictures


def _pyplot():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_neighbours(x_query, y_query, x_db, y_db, neighbours: dict, classes, path: Path, title: str) -> None:
    """Rows: queries; columns: the query, then its neighbours under each metric, framed green
    (same class) or red (another class)."""
    plt = _pyplot()
    metrics_ = list(neighbours)
    k = neighbours[metrics_[0]].shape[1]
    rows, cols = len(x_query), 1 + k * len(metrics_)
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols, 0.95 * rows + 0.6), squeeze=False)
    for r in range(rows):
        panels = [(x_query[r], None, classes[y_query[r]])]
        for m in metrics_:
            panels += [(x_db[j], y_db[j] == y_query[r], None) for j in neighbours[m][r]]
        for c, (img, same, label) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(np.asarray(img).reshape(np.asarray(img).shape[-2:]), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            color = "black" if same is None else ("tab:green" if same else "tab:red")
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(2.5 if same is not None else 1)
            if c == 0:
                ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
            if r == 0 and c > 0 and (c - 1) % k == 0:
                ax.set_title(f"{metrics_[(c - 1) // k]} neighbours", fontsize=8, loc="left")
    axes[0, 0].set_title("query", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def map_2d(emb: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, str]:
    """Points (N, 2) from embeddings, by t-SNE ('tsne', scikit-learn) or PCA ('pca'); 'auto' is
    t-SNE when scikit-learn is installed, else PCA. Also the method used."""
    if method in ("auto", "tsne"):
        try:
            from sklearn.manifold import TSNE  # noqa: PLC0415
        except ImportError:
            if method == "tsne":
                raise
        else:
            perplexity = float(min(30.0, max(2.0, (len(emb) - 1) / 3)))
            pts = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(emb)
            return np.asarray(pts), "t-SNE"
    centered = emb - emb.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return centered @ vt[:2].T, "PCA"


def plot_map(points, labels, classes, held_out, path: Path, title: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    cmap = plt.get_cmap("tab10")
    for c in range(len(classes)):
        sel = labels == c
        if not np.any(sel):
            continue
        unknown = c == held_out
        ax.scatter(points[sel, 0], points[sel, 1], s=14 if unknown else 5, color=cmap(c % 10),
                   marker="x" if unknown else "o", alpha=0.9 if unknown else 0.6,
                   label=classes[c] + (" (held out)" if unknown else ""))
    ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------------------------


def build(args, num_classes: int = 10) -> nn.Sequential:
    if args.model == "lenet5":
        return models.lenet5(num_classes, 1, width_multiplier=args.width)
    return models.resnet18(num_classes=num_classes, in_channels=1, small_input=True, width_multiplier=args.width)


def main(argv=None) -> dict:
    p = common.parser(__doc__.splitlines()[0], epochs=5, batch_size=64, lr=2e-3, devices=("cpu", "gpu"))
    p.add_argument("--model", choices=("lenet5", "resnet18"), default="lenet5")
    p.add_argument("--width", type=float, default=None,
                   help="width multiplier (default 1 for lenet5, 0.125 for resnet18)")
    p.add_argument("--dataset", choices=("fashion_mnist", "mnist"), default="fashion_mnist")
    p.add_argument("--held-out-class", type=int, default=9,
                   help="a class left out of training, to be rejected as unknown (-1: none)")
    p.add_argument("--checkpoint", default=None,
                   help="a best.npz ({'params', 'state'}) of the same model, instead of training")
    p.add_argument("--k", type=int, default=5, help="neighbours per query")
    p.add_argument("--queries", type=int, default=None, help="use only the first N test images")
    p.add_argument("--map", choices=("auto", "tsne", "pca"), default="auto")
    p.add_argument("--map-points", type=int, default=2000, help="test images on the 2-D map")
    args = p.parse_args(argv)
    if args.width is None:
        args.width = 1.0 if args.model == "lenet5" else 0.125
    if args.quick:
        args.width = min(args.width, 0.5 if args.model == "lenet5" else 0.0625)
        args.map_points = min(args.map_points, 200)
    out = common.out_dir(args, NAME)
    loader = data.fashion_mnist if args.dataset == "fashion_mnist" else data.mnist
    classes = FASHION_CLASSES if args.dataset == "fashion_mnist" else DIGITS
    (x_train, y_train), (x_test, y_test) = common.load_image_data(loader, args, quick_sizes=(1000, 200))
    if args.queries:
        x_test, y_test = x_test[:args.queries], y_test[:args.queries]
    held = args.held_out_class if args.held_out_class >= 0 else None
    if held is not None and not 0 <= held < len(classes):
        p.error(f"--held-out-class must be -1 or a class id 0..{len(classes) - 1}")
    known_train = np.ones(len(y_train), bool) if held is None else y_train != held
    known_test = np.ones(len(y_test), bool) if held is None else y_test != held
    x_db, y_db = x_train[known_train], y_train[known_train]

    model = build(args)
    setting = (f"{args.model} (width x{args.width:g}) on {args.dataset}, "
               + (f"class {held} ({classes[held]}) held out of training" if held is not None
                  else "all classes"))
    print(f"{NAME}: {setting}", flush=True)
    summary: dict = {"model": args.model, "width": args.width, "dataset": args.dataset,
                     "held_out_class": -1 if held is None else held}
    if args.checkpoint:
        params, state = model.init(fnn.random.key(args.seed), x_train[:2])
        ckpt = fnn.io.load(args.checkpoint, like={"params": params, "state": state})
        params, state = ckpt["params"], ckpt["state"]
        summary["checkpoint"] = str(args.checkpoint)
    else:
        opt = optim.adam(common.warmup_cosine(args, len(x_db)))

        def loss_fn(logits, labels, params):
            return losses.softmax_cross_entropy(logits, labels)

        result = common.train_classifier(model, loss_fn, opt, (x_db, y_db),
                                         (x_test[known_test], y_test[known_test]),
                                         epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                                         out=out, progress=not args.no_progress, name=NAME,
                                         resume=args.resume, device=args.device)
        best = fnn.io.load(out / "best.npz", like={"params": result["params"], "state": result["state"]})
        params, state = best["params"], best["state"]
        summary.update(test_accuracy_known=result["best_test_accuracy"], best_epoch=result["best_epoch"],
                       epochs=args.epochs, seconds_per_epoch=result["seconds_per_epoch"])

    emb_db = embed(model, params, state, x_db)
    emb_test = embed(model, params, state, x_test)
    summary["embedding_dim"] = int(emb_db.shape[1])
    neighbours, nearest = {}, {}
    for m in METRICS:
        (idx, dist), seconds = common.timed(nearest_neighbours, emb_test, emb_db, args.k, m)
        neighbours[m], nearest[m] = idx, dist[:, 0]
        summary[f"precision_at_{args.k}_{m}"] = precision_at_k(y_db[idx[known_test]], y_test[known_test])
        if held is not None:
            summary[f"auroc_{m}"] = metrics.roc_auc(dist[:, 0], ~known_test)
        print(f"{m}: precision@{args.k} {summary[f'precision_at_{args.k}_{m}']:.4f}"
              + (f", unknown-class AUROC {summary[f'auroc_{m}']:.4f}" if held is not None else "")
              + f" ({seconds:.1f} s)", flush=True)

    # one query per class present in the test set (the first of each), held-out class included
    rows = [int(np.flatnonzero(y_test == c)[0]) for c in range(len(classes)) if np.any(y_test == c)]
    plot_neighbours(x_test[rows], y_test[rows], x_db, y_db, {m: neighbours[m][rows] for m in METRICS},
                    classes, out / "neighbours.png",
                    f"Top-{args.k} neighbours among {len(x_db)} training images ({setting})")
    n_map = min(args.map_points, len(x_test))
    points, method = map_2d(emb_test[:n_map], args.map, args.seed)
    plot_map(points, y_test[:n_map], classes, held, out / "embedding_map.png",
             f"{method} of {n_map} test embeddings ({summary['embedding_dim']}-d)\n{setting}")
    summary.update(map_method=method, database_size=int(len(x_db)), queries=int(known_test.sum()),
                   unknown_queries=int((~known_test).sum()))
    common.write_summary(out, NAME, summary)
    return summary


if __name__ == "__main__":
    main()
