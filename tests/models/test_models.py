"""Tests for the model registry: shapes, sizes, initialisation, specs, user models, weights."""

from __future__ import annotations

import json
import math
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.func import functional_call

from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.models import MODELS, build, build_from_spec, load_user_weights

ALL = ["fc5", "fc12", "lenet300", "lenet5", "convbn", "vgg11", "vgg16", "resnet20", "resnet18"]
BIG = {"fc12", "vgg11", "vgg16", "resnet18"}
CONV = ["lenet5", "convbn", "vgg11", "vgg16", "resnet20", "resnet18"]
GPT = ["gpt-tiny", "gpt", "gpt-large"]  # token sequences; tested in test_gpt.py
HF = ["minilm"]  # pretrained sentence encoder; tested in test_hf.py


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mlp_count(widths: list[int]) -> int:
    """Weights plus biases of a chain of Linear layers with the given widths."""
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


def bundle(input_shape: tuple[int, ...], num_classes: int) -> DataBundle:
    x = torch.zeros(2, *input_shape)
    y = torch.zeros(2, dtype=torch.long)
    return DataBundle("tiny", (x, y), (x, y), num_classes, input_shape)


def test_registry_holds_exactly_the_agreed_names():
    assert MODELS.names() == ALL + GPT + HF


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)], ids=["digits", "cifar"])
@pytest.mark.parametrize("name", ALL)
def test_every_model_builds_and_maps_batch_to_outputs(name, shape):
    model = build(name, input_shape=shape, output_dim=10).eval()
    batch = 2 if name in BIG else 5
    with torch.no_grad():
        out = model(torch.randn(batch, *shape))
    assert out.shape == (batch, 10)
    assert torch.isfinite(out).all()
    # Curvature needs a deterministic model in eval mode and graphs that survive double
    # backward: no dropout and no in-place activations anywhere.
    for module in model.modules():
        assert not isinstance(module, nn.Dropout | nn.Dropout2d | nn.AlphaDropout)
        assert not getattr(module, "inplace", False), f"{name}: in-place {module}"


def test_small_models_also_take_28x28_and_regression_outputs():
    for name in ["fc5", "lenet300", "lenet5", "convbn", "resnet20"]:
        model = build(name, bundle((1, 28, 28), num_classes=0)).eval()
        with torch.no_grad():
            assert model(torch.randn(3, 1, 28, 28)).shape == (3, 1)


def test_mlp_parameter_counts_match_the_layer_formula():
    cases = {
        "fc5": [784, 1000, 600, 300, 100, 10],
        "fc12": [784, 1000, 900, 800, 750, 700, 650, 600, 500, 400, 200, 100, 10],
        "lenet300": [784, 300, 100, 10],
    }
    for name, widths in cases.items():
        assert n_params(build(name, input_shape=(1, 28, 28), output_dim=10)) == mlp_count(widths)
    # The explicit fc5 formula spelled out once, as in paper 004.
    fc5 = 784 * 1000 + 1000 + 1000 * 600 + 600 + 600 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10
    assert n_params(build("fc5", input_shape=(784,), output_dim=10)) == fc5


def test_lenet5_has_the_classic_size_on_mnist_and_cifar():
    # conv(1->6,5x5) conv(6->16,5x5) then 16*5*5 -> 120 -> 84 -> 10, all with biases.
    def count(c: int) -> int:
        return (c * 6 * 25 + 6) + (6 * 16 * 25 + 16) + mlp_count([400, 120, 84, 10])

    assert n_params(build("lenet5", input_shape=(1, 28, 28), output_dim=10)) == count(1)
    assert n_params(build("lenet5", input_shape=(3, 32, 32), output_dim=10)) == count(3)


