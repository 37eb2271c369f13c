"""`python -m fnn_examples.reproduce --table-only`: RESULTS.md rebuilt from result.json files."""

from __future__ import annotations

import json

from fnn_examples import reproduce


def test_table_only_reads_the_result_files(tmp_path):
    runs = tmp_path / "runs"
    (runs / "mnist_zoo").mkdir(parents=True)
    result = {"lenet_test_accuracy": 0.9927, "vgg_test_accuracy": 0.9959, "resnet18_test_accuracy": 0.995,
              "vit_test_accuracy": 0.98, "epochs": 10, "seconds_per_epoch": 12.5}
    (runs / "mnist_zoo" / "result.json").write_text(json.dumps(result))
    out = tmp_path / "RESULTS.md"
    reproduce.main(["--table-only", "--out", str(runs), "--results", str(out),
                    "--only", "mnist_zoo", "fashion_zoo", "--note", "Models trained one at a time."])
    text = out.read_text()
    assert "Models trained one at a time." in text
    zoo = next(line for line in text.splitlines() if line.startswith("| `mnist_zoo`"))
    assert "99.27% / 99.59% / 99.50% / 98.00%" in zoo and "| 10 | 12.5 |" in zoo
    fashion = next(line for line in text.splitlines() if line.startswith("| `fashion_zoo`"))
    assert "— / — / — / —" in fashion  # not run: no figures invented
    assert "linear_regression" not in text  # --only
