"""A small BERT trained by masked-language modelling on the plays of Shakespeare, against a
unigram-frequency baseline.

    python -m fnn_examples.bert_mlm [--epochs 10] [--batch-size 32] [--lr 1e-3]
        [--corpus shakespeare|python-docs] [--vocab-size 5000] [--seq-len 64] [--dim 128]
        [--depth 2] [--heads 2] [--max-train-windows N]

Data (`fnn_examples.text_corpus`): the corpus split by document (seeded: 30 plays train, 4
validation, 4 test), word-level tokens without line ends, one vocabulary of `--vocab-size` built
on the training split and shared by every split. Each example is a window
[CLS] w_1 ... w_{L-2} [SEP] of L = `--seq-len` consecutive tokens.

Masking, as BERT: 15% of the positions that hold a regular token ([UNK] and the specials are never
targets), of which 80% become [MASK], 10% a random token, 10% stay unchanged. Training draws a new
masking every step (dynamic masking, as RoBERTa); validation and test use one fixed masking, the
same every epoch. The loss is the cross-entropy at the picked positions only, and the MLM head runs
only on them (`BERT.encode`, a gather, then `BERT.mlm_logits`).

Model: `fnn.models.BERT` with dim 128, 2 layers, 2 heads, MLP 512 (BERT-tiny's shape; Turc et
al., 2019) and `--seq-len` positions, GELU (MLPs and MLM head) in the tanh form of Google's original BERT
(`--gelu exact` for HuggingFace's erf form: four times slower a step here); AdamW (weight decay
0.01 on matrices only), gradient clipping at 1.0, a linear warmup over the first 5% of the steps
to `--lr`, then cosine decay to zero.

Reported (`result.json`): masked-token top-1 and top-5 accuracy on the test split with the best
checkpoint (by validation error), beside two unigram baselines computed on the same masked test
positions from the training counts: always predicting the most frequent training token (top-5: the
five most frequent), and the expected accuracy of guessing by sampling from the training
frequencies. `fill_ins.md` shows test lines with one word masked and the model's top-3 guesses.
Also `history.json/csv/png` (per epoch: train loss and masked error, validation and test top-1
and top-5 masked error), `best.npz`, `vocab.json`.

Cost on a 2-core CPU: 1.07 M parameters, 0.18 s a step of 32 windows alone on the machine (0.31 s
with the other core busy; 0.71 s with `--gelu exact`), 444 steps an epoch, about 10 s of
evaluation an epoch: the default 10 epochs take 15 to 25 minutes. A check of 250 steps
(`--epochs 1 --max-train-windows 8000 --lr 2e-3`) reached 11.2% masked test accuracy against the
most-frequent-token baseline's 8.8%, still guessing the same frequent tokens everywhere: a masked LM
leaves that plateau later, so use the full run for the fill-ins.
"""

from __future__ import annotations

import json

import numpy as np

import fnn
import fnn.numpy as fnp
from fnn import losses, models, training
from fnn_examples import common
from fnn_examples import text_corpus as tc

NAME = "bert_mlm"
MASK_RATE = 0.15
CLIP = 1.0
WEIGHT_DECAY = 0.01
EVAL_WINDOWS = 1000  # validation and test windows scored each epoch (the final test uses them all)
N_FILL_INS = 8


def get_args(argv):
    p = common.parser(__doc__.splitlines()[0], epochs=10, batch_size=32, lr=1e-3)
    p.add_argument("--corpus", default="shakespeare", choices=sorted(tc.CORPORA))
    p.add_argument("--vocab-size", type=int, default=5000)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--gelu", default="tanh", choices=("tanh", "exact"),
                   help="the MLP's GELU: tanh approximation (original BERT) or exact (erf)")
    p.add_argument("--max-train-windows", type=int, default=None, help="use at most this many training windows")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = min(args.epochs, 2)
        args.vocab_size, args.seq_len, args.dim, args.depth, args.heads = 600, 24, 32, 1, 2
        args.max_train_windows = min(args.max_train_windows or 10**9, 320)
    return args


def bert_windows(stream: np.ndarray, seq_len: int) -> np.ndarray:
    """(n, seq_len) rows [CLS] tokens [SEP] from consecutive stretches of the stream."""
    body = tc.windows(stream, seq_len - 2)
    n = len(body)
    return np.concatenate([np.full((n, 1), tc.CLS, np.int32), body, np.full((n, 1), tc.SEP, np.int32)], axis=1)


