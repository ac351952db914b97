"""A tiny random BERT with a tiny WordPiece tokenizer, saved as a Hugging Face directory.

Shared by the ``minilm`` / ``hf:PATH`` / ``sentences`` tests (imported by bare name: the
test folders are not packages). The vocabulary is the special tokens, letters, digits and
punctuation, each also as a ``##`` continuation, so every lowercase ASCII word tokenises
(letter by letter) and no token is ``[UNK]``; the model is a 2-layer BERT of width 16.
"""

from __future__ import annotations

import socket
import string
from pathlib import Path

from prunelab import _hf

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SYMBOLS = list(string.ascii_lowercase + string.digits + string.punctuation)
VOCAB = SPECIALS + SYMBOLS + [f"##{c}" for c in SYMBOLS]

CORPUS = """The quick brown fox jumps over the lazy dog near the river bank.
A small cat sleeps on the warm mat all afternoon long.
Programs must be written for people to read, and only incidentally for machines.

Simplicity is prerequisite for reliability in every large system.
The best way to predict the future is to invent it yourself today!
Why do we park on the driveway and drive on the parkway?
An apple a day keeps the doctor away, or so they say.
Never trust a computer you cannot throw out of a window.
Old programmers never die, they just lose their memory.
Rain in the mountains turns the streams into loud rivers.

Every good boy deserves fruit and a little rest after lunch.
She sells sea shells by the sea shore on sunny days.
Time flies like an arrow but fruit flies like a banana.
A journey of a thousand miles begins with a single step.
The early bird catches the worm, but the second mouse gets the cheese.
Nothing is so permanent as a temporary solution to a problem.
Bright stars shine over the quiet village every clear night.
Good judgement comes from experience, and experience comes from bad judgement.
"""


def save_tiny_bert(path: Path, *, layers: int = 2, width: int = 16, seed: int = 0) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``tokenizer.json`` to ``path``."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    path.mkdir(parents=True, exist_ok=True)
    config = transformers.BertConfig(
        vocab_size=len(VOCAB), hidden_size=width, num_hidden_layers=layers,
        num_attention_heads=2, intermediate_size=2 * width, max_position_embeddings=64,
        pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.BertModel(config)
    with _hf._quiet(transformers):  # no "Writing model shards" bar
        model.save_pretrained(path)
    vocab = {tok: i for i, tok in enumerate(VOCAB)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.decoder = decoders.WordPiece()
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    tok.save(str(path / "tokenizer.json"))
    return path


def write_corpus(folder: Path) -> Path:
    """Two ``.txt`` files of short sentences (20 in all)."""
    folder.mkdir(parents=True, exist_ok=True)
    first, second = CORPUS.split("\n\nEvery")
    (folder / "a.txt").write_text(first)
    (folder / "b.txt").write_text("Every" + second)
    return folder


def block_sockets(monkeypatch) -> None:
    """Make every attempt to open a network connection raise."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
