"""``text``: byte- or character-level next-token prediction on a local text corpus.

The corpus is either the Debian package ``fortunes`` (``/usr/share/games/fortunes``, used
when no directory is given and the package is installed: every plain file there except
the ``.dat`` indexes and the ``.u8`` links, fortunes separated by ``%`` lines) or every
``*.txt`` file under a user directory (``data_dir``, searched recursively). Files are read
in sorted path order and joined with a blank line, so the same files always give the same
token stream. Nothing is downloaded.

Tokens: ``"byte"`` (default; the UTF-8 bytes, vocabulary 256, independent of the corpus)
or ``"char"`` (the distinct characters of the corpus, sorted; the vocabulary is stored in
``info["chars"]``). The stream is cut into non-overlapping windows of ``context + 1``
tokens starting every ``context`` tokens; example ``i`` is ``x = s[iT : iT+T]`` and its
target ``y = s[iT+1 : iT+T+1]`` (next token at every position). A seeded permutation of the
windows sends ``round(val_fraction · n)`` of them to the validation split (``"test"`` in
:class:`DataBundle`), so the split is deterministic and the two splits share no window.

``info["unigram_perplexity"]`` is the baseline a language model must beat: the perplexity
of the validation tokens under the training split's token frequencies (add-one smoothed).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from prunelab.data._common import check_count, check_seed, reject_unknown, rng
from prunelab.data.base import DataBundle
from prunelab.data.registry import DATASETS
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

NAME = "text"
FORTUNES_DIR = Path("/usr/share/games/fortunes")
TOKENIZATIONS = ("byte", "char")
OPTIONS = ("context", "tokens", "val_fraction", "max_bytes", "subsample_train", "subsample_test")
#: CPU budget of the defaults: 8,192 training windows of 64 tokens (524k tokens) are one
#: epoch of about 3 minutes for ``gpt`` on 2 cores; 1,024 validation windows (65k tokens)
#: give the perplexity to about 1 %. ``None`` uses every window of the split.
DEFAULT_SUBSAMPLE = {"train": 8192, "test": 1024}
#: 64 tokens: long enough for word- and phrase-level structure, short enough that a
#: 1M-parameter model trains at a few thousand tokens per second on 2 CPU cores
DEFAULT_CONTEXT = 64


def corpus_files(directory: Path | None, dataset: str = NAME) -> tuple[Path, list[Path]]:
    """The directory searched and its corpus files, in sorted order.

    ``dataset`` names the loader in error messages (``sentences`` reads the same corpus).

    Raises:
        PrunelabError: No directory given and ``fortunes`` not installed, a missing
            directory, or one without any text file.
    """
    if directory is None:
        if not FORTUNES_DIR.is_dir():
            raise PrunelabError(
                f"{dataset}: no corpus: install the Debian package fortunes ({FORTUNES_DIR}) or "
                "pass data_dir=DIR, a folder of .txt files (--data-dir DIR on the command line)"
            )
        files = [
            p
            for p in sorted(FORTUNES_DIR.iterdir())
            if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8")
        ]
        return FORTUNES_DIR, files
    directory = Path(directory)
    if not directory.is_dir():
        raise PrunelabError(
            f"{dataset}: {directory} is not a directory; pass a folder of .txt files"
        )
    return directory, sorted(p for p in directory.rglob("*.txt") if p.is_file())


def read_corpus(
    directory: Path | None, max_bytes: int | None = None, dataset: str = NAME
) -> tuple[bytes, dict]:
    """The corpus as one byte string (fortune separators removed) and facts about it.

    Files are joined with a blank line; ``dataset`` names the loader in error messages.
    """
    where, files = corpus_files(directory, dataset)
    parts = []
    for path in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PrunelabError(f"{dataset}: cannot read {path}: {exc}") from None
        if where == FORTUNES_DIR:
            raw = b"\n".join(line for line in raw.split(b"\n") if line.strip() != b"%")
        raw = raw.strip()
        if raw:
            parts.append(raw)
    text = b"\n\n".join(parts)
    if max_bytes is not None:
        text = text[:max_bytes]
    if not text:
        raise PrunelabError(
            f"{dataset}: no text in {where} ({len(files)} .txt file(s), all empty); "
            "pass data_dir=DIR, a folder of non-empty .txt files (--data-dir DIR)"
        )
    return text, {"directory": str(where), "files": len(files), "bytes": len(text)}


def tokenize(text: bytes, tokens: str) -> tuple[np.ndarray, int, str | None]:
    """``(token ids int64, vocabulary size, characters or None)``."""
    if tokens == "byte":
        return np.frombuffer(text, dtype=np.uint8).astype(np.int64), 256, None
    chars = sorted(set(text.decode("utf-8", errors="replace")))
    index = {c: i for i, c in enumerate(chars)}
    decoded = text.decode("utf-8", errors="replace")
    ids = np.fromiter((index[c] for c in decoded), dtype=np.int64, count=len(decoded))
    return ids, len(chars), "".join(chars)


def unigram_perplexity(train: np.ndarray, test: np.ndarray, vocab: int) -> float:
    """Perplexity of ``test`` tokens under add-one-smoothed ``train`` token frequencies."""
    counts = np.bincount(train.reshape(-1), minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(math.exp(-logp[test.reshape(-1)].mean()))


@DATASETS.register(NAME)
def load_text(
    seed: int,
    data_dir: Path | None = None,
    *,
    context: int = DEFAULT_CONTEXT,
    tokens: str = "byte",
    val_fraction: float = 0.1,
    max_bytes: int | None = None,
    subsample_train: int | None = DEFAULT_SUBSAMPLE["train"],
    subsample_test: int | None = DEFAULT_SUBSAMPLE["test"],
    **unknown,
) -> DataBundle:
    """Load a text corpus as next-token windows.

    Args:
        seed: Seed of the train/validation split of the windows.
        data_dir: Folder of ``.txt`` files; default the ``fortunes`` package.
        context: Tokens per example (the model's context length).
        tokens: ``"byte"`` or ``"char"``.
        val_fraction: Fraction of windows in the validation (``"test"``) split, in (0, 1).
        max_bytes: Use only the first this many bytes of the corpus (quick runs, tests).
        subsample_train: Keep this many training windows (seeded), ``None`` = all; a
            number above the available count keeps all.
        subsample_test: The same for the validation windows.
        **unknown: Any other option is an error.

    Returns:
        A :class:`DataBundle` with ``x``, ``y`` int64 of shape ``(N, context)``,
        ``num_classes`` = vocabulary size, ``input_shape = (context,)``, ``sequence=True``.

    Raises:
        PrunelabError: No corpus, no text, a corpus too short for two windows, bad options.
    """
    reject_unknown(NAME, unknown, OPTIONS)
    seed = check_seed(NAME, seed)
    context = check_count(NAME, "context", context)
    if tokens not in TOKENIZATIONS:
        raise PrunelabError(
            f"{NAME}: unknown tokens {tokens!r}; valid choices: {', '.join(TOKENIZATIONS)}"
        )
    ok = isinstance(val_fraction, int | float) and not isinstance(val_fraction, bool)
    if not ok or not 0.0 < val_fraction < 1.0:
        raise PrunelabError(f"{NAME}: val_fraction must be in (0, 1), got {val_fraction!r}")
    if max_bytes is not None:
        max_bytes = check_count(NAME, "max_bytes", max_bytes)
    text, facts = read_corpus(data_dir, max_bytes)
    ids, vocab, chars = tokenize(text, tokens)
    n = (ids.size - 1) // context
    n_val = round(val_fraction * n)
    if n_val < 1 or n - n_val < 1:
        raise PrunelabError(
            f"{NAME}: corpus of {ids.size} tokens gives {n} window(s) of {context + 1}; "
            f"need at least one per split (more text, a shorter context or another val_fraction)"
        )
    starts = np.arange(n) * context
    windows = ids[starts[:, None] + np.arange(context + 1)[None, :]]
    order = rng(seed, 0).permutation(n)
    val_idx, train_idx = order[:n_val], order[n_val:]
    for stream, (split, k) in enumerate((("train", subsample_train), ("test", subsample_test))):
        if k is not None:
            k = check_count(NAME, f"subsample_{split}", k)
            idx = train_idx if split == "train" else val_idx
            if k < idx.size:
                idx = rng(seed, stream + 1).choice(idx, size=k, replace=False)
            if split == "train":
                train_idx = idx
            else:
                val_idx = idx
    val_idx, train_idx = np.sort(val_idx), np.sort(train_idx)
    train, val = windows[train_idx], windows[val_idx]
    ppl = unigram_perplexity(train[:, 1:], val[:, 1:], vocab)
    log.debug("%s: %d train / %d validation windows from %s", NAME, len(train), len(val), facts)
    as_t = torch.from_numpy
    return DataBundle(
        name=NAME,
        train=(as_t(np.ascontiguousarray(train[:, :-1])), as_t(np.ascontiguousarray(train[:, 1:]))),
        test=(as_t(np.ascontiguousarray(val[:, :-1])), as_t(np.ascontiguousarray(val[:, 1:]))),
        num_classes=vocab,
        input_shape=(context,),
        sequence=True,
        info={
            **facts,
            "tokens": tokens,
            "vocab": vocab,
            "chars": chars,
            "unigram_perplexity": ppl,
            "split": "test = validation windows",
            "windows": {"train": int(train_idx.size), "test": int(val_idx.size), "all": int(n)},
        },
    )