def masked_logits(model, params, inputs, picked, *, key=None, train=False):
    """The MLM head's logits at the picked positions only: (n_picked, vocab)."""
    h = model.encode(params, inputs, key=key, train=train)
    rows = np.flatnonzero(picked.reshape(-1))
    h = fnp.reshape(h, (-1, model.dim))[rows]
    return model.mlm_logits(params, h)


def topk_hits(logits: np.ndarray, targets: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 hit, top-k hit) booleans per row."""
    logits = np.asarray(logits)
    top = np.argpartition(-logits, k - 1, axis=-1)[:, :k]
    return np.argmax(logits, axis=-1) == targets, np.any(top == targets[:, None], axis=-1)


def score(model, params, rows, key, batch_size=250):
    """Masked-token top-1/top-5 error and loss on `rows` under the fixed masking from `key`."""
    inputs, picked = tc.mask_tokens(key, rows, model.vocab_size, MASK_RATE)
    hit1 = hit5 = loss = n = 0.0
    for lo in range(0, len(rows), batch_size):
        sl = slice(lo, lo + batch_size)
        logits = np.asarray(masked_logits(model, params, inputs[sl], picked[sl]))
        targets = rows[sl][picked[sl]]
        h1, h5 = topk_hits(logits, targets)
        hit1, hit5, n = hit1 + h1.sum(), hit5 + h5.sum(), n + len(targets)
        loss += float(losses.softmax_cross_entropy(logits, targets, reduction="sum"))
    return {"error": 1 - hit1 / n, "top5_error": 1 - hit5 / n, "loss": loss / n, "targets": int(n)}


def unigram_baselines(vocab: tc.Vocabulary, rows, key) -> dict:
    """Accuracies on the masked positions of `rows` (the fixed test masking) of guessing from the
    training counts alone."""
    _, picked = tc.mask_tokens(key, rows, len(vocab), MASK_RATE)
    targets = rows[picked]
    counts = vocab.counts.astype(np.float64).copy()
    counts[:len(tc.SPECIALS)] = 0.0  # never a target
    top = np.argsort(-counts, kind="stable")[:5]
    p = counts / counts.sum()
    return {"most_frequent_token": vocab.tokens[top[0]],
            "unigram_most_frequent_accuracy": float(np.mean(targets == top[0])),
            "unigram_most_frequent_top5_accuracy": float(np.mean(np.isin(targets, top))),
            "unigram_sampling_accuracy": float(np.mean(p[targets]))}


def fill_ins(model, params, vocab, rows, key, n=N_FILL_INS, context=10) -> list[dict]:
    """Test windows with one regular word masked (a word of letters, chosen by `key`) and the
    model's three most probable fillers."""
    out = []
    picks = np.linspace(0, len(rows) - 1, n).astype(int)
    for i, k in zip(picks, fnn.random.split(key, n)):
        row = rows[i]
        words = [j for j in range(1, len(row) - 1)
                 if row[j] >= len(tc.SPECIALS) and vocab.tokens[row[j]].isalpha()]
        if not words:
            continue
        j = words[int(fnn.random.randint(k, (), 0, len(words)))]
        inputs = row.copy()
        inputs[j] = tc.MASK
        picked = np.zeros_like(row, bool)
        picked[j] = True
        logits = np.asarray(masked_logits(model, params, inputs[None], picked[None]))[0].astype(np.float64)
        logits[:len(tc.SPECIALS)] = -np.inf  # a filler is a real token
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        best = np.argsort(-probs)[:3]
        lo, hi = max(1, j - context), min(len(row) - 1, j + context + 1)
        shown = vocab.decode(inputs[lo:hi])
        out.append({"text": tc.detokenize(shown).replace("\n", " / "), "answer": vocab.tokens[row[j]],
                    "top3": [[vocab.tokens[b], round(float(probs[b]), 3)] for b in best]})
    return out


