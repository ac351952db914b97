import json

import pytest
import torch

import prunelab
from prunelab import checkpoint
from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.scores import score


@pytest.fixture
def pruned(tmp_path):
    data = prunelab.data.load("digits", seed=0)
    torch.manual_seed(0)
    model = prunelab.models.build("convbn", data)
    with torch.no_grad():  # non-trivial BN statistics must survive the round trip too
        model.train()(data.train[0][:64])
    model.eval()
    mask = Mask.from_scores(score(model, "magnitude"), 0.7)
    mask.apply(model)
    return model, mask, tmp_path / "ckpt"


def test_round_trip_is_bit_exact(pruned):
    model, mask, path = pruned
    meta = checkpoint.save(path, model, mask, {"seed": 3})
    assert meta["nnz"] == mask.nnz and meta["seed"] == 3
    model2, mask2, meta2 = checkpoint.load(path)
    s1, s2 = model.state_dict(), model2.state_dict()
    assert s1.keys() == s2.keys()
    for k in s1:
        assert s1[k].dtype == s2[k].dtype
        assert torch.equal(s1[k], s2[k]), k
    assert mask.equal(mask2)
    assert meta2["model"] == model.prunelab_spec
    assert list(mask2.masks) == list(mask.masks)  # order decides ties, so it must survive


def test_no_half_written_checkpoint_on_error(pruned, monkeypatch):
    model, mask, path = pruned

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(checkpoint, "atomic_write_json", boom)
    with pytest.raises(RuntimeError):
        checkpoint.save(path, model, mask)
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_corrupt_files_give_clear_errors(pruned):
    model, mask, path = pruned
    checkpoint.save(path, model, mask)
    (path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(PrunelabError, match="corrupt checkpoint file"):
        checkpoint.load(path)
    checkpoint.save(path, model, mask)
    (path / "meta.json").write_text("{ not json")
    with pytest.raises(PrunelabError, match="corrupt meta.json"):
        checkpoint.load(path)


def test_unknown_architecture_and_shape_mismatch(pruned):
    model, mask, path = pruned
    checkpoint.save(path, model, mask)
    meta = json.loads((path / "meta.json").read_text())
    meta["model"]["name"] = "alexnet9000"
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PrunelabError, match="unknown model 'alexnet9000'"):
        checkpoint.load(path)
    meta["model"]["name"] = "convbn"
    meta["model"]["output_dim"] = 7
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PrunelabError, match="shape mismatch"):
        checkpoint.load(path)


def test_missing_directory_and_files(tmp_path, pruned):
    with pytest.raises(PrunelabError, match="does not exist"):
        checkpoint.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PrunelabError, match="not a prunelab checkpoint"):
        checkpoint.load(tmp_path / "empty")
    model, mask, path = pruned
    checkpoint.save(path, model, mask)
    (path / "masks.safetensors").unlink()
    with pytest.raises(PrunelabError, match="missing masks.safetensors"):
        checkpoint.load(path)


def test_output_dir_guard(tmp_path, pruned):
    model, mask, path = pruned
    checkpoint.save(path, model, mask, {"run_id": "a"})
    assert checkpoint.check_output_dir(path, "a") == path  # same run may be replaced
    with pytest.raises(PrunelabError, match="already holds a different run"):
        checkpoint.check_output_dir(path, "b")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(PrunelabError, match="different run"):
        checkpoint.check_output_dir(other, "a")
    assert checkpoint.check_output_dir(other, "a", force=True) == other


# ------------------------------------------------ models still carrying torch.nn.utils.prune hooks
def _hooked_fc5():
    torch.manual_seed(0)
    model = prunelab.models.build("fc5", input_shape=(64,), output_dim=10)
    layers = [(m, "weight") for m in model.modules() if isinstance(m, torch.nn.Linear)]
    torch.nn.utils.prune.global_unstructured(
        layers, pruning_method=torch.nn.utils.prune.L1Unstructured, amount=0.8
    )
    return model


def test_hooked_model_is_saved_folded_and_loads(tmp_path, caplog):
    from prunelab.masks import torch_prune_hooks

    model = _hooked_fc5()
    x = torch.randn(5, 64)
    want = model(x)
    hooks_mask = Mask.from_torch_prune(model)
    with caplog.at_level("WARNING"):
        meta = checkpoint.save(tmp_path / "a", model)  # no mask: the hooks' masks are it
    assert "adopted torch.nn.utils.prune" in caplog.text
    assert meta["torch_prune_adopted"] == [n for n in hooks_mask.masks]
    assert torch_prune_hooks(model)  # save does not change the caller's model
    loaded, mask, meta2 = checkpoint.load(tmp_path / "a")
    assert mask.equal(hooks_mask) and meta2["nnz"] == hooks_mask.nnz
    assert abs(mask.sparsity - 0.8) < 1e-3
    assert torch.equal(loaded(x), want)  # the hooks' zeros survive, bit for bit

    # With an explicit mask the saved mask (and the weights) are the intersection.
    other = Mask.from_scores(score(model, "random", seed=1), 0.5)
    meta = checkpoint.save(tmp_path / "b", model, other)
    loaded, mask, _ = checkpoint.load(tmp_path / "b")
    assert mask.equal(other & hooks_mask) and meta["nnz"] == (other & hooks_mask).nnz
    assert Mask.from_model_zeros(loaded).equal(other & hooks_mask)


def test_save_refuses_what_load_would_reject(tmp_path):
    from torch.nn.utils import parametrize

    class Double(torch.nn.Module):
        def forward(self, w):
            return 2 * w

    model = prunelab.models.build("fc5", input_shape=(64,), output_dim=10)
    parametrize.register_parametrization(model.get_submodule("layers.0"), "weight", Double())
    with pytest.raises(PrunelabError, match="parametriz"):
        checkpoint.save(tmp_path / "p", model)
    assert not (tmp_path / "p").exists()

    model = prunelab.models.build("fc5", input_shape=(64,), output_dim=10)
    bad = Mask.dense(prunelab.models.build("fc5", input_shape=(32,), output_dim=10))
    with pytest.raises(PrunelabError, match="does not match parameter shape"):
        checkpoint.save(tmp_path / "m", model, bad)
    assert not (tmp_path / "m").exists()
