"""A small causal Transformer language model on the plays of Shakespeare: test perplexity against
a unigram baseline, and sampled text.

    python -m fnn_examples.tiny_gpt [--epochs 3] [--batch-size 32] [--lr 1e-3]
        [--corpus shakespeare|python-docs] [--vocab-size 5000] [--seq-len 64] [--dim 128]
        [--depth 4] [--heads 4] [--max-train-windows N]

Data (`fnn_examples.text_corpus`): the corpus split by document (seeded: 30 plays train, 4
validation, 4 test, the same split as `bert_mlm`), word-level tokens with a "\\n" token at each
line end (so the model learns the layout: speaker, colon, line end, verse lines), one vocabulary
of `--vocab-size` built on the training split and shared by every split. Each example is a
window of L + 1 = `--seq-len` + 1 consecutive tokens: the model reads the first L and predicts the
next token at every position.

Model: `fnn.models.CausalTransformer` (GPT-2's shape: pre-norm, learned positions, the LM head
tied to the token table, tanh GELU) with dim 128, 4 layers, 4 heads, MLP 512, dropout 0.1; AdamW
(weight decay 0.1 on matrices only), gradient clipping at 1.0, a linear warmup over the first 5% of
the steps to `--lr`, then cosine decay to zero.

Reported (`result.json`): test perplexity (exp of the mean next-token cross-entropy over every
test position, [UNK] counted as a token like any other) with the best checkpoint (by validation
loss), beside the unigram baseline's perplexity on the same tokens (training counts, add-one
smoothing); test next-token top-1 and top-5 accuracy beside the unigram baseline's (always the
most frequent training tokens). `samples.md` holds text sampled from fixed prompts with a fixed
key (temperature 0.8, top-40; the special tokens, [UNK] among them, are never sampled). Also
`history.json/csv/png` (per epoch: train loss and error, validation and test loss, top-1 and top-5
next-token error), `best.npz`, `vocab.json`.

Cost on a 2-core CPU: 1.44 M parameters, 0.8-0.9 s a step of 32 windows (one thread, the other
core busy), 480 steps an epoch, about 20 s of evaluation an epoch: the default 3 epochs take about
23 minutes. A check of 100 steps (`--epochs 1 --max-train-windows 3200 --lr 2e-3`) already reached
test perplexity 162 against the unigram baseline's 223.
"""

from __future__ import annotations

import json
import math

import numpy as np

import fnn
from fnn import losses, models, training
from fnn_examples import common
from fnn_examples import text_corpus as tc

NAME = "tiny_gpt"
CLIP = 1.0
WEIGHT_DECAY = 0.1
EVAL_WINDOWS = 1000  # validation and test windows scored each epoch (the final test uses them all)
PROMPTS = ("KING:\nMy lord,", "First Citizen:\nWhat", "Enter")
SAMPLE_STEPS, TEMPERATURE, TOP_K = 80, 0.8, 40


def get_args(argv):
    p = common.parser(__doc__.splitlines()[0], epochs=3, batch_size=32, lr=1e-3)
    p.add_argument("--corpus", default="shakespeare", choices=sorted(tc.CORPORA))
    p.add_argument("--vocab-size", type=int, default=5000)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--max-train-windows", type=int, default=None, help="use at most this many training windows")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = min(args.epochs, 2)
        args.vocab_size, args.seq_len, args.dim, args.depth, args.heads = 600, 24, 32, 1, 2
        args.max_train_windows = min(args.max_train_windows or 10**9, 320)
    return args