def write_fill_ins(path, examples) -> None:
    lines = ["| masked test text | answer | top-3 guesses (probability) |", "|---|---|---|"]
    for e in examples:
        guesses = ", ".join(f"{t} ({p:.2f})" for t, p in e["top3"])
        lines.append(f"| {e['text'].replace('|', '/')} | {e['answer']} | {guesses} |")
    training.write_text_atomic(path, "\n".join(lines) + "\n")


def main(argv=None) -> dict:
    args = get_args(argv)
    out = common.out_dir(args, NAME)
    try:
        text = tc.prepare(args.corpus, vocab_size=args.vocab_size, seed=args.seed, newlines=False)
    except tc.CorpusUnavailable as e:
        raise SystemExit(f"{NAME}: {e}") from None
    vocab = text.vocab
    train_rows = bert_windows(text.streams["train"], args.seq_len)
    val_rows = bert_windows(text.streams["val"], args.seq_len)
    test_rows = bert_windows(text.streams["test"], args.seq_len)
    if args.max_train_windows is not None:
        train_rows = train_rows[:args.max_train_windows]
    if args.quick:
        val_rows, test_rows = val_rows[:64], test_rows[:64]
    training.write_text_atomic(out / "vocab.json", json.dumps(vocab.to_json()))

    key = fnn.random.key(args.seed)
    k_init, k_train, k_val, k_test, k_fill = fnn.random.split(key, 5)
    model = models.BERT(len(vocab), max_len=args.seq_len, dim=args.dim, depth=args.depth,
                        num_heads=args.heads, mlp_dim=4 * args.dim, approximate_gelu=args.gelu == "tanh")
    params, state = model.init(k_init, train_rows[:2])
    n_batches = len(train_rows) // args.batch_size
    if n_batches == 0:
        raise SystemExit(f"{NAME}: {len(train_rows)} training windows make no batch of {args.batch_size}")
    opt = tc.adamw_with_warmup(args.lr, args.epochs * n_batches, clip=CLIP, weight_decay=WEIGHT_DECAY)
    print(f"{NAME}: {text.corpus['title']}; vocabulary {len(vocab)}; windows of {args.seq_len}: "
          f"{len(train_rows)} train, {len(val_rows)} val, {len(test_rows)} test; "
          f"{sum(p.size for p in fnn.tree.leaves(params)):,} parameters", flush=True)

    def batch_loss(params, batch, key):
        k_mask, k_drop = fnn.random.split(key)
        inputs, picked = tc.mask_tokens(k_mask, batch, len(vocab), MASK_RATE)
        targets = batch[picked]
        logits = masked_logits(model, params, inputs, picked, key=k_drop, train=True)
        return losses.softmax_cross_entropy(logits, targets), (logits, targets)

    def evaluate(params):
        return (score(model, params, val_rows[:EVAL_WINDOWS], k_val),
                score(model, params, test_rows[:EVAL_WINDOWS], k_test))

    _, history, keep_best = tc.train_token_model(
        NAME, args, out, params=params, state=state, opt=opt, train_rows=train_rows, n_batches=n_batches,
        k_train=k_train, batch_loss=batch_loss, evaluate=evaluate, monitor="val_error",
        describe=lambda val: "masked ")

    best = fnn.io.load(out / "best.npz")["params"]
    test = score(model, best, test_rows, k_test)
    examples = fill_ins(model, best, vocab, test_rows, k_fill)
    write_fill_ins(out / "fill_ins.md", examples)
    result = {
        **text.summary(),
        "test_masked_accuracy": 1.0 - test["error"], "test_masked_top5_accuracy": 1.0 - test["top5_error"],
        "test_masked_loss": test["loss"], "test_masked_targets": test["targets"],
        **unigram_baselines(vocab, test_rows, k_test),
        "best_epoch": keep_best.best_epoch, "best_val_masked_accuracy": 1.0 - keep_best.best,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seq_len": args.seq_len,
        "dim": args.dim, "depth": args.depth, "heads": args.heads, "gelu": args.gelu, "train_windows": len(train_rows),
        "steps": args.epochs * n_batches,
        "parameters": int(sum(p.size for p in fnn.tree.leaves(best))),
        "seconds_per_step": float(np.mean(history.column("seconds_per_step"))),
        "seconds": float(sum(history.column("seconds"))),
        "fill_ins": examples,
    }
    common.write_summary(out, NAME, result)
    return result


if __name__ == "__main__":
    main()
