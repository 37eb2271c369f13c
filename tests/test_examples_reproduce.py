"""`python -m fnn_examples.reproduce --table-only`: RESULTS.md rebuilt from result.json files."""

from __future__ import annotations

import json

from fnn_examples import reproduce


def test_table_only_reads_the_result_files(tmp_path):
    runs = tmp_path / "runs"
    (runs / "mnist_zoo").mkdir(parents=True)
    result = {"models": ["lenet", "vgg", "resnet18", "vit"], "lenet_test_accuracy": 0.9927,
              "vgg_test_accuracy": 0.9959, "resnet18_test_accuracy": 0.995, "vit_test_accuracy": 0.98}
    for m, epochs, seconds in (("lenet", 10, 9.4), ("vgg", 10, 97.7), ("resnet18", 10, 425.7), ("vit", 20, 262.6)):
        result.update({f"{m}_epochs": epochs, f"{m}_seconds_per_epoch": seconds})
    (runs / "mnist_zoo" / "result.json").write_text(json.dumps(result))
    (runs / "mnist_zoo" / "zoo.md").write_text("# MNIST: the model zoo\n\n| model | parameters |\n| lenet | 61,706 |\n")
    out = tmp_path / "RESULTS.md"
    reproduce.main(["--table-only", "--out", str(runs), "--results", str(out),
                    "--only", "mnist_zoo", "fashion_zoo", "--note", "Models trained one at a time."])
    text = out.read_text()
    assert "Models trained one at a time." in text
    zoo = next(line for line in text.splitlines() if line.startswith("| `mnist_zoo`"))
    assert "99.27% / 99.59% / 99.50% / 98.00%" in zoo
    assert "| 10 / 10 / 10 / 20 | 9.4 / 97.7 / 425.7 / 262.6 |" in zoo  # per model, in order
    fashion = next(line for line in text.splitlines() if line.startswith("| `fashion_zoo`"))
    assert "— / — / — / —" in fashion  # not run: no figures invented
    assert "linear_regression" not in text  # --only
    assert "\n## MNIST: the model zoo\n" in text and "| lenet | 61,706 |" in text  # the per-model table


def test_a_zoo_with_a_model_still_training_shows_dashes_in_its_place(tmp_path):
    runs = tmp_path / "runs"
    (runs / "fashion_zoo").mkdir(parents=True)
    result = {"models": ["lenet", "vgg", "vit"]}  # ResNet-18 not finished yet
    for m, acc, epochs, seconds in (("lenet", 0.9051, 20, 10.0), ("vgg", 0.9305, 20, 90.3),
                                    ("vit", 0.8955, 20, 276.1)):
        result.update({f"{m}_test_accuracy": acc, f"{m}_epochs": epochs, f"{m}_seconds_per_epoch": seconds})
    (runs / "fashion_zoo" / "result.json").write_text(json.dumps(result))
    out = tmp_path / "RESULTS.md"
    reproduce.main(["--table-only", "--out", str(runs), "--results", str(out), "--only", "fashion_zoo"])
    row = next(line for line in out.read_text().splitlines() if line.startswith("| `fashion_zoo`"))
    assert "90.51% / 93.05% / — / 89.55%" in row
    assert "| 20 / 20 / — / 20 | 10.0 / 90.3 / — / 276.1 |" in row  # every column in the same order


def test_classic_cnns_share_their_epochs_and_show_seconds_per_model(tmp_path):
    runs = tmp_path / "runs"
    (runs / "classic_cnns").mkdir(parents=True)
    result = {"epochs": 5, "alexnet_test_accuracy": 0.8978, "nin_test_accuracy": 0.7818,
              "googlenet_test_accuracy": 0.9223, "densenet_test_accuracy": 0.9133,
              "alexnet_seconds_per_epoch": 88.4, "nin_seconds_per_epoch": 125.9,
              "googlenet_seconds_per_epoch": 321.7, "densenet_seconds_per_epoch": 124.7}
    (runs / "classic_cnns" / "result.json").write_text(json.dumps(result))
    out = tmp_path / "RESULTS.md"
    reproduce.main(["--table-only", "--out", str(runs), "--results", str(out), "--only", "classic_cnns"])
    row = next(line for line in out.read_text().splitlines() if line.startswith("| `classic_cnns`"))
    assert "89.78% / 78.18% / 92.23% / 91.33%" in row
    assert row.endswith("| 5 | 88.4 / 125.9 / 321.7 / 124.7 |")


def test_details_files_become_sections_with_their_headings_one_level_down(tmp_path):
    runs = tmp_path / "runs"
    (runs / "bert_mlm").mkdir(parents=True)
    (runs / "tiny_gpt").mkdir(parents=True)
    (runs / "bert_mlm" / "result.json").write_text(json.dumps({"test_masked_accuracy": 0.17}))
    (runs / "bert_mlm" / "fill_ins.md").write_text("| masked | answer |\n|---|---|\n| [MASK] king | enter |\n")
    (runs / "tiny_gpt" / "result.json").write_text(json.dumps({"test_perplexity": 71.5}))
    (runs / "tiny_gpt" / "samples.md").write_text("# tiny_gpt samples\n\n## Prompt: 'Enter'\n\n```\n# not a heading\n```\n")
    out = tmp_path / "RESULTS.md"
    reproduce.main(["--table-only", "--out", str(runs), "--results", str(out), "--only", "bert_mlm", "tiny_gpt"])
    text = out.read_text()
    assert "\n## bert_mlm: masked test sentences filled in\n\n| masked | answer |\n" in text
    assert "\n## tiny_gpt samples\n\n### Prompt: 'Enter'\n" in text
    assert "\n# not a heading\n" in text  # code blocks are left as they are
