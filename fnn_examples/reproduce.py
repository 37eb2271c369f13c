"""Run every experiment at full size and write RESULTS.md at the repository root.

    python -m fnn_examples.reproduce [--only NAME ...] [--data-dir DIR] [--out runs] [--results RESULTS.md]

Each experiment writes its outputs under `--out/NAME`; the table gives, per experiment, the figure a
reference reported (where there is one), ours, the epochs and the seconds per epoch, with the machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

from fnn import training
from fnn_examples import common

# (module, what is measured, the result key (or a function of the result giving the text), the
# reference figure and where it comes from, the target)
EXPERIMENTS = [
    ("linear_regression", "largest weight error", lambda r: f"{r['max_weight_error']:.1e}", "", "< 1e-2"),
    ("moons_mlp", "test accuracy", "test_accuracy", "", ""),
    ("mnist_mlp", "test accuracy", "test_accuracy", "95.68% after 400 epochs (NumPy from scratch)", ">= 98.0% in <= 20 epochs"),
    ("mnist_lenet", "test accuracy", "test_accuracy", "99.17% after 10 epochs (PyTorch)", ">= 99.0% in <= 10 epochs"),
    ("mnist_convnets", "test accuracy: max pool / avg pool / BatchNorm / BatchNorm + Dropout",
     lambda r: " / ".join(f"{100 * r[f'{v}_test_accuracy']:.2f}%"
                          for v in ("maxpool", "avgpool", "batchnorm", "batchnorm_dropout")), "", ""),
    ("rnn_sin_cos", "test MSE after a 2-step warm-up (RNN / LSTM)",
     lambda r: f"{r['rnn_test_mse']:.2e} / {r['lstm_test_mse']:.2e}", "did not train (NumPy from scratch)", "< 1e-3"),
    ("activations_moons", "activations that fit (train accuracy >= 95%)",
     lambda r: f"{len(r['fits'])} of 12: {', '.join(r['fits'])}", "", ""),
    ("fashion_mnist", "test accuracy", "test_accuracy", "", ""),
    ("mnist_zoo", "test accuracy: LeNet / VGG / ResNet-18 / ViT", lambda r: _per_model(r, ZOO),
     "99.17% / 98.57% / 99.42% (10 epochs) / 97.14% (50 epochs), PyTorch", "beat each; ViT in <= 20 epochs"),
    ("fashion_zoo", "test accuracy: LeNet / VGG / ResNet-18 / ViT", lambda r: _per_model(r, ZOO),
     "", "best >= 93.5%"),
    ("classic_cnns", "test accuracy: AlexNet / NiN / GoogLeNet / DenseNet",
     lambda r: _per_model(r, CLASSIC), "", ""),
    ("image_retrieval", "precision@5 (L1 / L2 / cosine); unknown-class AUROC (L2)",
     lambda r: " / ".join(_format(r.get(f"precision_at_5_{m}", "—")) for m in ("l1", "l2", "cosine"))
     + f"; {_format(r.get('auroc_l2', '—'))}", "", ""),
    ("bert_mlm", "masked-token accuracy (most-frequent-token baseline)",
     lambda r: f"{_format(r.get('test_masked_accuracy', '—'))} ({_format(r.get('unigram_most_frequent_accuracy', '—'))})",
     "", "above the baseline"),
    ("tiny_gpt", "test perplexity (unigram perplexity)",
     lambda r: f"{_format(r.get('test_perplexity', '—'))} ({_format(r.get('unigram_perplexity', '—'))})",
     "", "below the unigram's"),
]
ZOO = ("lenet", "vgg", "resnet18", "vit")
CLASSIC = ("alexnet", "nin", "googlenet", "densenet")
# The experiments with one figure per model, and their models in the table's order (a model not
# yet trained shows a dash in every column).
PER_MODEL = {"mnist_zoo": ZOO, "fashion_zoo": ZOO, "classic_cnns": CLASSIC}

# Experiments whose details RESULTS.md also shows: the zoos' per-model tables (configurations,
# parameter counts), BERT's filled-in test sentences, the GPT's sampled text.
DETAILS = {"mnist_zoo": "zoo.md", "fashion_zoo": "zoo.md", "classic_cnns": "classic_cnns.md",
           "bert_mlm": "fill_ins.md", "tiny_gpt": "samples.md"}
DETAIL_TITLES = {"bert_mlm": "bert_mlm: masked test sentences filled in"}


def _as_section(name: str, markdown: str) -> str:
    """An experiment's details file as a section of RESULTS.md: every heading one level down
    (outside code blocks), under a heading of its own when the file has none."""
    lines, in_code = [], False
    for line in markdown.strip().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        lines.append("#" + line if line.startswith("#") and not in_code else line)
    if not lines or not lines[0].startswith("## "):
        lines = [f"## {DETAIL_TITLES.get(name, name)}", "", *lines]
    return "\n".join(lines)


def _per_model(result: dict, models: tuple) -> str:
    return " / ".join(_format(result.get(f"{m}_test_accuracy", "—")) for m in models)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{100 * value:.2f}%" if 0.0 <= value <= 1.0 else f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return " / ".join(_format(v) for v in value)
    return str(value)


def _format_seconds(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "—"


def results_table(rows: list[dict]) -> str:
    lines = ["| experiment | measured | ours | reference | target | epochs | s / epoch |",
             "|---|---|---|---|---|---:|---:|"]
    for r in rows:
        cells = [f"`{r['name']}`", r["what"], r["ours"], r["reference"] or "—", r["target"] or "—",
                 str(r["epochs"]), r["seconds_per_epoch"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", default=None, help="run only these experiments")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="runs")
    p.add_argument("--results", default="RESULTS.md")
    p.add_argument("--table-only", action="store_true",
                   help="rebuild the table from the result.json files of an earlier run")
    p.add_argument("--note", default="",
                   help="a paragraph under the table's header: how the runs were made (e.g. "
                        "models trained separately, two runs sharing the machine)")
    args = p.parse_args(argv)
    rows = []
    for name, what, key, reference, target in EXPERIMENTS:
        if args.only and name not in args.only:
            continue
        try:
            module = importlib.import_module(f"fnn_examples.{name}")
        except ImportError:
            print(f"skipping {name}: not available")
            continue
        result_file = Path(args.out) / name / "result.json"
        start = time.perf_counter()
        if args.table_only:
            result = {}
            seconds = json.loads(result_file.read_text()).get("seconds_total", 0.0) if result_file.exists() else 0.0
        else:
            print(f"\n=== {name} ===", flush=True)
            argv_ = ["--out", str(Path(args.out) / name), "--no-progress"]
            if args.data_dir and name not in ("linear_regression",):
                argv_ += ["--data-dir", args.data_dir]
            result = module.main(argv_) or {}
            seconds = time.perf_counter() - start
            if result_file.exists():
                saved = json.loads(result_file.read_text())
                saved["seconds_total"] = seconds
                training.write_text_atomic(result_file, json.dumps(saved, indent=1))
        if result_file.exists():
            result = {**json.loads(result_file.read_text()), **result}
        spe = result.get("seconds_per_epoch")
        if spe is None and isinstance(result.get("seconds"), float) and isinstance(result.get("epochs"), int):
            spe = result["seconds"] / max(result["epochs"], 1)  # experiments that record total time
        ours = key(result) if callable(key) else _format(result.get(key, "—"))
        epochs = result.get("epochs", "—")
        spe_text = f"{spe:.1f}" if isinstance(spe, float) else (f"({seconds:.0f} s in all)" if seconds else "—")
        models = PER_MODEL.get(name, ())
        if any(f"{m}_seconds_per_epoch" in result for m in models):
            # several models: one figure per model, in the table's order (epochs too, unless shared)
            if "epochs" not in result:
                epochs = " / ".join(str(result.get(f"{m}_epochs", "—")) for m in models)
            spe_text = " / ".join(_format_seconds(result.get(f"{m}_seconds_per_epoch")) for m in models)
        rows.append({"name": name, "what": what, "ours": ours,
                     "reference": reference, "target": target, "epochs": epochs,
                     "seconds_per_epoch": spe_text})
    details = []
    for row in rows:
        table_file = Path(args.out) / row["name"] / DETAILS.get(row["name"], "-")
        if table_file.is_file():
            details += ["", _as_section(row["name"], table_file.read_text(encoding="utf-8"))]
    text = "\n".join([
        "# Results", "",
        "Every experiment at full size, run by `python -m fnn_examples.reproduce` (outputs under `runs/`).",
        f"Machine: {common.machine()}.", *([args.note] if args.note else []), "",
        results_table(rows), *details, "",
    ])
    training.write_text_atomic(args.results, text)
    print("\n" + text)


if __name__ == "__main__":
    main()