def topk_hits(logits: np.ndarray, targets: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 hit, top-k hit) booleans for each position (logits (..., V), targets (...))."""
    logits = np.asarray(logits)
    top = np.argpartition(-logits, k - 1, axis=-1)[..., :k]
    return np.argmax(logits, axis=-1) == targets, np.any(top == targets[..., None], axis=-1)


def score(model, params, rows, batch_size=250):
    """Mean next-token loss (nats), perplexity, top-1 and top-5 error over every position of `rows`."""
    loss = hit1 = hit5 = n = 0.0
    for lo in range(0, len(rows), batch_size):
        batch = rows[lo:lo + batch_size]
        x, y = batch[:, :-1], batch[:, 1:]
        logits, _ = model.apply(params, {}, x)
        logits = np.asarray(logits)
        loss += float(losses.softmax_cross_entropy(logits, y, reduction="sum"))
        h1, h5 = topk_hits(logits, y)
        hit1, hit5, n = hit1 + h1.sum(), hit5 + h5.sum(), n + y.size
    return {"loss": loss / n, "perplexity": math.exp(loss / n), "error": 1 - hit1 / n,
            "top5_error": 1 - hit5 / n, "tokens": int(n)}


def unigram_baselines(vocab: tc.Vocabulary, rows) -> dict:
    """Perplexity and top-1/top-5 accuracy on the targets of `rows` of the unigram model of the
    training counts (add-one smoothing)."""
    targets = rows[:, 1:]
    log_p = vocab.unigram_log_probs(1.0)
    top = np.argsort(-log_p, kind="stable")[:5]
    return {"unigram_perplexity": float(np.exp(-np.mean(log_p[targets]))),
            "unigram_accuracy": float(np.mean(targets == top[0])),
            "unigram_top5_accuracy": float(np.mean(np.isin(targets, top)))}


def samples(model, params, vocab, key) -> list[dict]:
    out = []
    for i, prompt in enumerate(PROMPTS):
        tokens = tc.tokenize(prompt, newlines=True)
        if not prompt.endswith("\n"):
            tokens = tokens[:-1]  # no line end after the prompt's last line
        ids = vocab.encode(tokens).astype(np.int64)
        new = models.generate(model, params, {}, ids, SAMPLE_STEPS, fnn.random.fold_in(key, i),
                              temperature=TEMPERATURE, top_k=TOP_K, suppress_ids=range(len(tc.SPECIALS)))
        out.append({"prompt": prompt, "prompt_as_tokens": tc.detokenize(vocab.decode(ids)),
                    "text": tc.detokenize(vocab.decode(new))})
    return out


def write_samples(path, items, args) -> None:
    lines = [f"# {NAME} samples", "",
             f"{SAMPLE_STEPS} tokens after each prompt, temperature {TEMPERATURE}, top-{TOP_K}, "
             f"seed {args.seed}.", ""]
    for item in items:
        lines += [f"## Prompt: {item['prompt']!r}", "", "```", item["text"], "```", ""]
    training.write_text_atomic(path, "\n".join(lines))


def main(argv=None) -> dict:
    args = get_args(argv)
    out = common.out_dir(args, NAME)
    try:
        text = tc.prepare(args.corpus, vocab_size=args.vocab_size, seed=args.seed, newlines=True)
    except tc.CorpusUnavailable as e:
        raise SystemExit(f"{NAME}: {e}") from None
    vocab = text.vocab
    length = args.seq_len + 1
    train_rows = tc.windows(text.streams["train"], length)
    val_rows = tc.windows(text.streams["val"], length)
    test_rows = tc.windows(text.streams["test"], length)
    if args.max_train_windows is not None:
        train_rows = train_rows[:args.max_train_windows]
    if args.quick:
        val_rows, test_rows = val_rows[:64], test_rows[:64]
    training.write_text_atomic(out / "vocab.json", json.dumps(vocab.to_json()))

    key = fnn.random.key(args.seed)
    k_init, k_train, k_sample = fnn.random.split(key, 3)
    model = models.CausalTransformer(len(vocab), max_len=args.seq_len, dim=args.dim, depth=args.depth,
                                     num_heads=args.heads, dropout_rate=args.dropout, approximate_gelu=True)
    params, state = model.init(k_init, train_rows[:2, :-1])
    n_batches = len(train_rows) // args.batch_size
    if n_batches == 0:
        raise SystemExit(f"{NAME}: {len(train_rows)} training windows make no batch of {args.batch_size}")
    opt = tc.adamw_with_warmup(args.lr, args.epochs * n_batches, clip=CLIP, weight_decay=WEIGHT_DECAY)
    n_params = sum(p.size for p in fnn.tree.leaves(params))
    print(f"{NAME}: {text.corpus['title']}; vocabulary {len(vocab)}; windows of {length}: "
          f"{len(train_rows)} train, {len(val_rows)} val, {len(test_rows)} test; {n_params:,} parameters", flush=True)

    def batch_loss(params, batch, key):
        x, y = batch[:, :-1], batch[:, 1:]
        logits, _ = model.apply(params, state, x, key=key, train=True)
        return losses.softmax_cross_entropy(logits, y), (logits, y)

    def evaluate(params):
        return score(model, params, val_rows[:EVAL_WINDOWS]), score(model, params, test_rows[:EVAL_WINDOWS])

    _, history, keep_best = tc.train_token_model(
        NAME, args, out, params=params, state=state, opt=opt, train_rows=train_rows, n_batches=n_batches,
        k_train=k_train, batch_loss=batch_loss, evaluate=evaluate, monitor="val_loss",
        describe=lambda val: f"val perplexity {val['perplexity']:.1f}  next-")

    best = fnn.io.load(out / "best.npz")["params"]
    test = score(model, best, test_rows)
    texts = samples(model, best, vocab, k_sample)
    write_samples(out / "samples.md", texts, args)
    for item in texts:
        print(f"--- sample from {item['prompt']!r}:\n{item['text']}")
    result = {
        **text.summary(),
        "test_perplexity": test["perplexity"], "test_loss": test["loss"],
        "test_accuracy": 1.0 - test["error"], "test_top5_accuracy": 1.0 - test["top5_error"],
        "test_target_tokens": test["tokens"],
        **unigram_baselines(vocab, test_rows),
        "best_epoch": keep_best.best_epoch, "best_val_loss": keep_best.best,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seq_len": args.seq_len,
        "dim": args.dim, "depth": args.depth, "heads": args.heads, "dropout": args.dropout,
        "train_windows": len(train_rows), "steps": args.epochs * n_batches, "parameters": int(n_params),
        "seconds_per_step": float(np.mean(history.column("seconds_per_step"))),
        "seconds": float(sum(history.column("seconds"))),
        "samples": texts,
    }
    common.write_summary(out, NAME, result)
    return result


if __name__ == "__main__":
    main()