def test_resnet20_parameter_count_is_the_cifar_figure():
    def conv_bn(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + 2 * cout  # bias-free conv + BN weight and bias

    def block(cin: int, cout: int) -> int:
        shortcut = conv_bn(cin, cout, 1) if cin != cout else 0
        return conv_bn(cin, cout, 3) + conv_bn(cout, cout, 3) + shortcut

    expected = conv_bn(3, 16, 3) + 64 * 10 + 10
    cin = 16
    for width in (16, 32, 64):
        for _ in range(3):
            expected += block(cin, width)
            cin = width
    got = n_params(build("resnet20", input_shape=(3, 32, 32), output_dim=10))
    assert got == expected
    assert 0.26e6 < got < 0.28e6


def test_convbn_is_small_enough_for_cpu_experiments():
    assert n_params(build("convbn", input_shape=(3, 32, 32), output_dim=10)) < 100_000


def test_initialisation_is_kaiming_normal_with_zero_biases_and_unit_bn():
    fc5 = build("fc5", input_shape=(784,), output_dim=10)
    w = fc5.layers[0].weight.detach()  # 1000 x 784: std known to ~0.1%
    assert w.std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.01)
    assert abs(w.mean().item()) < 3 * math.sqrt(2 / 784) / math.sqrt(w.numel())
    res = build("resnet20", input_shape=(3, 32, 32), output_dim=10)
    conv = res.stages[2][1].conv1.weight.detach()  # 64 x 64 x 3 x 3, fan_in 576
    assert conv.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.03)
    for model in (fc5, res, build("lenet5", input_shape=(1, 8, 8), output_dim=10)):
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv2d) and module.bias is not None:
                assert torch.count_nonzero(module.bias) == 0
            if isinstance(module, nn.BatchNorm2d):
                assert torch.equal(module.weight, torch.ones_like(module.weight))
                assert torch.count_nonzero(module.bias) == 0


@pytest.mark.parametrize("name", ["fc5", "lenet5", "convbn", "resnet20", "vgg11"])
def test_build_from_spec_round_trip_gives_same_architecture_and_seeded_weights(name):
    torch.manual_seed(3)
    model = build(name, bundle((1, 8, 8), num_classes=10))
    spec = json.loads(json.dumps(model.prunelab_spec))  # must survive meta.json
    assert spec == {"name": name, "input_shape": [1, 8, 8], "output_dim": 10}
    torch.manual_seed(3)
    again = build_from_spec(spec)
    assert again.prunelab_spec == model.prunelab_spec
    a, b = model.state_dict(), again.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].shape == b[key].shape
        assert torch.equal(a[key], b[key]), key


def test_same_seed_same_weights_other_seed_other_weights():
    def weights(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        model = build("convbn", input_shape=(1, 8, 8), output_dim=10)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(weights(7), weights(7))
    assert not torch.equal(weights(7), weights(8))


def test_sizes_come_from_data_unless_given():
    data = bundle((1, 8, 8), num_classes=10)
    assert build("fc5", data).prunelab_spec["input_shape"] == [1, 8, 8]
    model = build("fc5", data, input_shape=(5,), output_dim=3)
    assert model.prunelab_spec == {"name": "fc5", "input_shape": [5], "output_dim": 3}
    assert model(torch.zeros(2, 5)).shape == (2, 3)


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(PrunelabError) as err:
        build("resnet50", input_shape=(3, 32, 32), output_dim=10)
    message = str(err.value)
    assert "'resnet50'" in message and "\n" not in message
    for name in ALL:
        assert name in message


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "input_shape and output_dim"),
        ({"input_shape": (1, 8, 8)}, "input_shape and output_dim"),
        ({"input_shape": (0, 8), "output_dim": 10}, "(0, 8)"),
        ({"input_shape": (), "output_dim": 10}, "()"),
        ({"input_shape": "1,8,8", "output_dim": 10}, "'1,8,8'"),
        ({"input_shape": (8.0,), "output_dim": 10}, "(8.0,)"),
        ({"input_shape": (8,), "output_dim": 0}, "got 0"),
        ({"input_shape": (8,), "output_dim": True}, "got True"),
    ],
)
def test_bad_sizes_are_rejected(kwargs, fragment):
    with pytest.raises(PrunelabError, match="must be|give a dataset") as err:
        build("fc5", **kwargs)
    assert fragment in str(err.value)


