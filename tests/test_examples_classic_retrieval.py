"""The classic-CNN comparison and the image-retrieval experiments run in --quick mode and write what
they claim; the retrieval helpers (distances, neighbours, precision@k) agree with brute force."""

import json

import numpy as np
import pytest

from example_helpers import is_png, needs

pytest.importorskip("matplotlib")


# --------------------------------------------------------------------------------------------
# classic_cnns


def test_classic_cnns_quick(tmp_path):
    needs("fashion_mnist")
    from fnn_examples import classic_cnns

    result = classic_cnns.main(["--quick", "--no-progress", "--out", str(tmp_path)])
    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored["experiment"] == "classic_cnns" and stored["table"] == result["table"]
    table = (tmp_path / "classic_cnns.md").read_text()
    assert result["table"] in table
    assert is_png(tmp_path / "classic_cnns.png")
    for name in classic_cnns.MODELS:
        assert f"| {name} |" in table
        assert 0.0 <= result[f"{name}_test_accuracy"] <= 1.0
        assert 0.0 <= result[f"{name}_test_top5_error"] <= 1.0
        assert result[f"{name}_parameters"] > 1000
        assert result[f"{name}_seconds_per_step"] > 0 and result[f"{name}_seconds_per_epoch"] > 0
        assert result[f"{name}_estimated_minutes_per_epoch"] == pytest.approx(
            result[f"{name}_seconds_per_step"] * (60000 // 128) / 60)
        assert is_png(tmp_path / f"{name}_kernels.png")
        for file in ("best.npz", "history.json", "history.csv", "history.png"):
            assert (tmp_path / name / file).exists()
        history = json.loads((tmp_path / name / "history.json").read_text())
        row = history[-1]
        assert {"train_error", "test_error", "test_top5_error"} <= set(row)
    assert result["best_model"] in classic_cnns.MODELS


def test_classic_cnns_estimate_only_subset(tmp_path):
    needs("fashion_mnist")
    from fnn_examples import classic_cnns

    result = classic_cnns.main(["--quick", "--no-progress", "--estimate-only", "--models", "nin",
                                "--timing-steps", "1", "--out", str(tmp_path)])
    assert result["estimate_only"] and "nin_test_accuracy" not in result
    assert "alexnet_parameters" not in result and result["nin_estimated_minutes_per_epoch"] > 0
    assert "| nin |" in (tmp_path / "classic_cnns.md").read_text()
    assert is_png(tmp_path / "nin_kernels.png") and not (tmp_path / "nin").exists()


def test_first_conv_kernels_of_every_model():
    import argparse

    import fnn
    from fnn_examples import classic_cnns

    args = argparse.Namespace(**classic_cnns.QUICK, densenet_stem_pool=True, nin_final_relu=False)
    x = np.zeros((2, 1, 28, 28), np.float32)
    for name in classic_cnns.MODELS:
        model, _ = classic_cnns.build(name, args)
        params, state = model.init(fnn.random.key(0), x)
        w = classic_cnns.first_layer_kernels(model, params)
        assert w.ndim == 4 and w.shape[1:] == (1, 3, 3), name
        logits, _ = model.apply(params, state, x)
        assert logits.shape == (2, 10)


def test_densenet_stem_pool_halves_the_blocks_resolution():
    import argparse

    import fnn
    from fnn_examples import classic_cnns

    x = np.zeros((2, 1, 28, 28), np.float32)
    outs = {}
    for pool in (True, False):
        args = argparse.Namespace(**classic_cnns.QUICK, densenet_stem_pool=pool)
        model, _ = classic_cnns.build("densenet", args)
        features = model.layers[0]
        params, state = model.init(fnn.random.key(0), x)
        y, _ = features.apply(params["features"], state["features"], x)
        outs[pool] = (y.shape, fnn.nn.count_params(params))
    assert outs[True][0][-1] == 3 and outs[False][0][-1] == 7
    assert outs[True][1] == outs[False][1]  # a pool has no parameters


# --------------------------------------------------------------------------------------------
# image_retrieval helpers


def _brute(a, b, metric):
    out = np.empty((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            u, v = a[i].astype(np.float64), b[j].astype(np.float64)
            if metric == "l1":
                out[i, j] = np.abs(u - v).sum()
            elif metric == "l2":
                out[i, j] = np.sqrt(((u - v) ** 2).sum())
            else:
                nu, nv = np.linalg.norm(u), np.linalg.norm(v)
                out[i, j] = 1.0 - (u @ v / (nu * nv) if nu > 0 and nv > 0 else 0.0)
    return out


@pytest.mark.parametrize("metric", ["l1", "l2", "cosine"])
def test_pairwise_distances_match_brute_force(metric):
    from fnn_examples.image_retrieval import pairwise_distances

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(11, 5)).astype(np.float32)
    b[3] = 0  # a zero row: cosine distance 1
    np.testing.assert_allclose(pairwise_distances(a, b, metric), _brute(a, b, metric), rtol=1e-4, atol=1e-4)


def test_distances_by_hand():
    from fnn_examples.image_retrieval import pairwise_distances

    a = np.array([[0.0, 0.0], [1.0, 0.0]])
    b = np.array([[3.0, 4.0], [0.0, 2.0]])
    np.testing.assert_allclose(pairwise_distances(a, b, "l1"), [[7, 2], [6, 3]])
    np.testing.assert_allclose(pairwise_distances(a, b, "l2"), [[5, 2], [np.sqrt(20), np.sqrt(5)]], rtol=1e-6)
    np.testing.assert_allclose(pairwise_distances(a, b, "cosine"), [[1, 1], [1 - 0.6, 1]], atol=1e-6)
    with pytest.raises(ValueError, match="metric"):
        pairwise_distances(a, b, "chebyshev")


@pytest.mark.parametrize("metric", ["l1", "l2", "cosine"])
def test_nearest_neighbours_match_sorting_in_blocks(metric):
    from fnn_examples.image_retrieval import nearest_neighbours

    rng = np.random.default_rng(1)
    q = rng.normal(size=(13, 4)).astype(np.float32)
    db = rng.normal(size=(30, 4)).astype(np.float32)
    full = _brute(q, db, metric)
    expected = np.argsort(full, axis=1, kind="stable")[:, :5]
    for block_elements in (1, 50, 1 << 20):  # one query per block, a few, all at once
        idx, dist = nearest_neighbours(q, db, 5, metric, max_block_elements=block_elements)
        np.testing.assert_array_equal(idx, expected)
        np.testing.assert_allclose(dist, np.take_along_axis(full, expected, axis=1), rtol=1e-4, atol=1e-4)
    idx, _ = nearest_neighbours(q, db[:3], 5, metric)  # k larger than the database
    assert idx.shape == (13, 3)


def test_nearest_neighbours_ties_go_to_the_lower_index():
    from fnn_examples.image_retrieval import nearest_neighbours

    db = np.array([[1.0], [0.0], [1.0], [-1.0], [2.0]], np.float32)
    idx, dist = nearest_neighbours(np.array([[0.0]], np.float32), db, 4, "l1")
    assert idx.tolist() == [[1, 0, 2, 3]] and dist.tolist() == [[0, 1, 1, 1]]


def test_precision_at_k_by_hand():
    from fnn_examples.image_retrieval import precision_at_k

    neighbours = np.array([[1, 1, 0, 2, 1], [3, 3, 3, 3, 3], [0, 1, 2, 3, 4]])
    labels = np.array([1, 3, 9])
    assert precision_at_k(neighbours, labels) == pytest.approx((3 / 5 + 1 + 0) / 3)
    assert precision_at_k(neighbours, labels, k=2) == pytest.approx((1 + 1 + 0) / 3)


def test_penultimate_layer_of_a_sequential():
    import fnn
    from fnn import models
    from fnn_examples.image_retrieval import embed, penultimate

    model = models.lenet5(10, width_multiplier=0.5)
    x = fnn.random.uniform(fnn.random.key(0), (3, 1, 28, 28))
    params, state = model.init(fnn.random.key(1), x)
    features, _ = penultimate(model).apply(params, state, x)
    assert features.shape == (3, 42) and np.all(np.asarray(features) >= 0)  # after the last ReLU
    logits, _ = model.apply(params, state, x)
    head = params[model.names[-1]]
    np.testing.assert_allclose(np.asarray(features) @ head["w"] + head["b"], logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(embed(model, params, state, x, batch_size=2), features, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError):
        penultimate(fnn.nn.Dense(3))


# --------------------------------------------------------------------------------------------
# image_retrieval, end to end


def test_image_retrieval_quick_and_from_checkpoint(tmp_path):
    needs("fashion_mnist")
    from fnn_examples import image_retrieval

    result = image_retrieval.main(["--quick", "--no-progress", "--out", str(tmp_path), "--held-out-class", "1"])
    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored["experiment"] == "image_retrieval" and stored["held_out_class"] == 1
    for m in image_retrieval.METRICS:
        assert 0.0 <= result[f"precision_at_5_{m}"] <= 1.0
        assert 0.0 <= result[f"auroc_{m}"] <= 1.0
    assert result["precision_at_5_l2"] > 0.3  # well above chance (0.11) even after 1 tiny epoch
    assert result["unknown_queries"] > 0 and result["database_size"] < 1000
    assert result["map_method"] in ("t-SNE", "PCA") and result["embedding_dim"] == 42
    for picture in ("neighbours.png", "embedding_map.png", "history.png"):
        assert is_png(tmp_path / picture)
    assert (tmp_path / "best.npz").exists()

    # the same model again, from the checkpoint: no training, the same embeddings and scores
    again = tmp_path / "again"
    second = image_retrieval.main(["--quick", "--no-progress", "--out", str(again), "--held-out-class", "1",
                                   "--checkpoint", str(tmp_path / "best.npz"), "--map", "pca"])
    assert second["map_method"] == "PCA" and not (again / "best.npz").exists()
    for m in image_retrieval.METRICS:
        assert second[f"precision_at_5_{m}"] == pytest.approx(result[f"precision_at_5_{m}"])
        assert second[f"auroc_{m}"] == pytest.approx(result[f"auroc_{m}"])
