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