@pytest.mark.parametrize("name", CONV)
def test_conv_nets_refuse_flat_inputs(name):
    with pytest.raises(PrunelabError, match=r"\(C, H, W\), got \(64,\)"):
        build(name, input_shape=(64,), output_dim=10)


def test_build_from_spec_rejects_incomplete_specs():
    with pytest.raises(PrunelabError, match="output_dim"):
        build_from_spec({"name": "fc5", "input_shape": [64]})
    with pytest.raises(PrunelabError, match="dict"):
        build_from_spec(["fc5"])


USER_MODULE = """
import math
import torch.nn as nn

CALLS = []

def sized(input_shape, output_dim):
    CALLS.append((input_shape, output_dim))
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), output_dim))

def fixed():
    return nn.Linear(3, 2)

def only_output(output_dim, hidden=4):
    return nn.Linear(hidden, output_dim)

class Net(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.seen = kwargs
        self.fc = nn.Linear(kwargs["input_shape"][-1], kwargs["output_dim"])

    def forward(self, x):
        return self.fc(x)

def not_a_module():
    return 42

def broken():
    raise RuntimeError("boom")

VALUE = 3
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module ``prunelab_test_usernets`` importable for the duration of one test."""
    name = "prunelab_test_usernets"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    (tmp_path / "prunelab_test_badimport.py").write_text("raise ImportError('needs foo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    sys.modules.pop("prunelab_test_badimport", None)


def test_user_factory_with_sizes(user_module):
    model = build(f"{user_module}:sized", bundle((2, 3), num_classes=4))
    assert sys.modules[user_module].CALLS == [((2, 3), 4)]
    assert model(torch.zeros(5, 2, 3)).shape == (5, 4)
    assert model.prunelab_spec["name"] == f"{user_module}:sized"
    again = build_from_spec(json.loads(json.dumps(model.prunelab_spec)))
    assert [v.shape for v in again.state_dict().values()] == [
        v.shape for v in model.state_dict().values()
    ]


def test_user_factory_without_arguments_or_with_some(user_module):
    fixed = build(f"{user_module}:fixed", input_shape=(3,), output_dim=2)
    assert isinstance(fixed, nn.Linear) and fixed.weight.shape == (2, 3)
    partial = build(f"{user_module}:only_output", input_shape=(9,), output_dim=5)
    assert partial.weight.shape == (5, 4)
    net = build(f"{user_module}:Net", input_shape=(6,), output_dim=2)
    assert net.seen == {"input_shape": (6,), "output_dim": 2}


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("prunelab_no_such_module_xyz:f", "cannot import module 'prunelab_no_such_module_xyz'"),
        ("prunelab_test_badimport:f", "needs foo"),
        ("prunelab_test_usernets:missing", "has no attribute 'missing'"),
        ("prunelab_test_usernets:VALUE", "not callable"),
        ("prunelab_test_usernets:not_a_module", "returned int, not an nn.Module"),
        ("prunelab_test_usernets:broken", "boom"),
        ("prunelab_test_usernets:", "package.module:factory"),
        (":sized", "package.module:factory"),
        ("a:b:c", "package.module:factory"),
    ],
)
def test_bad_user_models_raise_naming_what_failed(user_module, ref, fragment):
    with pytest.raises(PrunelabError) as err:
        build(ref, input_shape=(3,), output_dim=2)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def _trained_looking_convbn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build("convbn", input_shape=(1, 8, 8), output_dim=3)
    for module in model.modules():  # non-trivial buffers, so loading them is checked too
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return model


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_load_user_weights_round_trip(tmp_path, suffix):
    source = _trained_looking_convbn(1)
    path = tmp_path / f"w{suffix}"
    state = {k: v.clone() for k, v in source.state_dict().items()}
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    target = _trained_looking_convbn(2)
    assert not torch.equal(target.classifier.weight, source.classifier.weight)
    assert load_user_weights(target, path) is target
    _assert_same_state(source, target)


def test_load_user_weights_accepts_common_wrappers(tmp_path):
    source = _trained_looking_convbn(1)
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "w.pt")
    target = load_user_weights(_trained_looking_convbn(2), tmp_path / "w.pt")
    for key, value in source.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(target.state_dict()[key], value), key


