"""``sentences``: embedding fidelity against a pretrained sentence encoder, offline.

**Corpus**: the same files as :mod:`prunelab.data.text` reads (the Debian package
``fortunes`` by default, or every ``*.txt`` under ``data_dir``), cut into sentences:
attribution lines (``-- Author``) are dropped, the text is split at blank lines,
whitespace is collapsed, paragraphs are split after ``.``,
``!`` or ``?`` followed by a space; a sentence is kept when it has at least
:data:`MIN_WORDS` words and mostly letters (no ASCII art), once (case-insensitive
duplicates dropped, first occurrence kept).

**Splits**: a seeded permutation of the sentences; the first ``calibration`` form the
train split (calibration data: what scores and curvature see), the next ``evaluation``
the test split, so the splits are disjoint and depend only on the corpus and the seed.

**Inputs**: ``x`` int64 ``(N, T)``: each sentence tokenised with the reference model's
``tokenizer.json`` (``tokenizers``; ``[CLS] … [SEP]``, truncated to ``max_tokens``),
right-padded with the model's pad id to ``T`` = the longest sentence of both splits.

**Targets** (task ``"embedding"``): ``y`` float32 ``(N, d)``, the **pristine** reference
model's mean-pooled embeddings (computed here, in float32, in ``eval()`` mode). The loss
is ``mean(1 − cos(output, y))`` (:func:`prunelab.train.loss_function`): exactly 0 for the
dense reference model, which is also where its gradient is zero. The reference is part of
the data spec (option ``reference``: ``"minilm"`` or ``"hf:PATH"``), so reloading a pruned
checkpoint's data recomputes the same targets from the unpruned model.

Needs the ``transformers`` extra (``pip install -e '.[transformers]'``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch

from prunelab import _hf
from prunelab.data._common import check_count, check_seed, reject_unknown, rng
from prunelab.data.base import DataBundle
from prunelab.data.registry import DATASETS
from prunelab.data.text import read_corpus
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

NAME = "sentences"
OPTIONS = ("calibration", "evaluation", "max_tokens", "reference", "max_bytes")
#: 128 calibration sentences: Wanda's and SparseGPT's usual calibration size
DEFAULT_CALIBRATION = 128
#: 256 evaluation sentences: the mean cosine to about ±0.001 at cos ≈ 0.99
DEFAULT_EVALUATION = 256
#: 32 tokens: the whole of 90 % of fortune sentences (median 18 tokens); every sentence is
#: padded to the longest, so the cost of every forward pass grows with it
DEFAULT_MAX_TOKENS = 32
#: shorter "sentences" are mostly attributions and fragments ("-- Mark Twain")
MIN_WORDS = 4
#: reference embeddings are computed this many sentences at a time (memory only)
EMBED_BATCH = 64

_SPLIT = re.compile(r"(?<=[.!?])\s+")
#: a fortune's attribution line ("\t\t-- Mark Twain"), dropped before splitting
_ATTRIBUTION = re.compile(r"^[ \t]*--.*$", re.MULTILINE)


def split_sentences(text: str) -> list[str]:
    r"""The corpus's sentences in corpus order (see the module doc for the rule).

    Example:
        >>> split_sentences("One two three four. Five six seven eight!\n\n-- Anon")
        ['One two three four.', 'Five six seven eight!']
    """
    out, seen = [], set()
    text = _ATTRIBUTION.sub("\n", text)
    for paragraph in re.split(r"\n\s*\n", text):
        flat = " ".join(paragraph.split())
        for sentence in _SPLIT.split(flat):
            letters = sum(c.isalpha() for c in sentence)
            key = sentence.lower()
            if len(sentence.split()) < MIN_WORDS or letters < 0.6 * len(sentence):
                continue
            if key not in seen:
                seen.add(key)
                out.append(sentence)
    return out


def tokenize(tokenizer, sentences: list[str], max_tokens: int, pad_id: int) -> torch.Tensor:
    """Token ids ``(N, T)`` int64, right-padded with ``pad_id``; ``T`` = the longest."""
    tokenizer.enable_truncation(max_tokens)
    rows = [e.ids for e in tokenizer.encode_batch(sentences)]
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    return torch.from_numpy(ids)


def embed(encoder: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The encoder's embeddings ``(N, d)`` float32 of ids ``(N, T)``, without gradients."""
    with torch.no_grad():
        parts = [encoder(ids[i : i + EMBED_BATCH]) for i in range(0, ids.shape[0], EMBED_BATCH)]
    return torch.cat(parts).to(torch.float32).contiguous()


