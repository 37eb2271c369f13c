"""Sequence to sequence with recurrent layers: read a window of sin(t), predict cos(t) at every
step. An Elman RNN and an LSTM (hidden size 32), each followed by a per-step linear readout,
trained with Adam on the mean squared error, gradient clipping and a warmup-cosine schedule.

    python -m fnn_examples.rnn_sin_cos [--epochs 40] [--batch-size 32] [--lr 0.01]

The data are `fnn.data.sin_cos_sequences` windows of 40 steps, dt = 0.1, random phase. At the
first step sin(t) alone does not say whether cos(t) is +sqrt(1 - sin^2) or -sqrt(1 - sin^2); from
the second step on cos(t) is a linear function of the last two inputs (an ill-conditioned one:
it divides by sin(dt)). So the first `WASHOUT` = 2 steps are a warm-up in which the state locks on:
the loss and the reported `test_mse` cover the steps after it, and `test_mse_all_steps` (which
includes the untrained warm-up) is reported beside it.

Writes `history.json`/`history.csv`, `history.png` (train loss and test MSE per epoch, log scale),
`predictions.png` (prediction against truth on test sequences), `<model>_best.npz` (the
checkpoint with the lowest test MSE) and `params.npz` (both models' final parameters).
"""

from __future__ import annotations

import numpy as np

import fnn
from fnn import data, io, losses, nn, optim, training
from fnn_examples import common

NAME = "rnn_sin_cos"
LENGTH = 40
DT = 0.1
HIDDEN = 32
WASHOUT = 2
N_TRAIN, N_TEST = 1024, 256
CLIP = 1.0


def models(hidden: int) -> dict[str, nn.Sequential]:
    """Recurrent layer then `Dense(1)`, which maps (N, T, hidden) to (N, T, 1) step by step."""
    return {"rnn": nn.Sequential([nn.RNN(hidden), nn.Dense(1)]),
            "lstm": nn.Sequential([nn.LSTM(hidden), nn.Dense(1)])}


def sequence_mse(pred, target, washout: int = WASHOUT):
    return losses.mse(pred[:, washout:], target[:, washout:])