def test_load_user_weights_errors(tmp_path):
    model = build("fc5", input_shape=(64,), output_dim=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PrunelabError, match="does not exist"):
        load_user_weights(model, tmp_path / "none.pt")
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(PrunelabError, match=r"allowed: \.pt, \.pth, \.safetensors"):
        load_user_weights(model, tmp_path / "w.npz")

    other = build("fc5", input_shape=(784,), output_dim=10)
    torch.save(other.state_dict(), tmp_path / "shape.pt")
    with pytest.raises(PrunelabError) as err:
        load_user_weights(model, tmp_path / "shape.pt")
    assert "'layers.0.weight' has shape (1000, 784), model expects (1000, 64)" in str(err.value)

    state = dict(model.state_dict())
    del state["layers.2.bias"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(PrunelabError, match=r"lacks key 'layers.2.bias' \(model expects shape"):
        load_user_weights(model, tmp_path / "missing.pt")

    state = dict(model.state_dict(), extra=torch.zeros(2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "extra.safetensors"))
    with pytest.raises(PrunelabError, match="key 'extra' that the model does not have"):
        load_user_weights(model, tmp_path / "extra.safetensors")

    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(PrunelabError, match="does not hold a state_dict"):
        load_user_weights(model, tmp_path / "list.pt")

    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(PrunelabError, match="cannot read weights file"):
        load_user_weights(model, tmp_path / "junk.pt")
    # Every failure is detected before anything is copied: the model is untouched.
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("name", ["convbn", "resnet20"])
def test_double_backward_through_functional_call_matches_finite_differences(name, float64):
    torch.manual_seed(0)
    model = build(name, input_shape=(1, 8, 8), output_dim=3).eval()
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 1])
    params = {k: p.detach().clone().requires_grad_(True) for k, p in model.named_parameters()}
    names = list(params)
    v = {k: torch.randn_like(p) for k, p in params.items()}

    def loss_at(p: dict) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

    def dot(a, b) -> torch.Tensor:
        return sum((a[k] * b[k]).sum() for k in names)

    def grads(p: dict, create_graph: bool) -> dict:
        g = torch.autograd.grad(loss_at(p), [p[k] for k in names], create_graph=create_graph)
        return dict(zip(names, g, strict=True))

    g = grads(params, create_graph=True)
    hv = dict(zip(names, torch.autograd.grad(dot(g, v), [params[k] for k in names],
                                             create_graph=True), strict=True))  # fmt: skip
    third = torch.autograd.grad(dot(hv, v), [params[k] for k in names])  # d(vᵀHv)/dθ

    # Slow, obviously right reference: central differences of the gradient along v.
    eps = 1e-7  # small enough that no ReLU or max-pool switches branch

    def shifted(t: float) -> dict:
        return {k: (params[k].detach() + t * v[k]).requires_grad_(True) for k in names}

    g_plus, g_minus = grads(shifted(eps), False), grads(shifted(-eps), False)
    hv_fd = torch.cat([((g_plus[k] - g_minus[k]) / (2 * eps)).flatten() for k in names])
    hv_ad = torch.cat([hv[k].detach().flatten() for k in names])
    assert torch.allclose(hv_ad, hv_fd, rtol=1e-5, atol=1e-6 * hv_fd.abs().max().item())

    # Third order along v: d/dt [vᵀ H(θ + t v) v] at t=0, by differences of Hv.
    def vhv(p: dict) -> float:
        gp = grads(p, create_graph=True)
        hvp = torch.autograd.grad(dot(gp, v), [p[k] for k in names])
        return sum((h * v[k]).sum() for h, k in zip(hvp, names, strict=True)).item()

    eps3 = 1e-7
    fd3 = (vhv(shifted(eps3)) - vhv(shifted(-eps3))) / (2 * eps3)
    ad3 = sum((t * v[k]).sum() for t, k in zip(third, names, strict=True)).item()
    assert ad3 == pytest.approx(fd3, rel=1e-4, abs=1e-8)