@DATASETS.register(NAME)
def load_sentences(
    seed: int,
    data_dir: Path | None = None,
    *,
    calibration: int = DEFAULT_CALIBRATION,
    evaluation: int = DEFAULT_EVALUATION,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    reference: str = _hf.MINILM,
    max_bytes: int | None = None,
    **unknown,
) -> DataBundle:
    """Load corpus sentences with a reference encoder's embeddings as targets.

    Args:
        seed: Seed of the permutation that picks the two splits.
        data_dir: Folder of ``.txt`` files; default the ``fortunes`` package.
        calibration: Sentences in the train (calibration) split.
        evaluation: Sentences in the test (evaluation) split.
        max_tokens: Truncate each sentence to this many tokens, special tokens included.
        reference: The model whose tokenizer and pristine embeddings define the task:
            ``"minilm"`` or ``"hf:PATH"`` (a directory with ``tokenizer.json``).
        max_bytes: Read only the first this many bytes of the corpus (quick runs, tests).
        **unknown: Any other option is an error.

    Returns:
        A :class:`DataBundle` with ``x`` int64 ``(N, T)``, ``y`` float32 ``(N, d)``,
        ``num_classes = 0``, ``input_shape = (T,)``, ``embedding=True``;
        ``info["reference"]`` is the reference's canonical name (absolute for ``hf:``).

    Raises:
        PrunelabError: No corpus, no text, too few sentences, bad options, the extra
            missing, or a reference that is not a model with a tokenizer.
    """
    reject_unknown(NAME, unknown, OPTIONS)
    seed = check_seed(NAME, seed)
    calibration = check_count(NAME, "calibration", calibration)
    evaluation = check_count(NAME, "evaluation", evaluation)
    max_tokens = check_count(NAME, "max_tokens", max_tokens)
    if max_tokens < 3:
        raise PrunelabError(f"{NAME}: max_tokens must be at least 3, got {max_tokens}")
    if max_bytes is not None:
        max_bytes = check_count(NAME, "max_bytes", max_bytes)
    if not _hf.is_hf_name(reference):
        raise PrunelabError(f"{NAME}: reference must be 'minilm' or 'hf:PATH', got {reference!r}")
    _hf.model_dir(reference)  # a bad reference is told before the corpus is read
    raw, facts = read_corpus(data_dir, max_bytes, dataset=NAME)
    found = split_sentences(raw.decode("utf-8", errors="replace"))
    need = calibration + evaluation
    if len(found) < need:
        raise PrunelabError(
            f"{NAME}: corpus in {facts['directory']} gives {len(found)} sentence(s) of at least "
            f"{MIN_WORDS} words; need calibration + evaluation = {need} (more text, or fewer)"
        )
    order = rng(seed, 0).permutation(len(found))
    train_text = [found[i] for i in order[:calibration]]
    test_text = [found[i] for i in order[calibration:need]]
    tokenizer, tokenizer_pad = _hf.load_tokenizer(reference)
    encoder = _hf.load_encoder(reference)
    if tokenizer_pad is not None and tokenizer_pad != encoder.pad_id:
        raise PrunelabError(
            f"{NAME}: reference {reference!r}: tokenizer pads with id {tokenizer_pad}, the model "
            f"with {encoder.pad_id}"
        )
    ids = tokenize(tokenizer, train_text + test_text, max_tokens, encoder.pad_id)
    if encoder.max_positions and ids.shape[1] > encoder.max_positions:
        raise PrunelabError(
            f"{NAME}: reference {reference!r} takes {encoder.max_positions} tokens; "
            f"max_tokens={max_tokens} is longer"
        )
    targets = embed(encoder, ids)
    log.debug("%s: %d + %d sentences, T=%d, from %s", NAME, calibration, evaluation, ids.shape[1],
              facts)  # fmt: skip
    return DataBundle(
        name=NAME,
        train=(ids[:calibration].contiguous(), targets[:calibration].contiguous()),
        test=(ids[calibration:].contiguous(), targets[calibration:].contiguous()),
        num_classes=0,
        input_shape=(int(ids.shape[1]),),
        embedding=True,
        info={
            **facts,
            "reference": _hf.canonical_name(reference),
            "dim": int(targets.shape[1]),
            "pad_id": encoder.pad_id,
            "sentences": {"found": len(found), "train": calibration, "test": evaluation},
            "split": "train = calibration sentences, test = evaluation sentences (disjoint)",
            "text": {"train": train_text, "test": test_text},
        },
    )