def train_model(name, net, train_set, test_set, *, epochs, batch_size, lr, key, out, progress):
    x_train, y_train = train_set
    x_test, y_test = test_set
    k_init, k_data = fnn.random.split(key)
    params, state = net.init(k_init, x_train[:batch_size])
    steps = epochs * data.num_batches(len(x_train), batch_size, drop_last=True)
    schedule = optim.warmup_cosine_decay_schedule(0.0, lr, max(1, steps // 20), max(2, steps), end_value=lr * 1e-2)
    opt = optim.chain(optim.clip_by_global_norm(CLIP), optim.adam(schedule))
    opt_state = opt.init(params)

    def objective(params, x, y):
        pred, _ = net.apply(params, state, x)
        return sequence_mse(pred, y)

    grad_fn = fnn.value_and_grad(objective)

    def step(carry, batch):
        params, opt_state = carry
        loss, grads = grad_fn(params, *batch)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optim.apply_updates(params, updates), opt_state), {"loss": float(loss)}

    def test_scores(params):
        pred, _ = net.apply(params, state, x_test)
        return {"test_mse": float(sequence_mse(pred, y_test)),
                "test_mse_all_steps": float(losses.mse(pred, y_test))}

    history = training.History()
    keep_best = training.CheckpointOnImprovement(out / f"{name}_best.npz", monitor="test_mse")
    carry = (params, opt_state)
    n_batches = data.num_batches(len(x_train), batch_size, drop_last=True)
    for epoch in range(1, epochs + 1):
        batches = data.batches(fnn.random.fold_in(k_data, epoch), (x_train, y_train), batch_size, drop_last=True)
        carry, train_metrics = training.run_epoch(step, carry, batches, total=n_batches,
                                                  desc=f"{name} epoch {epoch}", progress=progress)
        row = history.record(epoch, train_loss=train_metrics["loss"], **test_scores(carry[0]),
                             seconds=train_metrics["seconds"])
        keep_best(epoch, row, {"params": carry[0], "state": state})
        print(f"{name:4s} epoch {epoch:3d}  train MSE {row['train_loss']:.2e}  test MSE {row['test_mse']:.2e}  "
              f"({row['seconds']:.1f} s)", flush=True)
    return carry[0], state, history


def _plt():
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_curves(histories, path):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, history in histories.items():
        epochs = history.column("epoch")
        axes[0].plot(epochs, history.column("train_loss"), marker="o", markersize=3, label=f"{name} train")
        axes[1].plot(epochs, history.column("test_mse"), marker="o", markersize=3, label=f"{name} test")
    for ax, title in zip(axes, ("train MSE (after warm-up)", "test MSE (after warm-up)")):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.axhline(1e-3, color="k", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.suptitle("sin -> cos, RNN and LSTM")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_predictions(predictions, x, y, path, n_show=3):
    plt = _plt()
    steps = np.arange(x.shape[1])
    fig, axes = plt.subplots(1, n_show, figsize=(4 * n_show, 3.2), sharey=True)
    for i, ax in enumerate(np.atleast_1d(axes)):
        ax.axvspan(-0.5, WASHOUT - 0.5, color="0.9", label="warm-up")
        ax.plot(steps, x[i, :, 0], color="0.5", linestyle="--", label="input sin")
        ax.plot(steps, y[i, :, 0], color="k", linewidth=2, label="target cos")
        for name, pred in predictions.items():
            ax.plot(steps, pred[i, :, 0], linewidth=1.2, label=name)
        ax.set_xlabel("step")
        ax.set_title(f"test sequence {i}")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    args = common.parser(__doc__.splitlines()[0], epochs=40, batch_size=32, lr=0.01).parse_args(argv)
    out = common.out_dir(args, NAME)
    n_train, n_test, length, hidden = N_TRAIN, N_TEST, LENGTH, HIDDEN
    if args.quick:
        args.epochs = min(args.epochs, 8)
        n_train, n_test, length, hidden = 256, 64, 20, 16
    key = fnn.random.key(args.seed)
    k_train, k_test, k_models = fnn.random.split(key, 3)
    train_set = data.sin_cos_sequences(k_train, n_train, length, dt=DT)
    test_set = data.sin_cos_sequences(k_test, n_test, length, dt=DT)

    histories, finals, predictions, summary = {}, {}, {}, {}
    for (name, net), k in zip(models(hidden).items(), fnn.random.split(k_models, 2)):
        (params, state, history), seconds = common.timed(
            train_model, name, net, train_set, test_set, epochs=args.epochs, batch_size=args.batch_size,
            lr=args.lr, key=k, out=out, progress=not args.no_progress)
        histories[name], finals[name] = history, params
        predictions[name] = np.asarray(net.apply(params, state, test_set[0])[0])
        last = history.rows[-1]
        summary.update({f"{name}_test_mse": last["test_mse"],
                        f"{name}_first_epoch_test_mse": history.rows[0]["test_mse"],
                        f"{name}_best_test_mse": history.best("test_mse")["test_mse"],
                        f"{name}_test_mse_all_steps": last["test_mse_all_steps"],
                        f"{name}_seconds": seconds})

    combined = training.History()
    for epoch in range(1, args.epochs + 1):
        combined.record(epoch, **{f"{name}_{k}": v for name, h in histories.items()
                                  for k, v in h.rows[epoch - 1].items() if k != "epoch"})
    combined.to_json(out / "history.json")
    combined.to_csv(out / "history.csv")
    plot_curves(histories, out / "history.png")
    plot_predictions(predictions, *test_set, out / "predictions.png")
    io.save(out / "params.npz", finals)
    summary.update({"epochs": args.epochs, "sequence_length": length, "hidden": hidden, "washout": WASHOUT,
                    "n_train": n_train})
    common.write_summary(out, NAME, summary)
    print("test MSE after warm-up: " + ", ".join(f"{name} {summary[f'{name}_test_mse']:.2e}" for name in histories))
    return summary


if __name__ == "__main__":
    main()
