"""The contract every registered criterion keeps, on every shared case it accepts.

The tests are parametrised over ``CRITERIA.names()`` when they are collected, so a newly
registered criterion is covered with no edit here (``test_a_new_criterion_...`` below
proves it with a throwaway criterion). The contract (methods.md §0 and §2,
``scores/base.py``):

1. **Layout**: one score tensor per prunable parameter, keyed and ordered as
   :func:`~prunelab.prunable.prunable_parameters` (the order sets the mask tie rule),
   each floating, detached, on the parameter's device and of its shape; nothing for
   other parameters (BatchNorm, biases unless the spec includes them).
2. **Finite** scores, also at already-pruned (zero) weights.
3. **The model is left as it was**: weights, buffers, train/eval flags, ``.grad``.
4. **Deterministic**: the same hyper-parameters (the same ``seed``) give bitwise
   identical scores whatever the global RNG state; a different ``seed`` may differ but
   keeps 1-3. Data-free criteria (``needs_data=False``) score with no batches; for the
   others data enter as a mean over examples (methods.md §0), so regrouping the same
   examples into other batches (one of a single example) changes nothing (to float
   tolerance).
5. **Masks**: ``Mask.from_scores(scores, p)`` keeps exactly ``round((1-p)·D)`` weights
   (``round((1-p)·D_l)`` per layer with ``scope="layer"``), and every survivor scores
   ``>=`` every weight pruned alongside it.
6. **Already-pruned weights never come back.** :func:`~prunelab.score` has no mask
   argument: a criterion scores the masked model as it is, and the library passes the
   previous mask to ``Mask.from_scores(..., previous=mask)``, which ranks its pruned
   weights below every score (methods.md's "scores ``-inf``", implemented as "ranked
   last", which also beats a criterion's own ``-inf``). Checked by scoring a masked copy
   of each case and building masks with ``previous``.
8. **Reconstruction** (criteria with ``Criterion.reconstruct``, e.g. ``sparsegpt``, which
   refit the kept weights once a mask is chosen): :func:`~prunelab.scores.reconstruct`
   returns the mask it applied, with the same count per layer and per output row as the
   mask it was given and no weight an earlier mask pruned; the model's pruned weights are
   exactly 0, its other parameters, buffers and modes unchanged; the same call on the
   same model gives identical weights.
7. **A refusal is clean**: a criterion may refuse an input it is not defined for
   (``cov_scaled`` off a single linear layer; curvature with a train-mode BatchNorm or
   an active Dropout), but only with a ``PrunelabError`` and with the model untouched;
   a train-mode model it accepts must keep 1-4 (minus the batching part).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import pytest
import torch
from score_cases import CASE_NAMES, TRAIN_MODE_CASE_NAMES, Case, make_case
from torch import nn

from prunelab.errors import PrunelabError
from prunelab.masks import Mask
from prunelab.prunable import prunable_parameters
from prunelab.scores import CRITERIA, Criterion, reconstruct, score

# Criteria defined only for particular models get the cases they accept; every other
# criterion, including any newly registered one, gets every case.
# ``test_restricted_criterion_refuses_other_cases`` checks that each restriction is a
# loud refusal (a PrunelabError), so nothing here hides a failure.
ACCEPTS = {
    # Paper 000's linear-model score: one nn.Linear on the raw inputs whose weight is the
    # only prunable parameter (cov_scaled.py refuses anything else).
    "cov_scaled": lambda case: case.kind == "linear" and not case.spec.include_bias,
}

# Extra hyper-parameter settings put through the same contract (defaults always run).
_CURVATURES = [{"curvature": c} for c in ("exact", "hutchinson", "empirical-fisher")]
VARIANTS = {
    # Every curvature diagonal; a temperature != 1 (the Tempered wrapper under the true
    # Fisher's cross-entropy check); the +gθ sign and the locality term.
    "obd": [*_CURVATURES, {"temperature": 200.0}],
    "taylor2": [*_CURVATURES, {"first_order_sign": "plus", "locality": 0.5}],
    "hutchinson_pai": [{"temperature": 200.0, "first_order_sign": "plus"}],
    "grasp": [{"temperature": 1.0}],
    "synflow": [{"double": True}],
    "cov_scaled": [{"centered": True}],
    "sparsegpt": [{"adaptive": False, "blocksize": 2, "damp": 0.1}],
}

# Variants run on one case of each kind (defaults run on every case), to stay fast.
VARIANT_CASES = ("mlp-with-bias", "convbn", "linear")

# Few probes keep this fast; estimator accuracy is tested in tests/curvature.
FAST = {"num_probes": 2}

SPARSITIES = (0.0, 0.25, 0.5, 0.8)
PREVIOUS_SPARSITY = 0.4  # the mask applied before re-scoring (per layer)
LATER_SPARSITIES = (0.5, 0.8)  # re-scored masks must shrink from it


# ---------------------------------------------------------------------------- helpers
def cases_for(name: str) -> list[str]:
    """The shared cases criterion ``name`` is run on (all, unless :data:`ACCEPTS` says)."""
    accepts = ACCEPTS.get(name, lambda case: True)
    return [c for c in CASE_NAMES if accepts(make_case(c))]


def contract_params() -> list:
    """``(criterion, hparams, case)`` for every registered criterion, read now."""
    out = []
    for name in CRITERIA.names():
        accepted = cases_for(name)
        for hp in [{}, *VARIANTS.get(name, [])]:
            label = ",".join(f"{k}={v}" for k, v in hp.items()) or "defaults"
            some = [c for c in accepted if c in VARIANT_CASES] or accepted
            for case in accepted if not hp else some:
                out.append(pytest.param(name, hp, case, id=f"{name}[{label}]-{case}"))
    return out


def _hparams(name: str, hp: dict) -> dict:
    fields = {f.name for f in dataclasses.fields(CRITERIA.get(name).hparams)}
    return {**{k: v for k, v in FAST.items() if k in fields}, **hp}


def run_score(name: str, case: Case, hp: dict, model: nn.Module | None = None) -> dict:
    """``score()`` as the library calls it; data only for ``needs_data`` criteria."""
    crit = CRITERIA.get(name)
    batches, loss_fn = (case.batches, case.loss_fn) if crit.needs_data else (None, None)
    model = case.model if model is None else model
    return score(model, name, batches, loss_fn, spec=case.spec, **_hparams(name, hp))


def _snapshot(model: nn.Module):
    state = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
    modes = [m.training for m in model.modules()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    flags = [p.requires_grad for p in model.parameters()]
    return state, modes, grads, flags


def check_unchanged(model: nn.Module, before) -> None:
    """Contract 3: scoring left weights, buffers, modes, flags and ``.grad`` alone."""
    state, modes, grads, flags = _snapshot(model)
    assert list(state) == list(before[0])
    for k, v in state.items():
        assert torch.equal(v, before[0][k]), f"scoring changed {k!r}"
    assert modes == before[1], "scoring changed train/eval flags"
    for g, g0 in zip(grads, before[2], strict=True):
        assert (g is None) == (g0 is None), "scoring left .grad behind"
        assert g is None or torch.equal(g, g0), "scoring changed .grad"
    assert flags == before[3], "scoring changed requires_grad"


def check_layout(scores: dict, case: Case, model: nn.Module) -> None:
    """Contracts 1-2: one finite, detached, same-shape tensor per prunable parameter."""
    params = prunable_parameters(model, case.spec)
    assert list(scores) == list(params), "keys must be the prunable set, in model order"
    for n, p in params.items():
        s = scores[n]
        assert isinstance(s, torch.Tensor), n
        assert s.shape == p.shape, f"{n}: score shape {tuple(s.shape)} != {tuple(p.shape)}"
        assert s.is_floating_point(), f"{n}: scores must be floating, got {s.dtype}"
        assert s.device == p.device, n
        assert not s.requires_grad, f"{n}: scores must be detached"
        assert bool(torch.isfinite(s).all()), f"{n}: non-finite scores"


def check_scores(name: str, case: Case, hp: dict) -> dict:
    """Contracts 1-3 on the case's model; returns the scores."""
    before = _snapshot(case.model)
    scores = run_score(name, case, hp)
    check_layout(scores, case, case.model)
    check_unchanged(case.model, before)
    return scores


def _same(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[n], b[n]) for n in a)


def check_deterministic(name: str, case: Case, hp: dict) -> None:
    """Contract 4: same hparams → identical scores whatever the global RNG state."""
    torch.manual_seed(1)
    first = run_score(name, case, hp)
    torch.manual_seed(2)
    torch.rand(5)
    assert _same(first, run_score(name, case, hp)), "same seed, different scores"
    if "seed" in {f.name for f in dataclasses.fields(CRITERIA.get(name).hparams)}:
        other = {**hp, "seed": hp.get("seed", 0) + 1}
        a = run_score(name, case, other)
        torch.manual_seed(3)
        assert _same(a, run_score(name, case, other)), "same seed, different scores"
        check_layout(a, case, case.model)


def check_batching(name: str, case: Case, hp: dict) -> None:
    """Contract 4b: data enter as a mean over examples, so regrouping them is a no-op."""
    if not CRITERIA.get(name).needs_data:
        return
    scores = run_score(name, case, hp)
    x = torch.cat([x for x, _ in case.batches])
    y = torch.cat([y for _, y in case.batches])
    regrouped = [(x[:1], y[:1]), (x[1:], y[1:])]  # a one-example batch and the rest
    other = run_score(name, dataclasses.replace(case, batches=regrouped), hp)
    for n, s in scores.items():
        torch.testing.assert_close(other[n], s, rtol=1e-9, atol=1e-12, msg=n)


def _survivors_outrank_pruned(scores: dict, keep: dict, avail: dict | None = None) -> None:
    flat_s = torch.cat([scores[n].reshape(-1).double() for n in scores])
    flat_k = torch.cat([keep[n].reshape(-1) for n in scores])
    if avail is not None:
        flat_a = torch.cat([avail[n].reshape(-1) for n in scores])
        flat_s, flat_k = flat_s[flat_a], flat_k[flat_a]
    if flat_k.any() and (~flat_k).any():
        assert flat_s[flat_k].min() >= flat_s[~flat_k].max(), "a pruned weight outranks a kept one"


def check_masks(name: str, case: Case, hp: dict) -> None:
    """Contract 5: exact counts and survivors >= pruned, global and per layer."""
    scores = check_scores(name, case, hp)
    total = case.dim
    for p in SPARSITIES:
        k = round((1 - p) * total)
        exact = Mask.from_scores(scores, p, "global", min_per_layer=0, spec=case.spec)
        assert list(exact.masks) == list(case.params)
        assert exact.nnz == k, f"p={p}: kept {exact.nnz}, want {k}"
        _survivors_outrank_pruned(scores, exact.masks)
        assert Mask.from_scores(scores, p, "global", spec=case.spec).nnz == k  # min_per_layer=1
        layer = Mask.from_scores(scores, p, "layer", min_per_layer=0, spec=case.spec)
        for n, m in layer.masks.items():
            assert int(m.sum()) == round((1 - p) * m.numel()), f"p={p}, layer {n}"
            _survivors_outrank_pruned({n: scores[n]}, {n: m})


def check_pruned(name: str, case: Case, hp: dict) -> None:
    """Contract 6: score a masked copy; masks built with ``previous`` never revive."""
    model = copy.deepcopy(case.model)
    gen = torch.Generator().manual_seed(5)
    draws = {
        n: torch.rand(p.shape, generator=gen, dtype=torch.float64) for n, p in case.params.items()
    }
    previous = Mask.from_scores(draws, PREVIOUS_SPARSITY, "layer", spec=case.spec)
    previous.apply(model)
    before = _snapshot(model)
    scores = run_score(name, case, hp, model=model)
    check_layout(scores, case, model)  # finite at the zeroed weights too
    check_unchanged(model, before)
    avail = previous.masks
    for p in LATER_SPARSITIES:
        for scope in ("global", "layer"):
            new = Mask.from_scores(scores, p, scope, previous=previous, min_per_layer=0)
            for n, m in new.masks.items():
                assert not bool((m & ~avail[n]).any()), f"{scope} p={p}: {n} revived a weight"
            if scope == "global":
                assert new.nnz == round((1 - p) * case.dim)
                _survivors_outrank_pruned(scores, new.masks, avail)
            else:
                for n, m in new.masks.items():
                    assert int(m.sum()) == round((1 - p) * m.numel())
                    _survivors_outrank_pruned({n: scores[n]}, {n: m}, {n: avail[n]})


def run_contract(name: str, hp: dict, case_name: str) -> None:
    """Every contract check, each on a fresh copy of the case."""
    for check in (check_deterministic, check_batching, check_masks, check_pruned):
        check(name, make_case(case_name), hp)


# ---------------------------------------------------------------------------- the contract
CONTRACT = contract_params()


@pytest.mark.parametrize(("name", "hparams", "case_name"), CONTRACT)
def test_deterministic(name, hparams, case_name):
    check_deterministic(name, make_case(case_name), hparams)


@pytest.mark.parametrize(("name", "hparams", "case_name"), CONTRACT)
def test_scores_do_not_depend_on_batching(name, hparams, case_name):
    check_batching(name, make_case(case_name), hparams)


@pytest.mark.parametrize(("name", "hparams", "case_name"), CONTRACT)
def test_layout_and_masks(name, hparams, case_name):
    """Contracts 1-3 and 5 (``check_masks`` starts with ``check_scores``)."""
    check_masks(name, make_case(case_name), hparams)


@pytest.mark.parametrize(("name", "hparams", "case_name"), CONTRACT)
def test_pruned_weights_never_come_back(name, hparams, case_name):
    check_pruned(name, make_case(case_name), hparams)


def check_reconstruction(name: str, case: Case, hp: dict) -> None:
    """Contract 8 on a model masked before (so earlier zeros must stay zeros)."""
    model = copy.deepcopy(case.model)
    gen = torch.Generator().manual_seed(7)
    draws = {
        n: torch.rand(p.shape, generator=gen, dtype=torch.float64) for n, p in case.params.items()
    }
    previous = Mask.from_scores(draws, PREVIOUS_SPARSITY, "row", spec=case.spec)
    previous.apply(model)
    scores = run_score(name, case, hp, model=model)
    mask = Mask.from_scores(scores, 0.6, "row", previous=previous, min_per_layer=0)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    twin = copy.deepcopy(model)
    used = reconstruct(model, name, mask, case.batches, **_hparams(name, hp))
    assert used is not None
    assert modes == [m.training for m in model.modules()]
    prunable = prunable_parameters(model, case.spec)
    for n, keep in used.masks.items():
        given = mask.masks[n]
        assert keep.shape == given.shape
        rows = (lambda t: t.reshape(t.shape[0], -1)) if keep.dim() > 1 else (lambda t: t[None])
        assert torch.equal(rows(keep).sum(1), rows(given).sum(1)), f"{n}: counts per row changed"
        assert not bool((keep & ~previous.masks[n]).any()), f"{n}: revived a pruned weight"
        assert bool((prunable[n].detach()[~keep] == 0).all()), f"{n}: pruned weight not zero"
    for k, v in model.state_dict().items():
        if k not in prunable:
            assert torch.equal(v, state[k]), f"reconstruction changed {k!r}"
    again = reconstruct(twin, name, mask, case.batches, **_hparams(name, hp))
    assert again.equal(used)
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{k}: not deterministic"


RECONSTRUCT = [p for p in CONTRACT if CRITERIA.get(p.values[0]).reconstruct is not None]


@pytest.mark.parametrize(("name", "hparams", "case_name"), RECONSTRUCT)
def test_reconstruction_keeps_the_mask_counts_and_earlier_zeros(name, hparams, case_name):
    check_reconstruction(name, make_case(case_name), hparams)


@pytest.mark.parametrize("name", CRITERIA.names())
def test_every_criterion_gets_a_case(name):
    assert cases_for(name), f"criterion {name!r} accepts none of the shared cases"


@pytest.mark.parametrize(
    ("name", "case_name"),
    [(n, c) for n in ACCEPTS for c in CASE_NAMES if c not in cases_for(n)],
)
def test_restricted_criterion_refuses_other_cases(name, case_name):
    case = make_case(case_name)
    before = _snapshot(case.model)
    with pytest.raises(PrunelabError):
        run_score(name, case, {})
    check_unchanged(case.model, before)


@pytest.mark.parametrize("case_name", TRAIN_MODE_CASE_NAMES)
@pytest.mark.parametrize("name", CRITERIA.names())
def test_train_mode_model_is_refused_cleanly_or_scored_by_the_contract(name, case_name):
    """Contract 7 on the train-mode cases (every criterion, no selection)."""
    case = make_case(case_name)
    before = _snapshot(case.model)
    try:
        run_score(name, case, {})
    except PrunelabError:
        check_unchanged(case.model, before)
        return
    check_scores(name, make_case(case_name), {})
    check_deterministic(name, make_case(case_name), {})


def test_variants_name_registered_criteria_and_valid_hparams():
    for name, variants in [*VARIANTS.items(), *((n, []) for n in ACCEPTS)]:
        crit = CRITERIA.get(name)
        for hp in variants:
            crit.make_hparams(**_hparams(name, hp))


# Documented behaviour at a zeroed weight, beyond the contract: every score in methods.md
# §2 but ``random`` has a factor θ_i (the locality term ½λθ² too), so a pruned weight
# scores exactly 0 and, with a non-negative score, cannot outrank a live one even
# without ``previous``. Not part of the contract: a new criterion need not be listed.
THETA_FACTOR = (
    "magnitude", "taylor1", "obd", "taylor2", "cov_scaled", "snip", "grasp", "synflow",
    "fisher_pai", "hutchinson_pai",
)  # fmt: skip


@pytest.mark.parametrize("name", THETA_FACTOR)
def test_zeroed_weights_score_zero(name):
    case = make_case(cases_for(name)[0])
    model = copy.deepcopy(case.model)
    previous = Mask.from_scores(run_score("magnitude", case, {}), 0.5, spec=case.spec)
    previous.apply(model)
    for hp in [{}, *VARIANTS.get(name, [])]:
        scores = run_score(name, case, hp, model=model)
        for n, keep in previous.masks.items():
            assert bool((scores[n][~keep] == 0).all()), f"{name} {hp}: {n}"


def test_score_cases_are_the_shared_bank(score_case):
    """The ``score_case`` fixture serves every shared case; each is tiny and deterministic."""
    assert not any(m.training for m in score_case.model.modules())
    assert 0 < score_case.dim <= 120
    assert all(p.dtype == torch.float64 for p in score_case.model.parameters())


# ---------------------------------------------------------------------------- new criteria
@dataclass(frozen=True)
class ToyHparams:
    """A throwaway criterion's hyper-parameters."""

    seed: int = 0


def _toy(model, params, batches, loss_fn, hp: ToyHparams):
    """``|θ|·(1 + mean|x|)`` plus seeded noise: data-dependent and stochastic."""
    xs = torch.cat([x.reshape(-1) for x, _ in batches])
    gen = torch.Generator().manual_seed(hp.seed)
    out = {}
    for n, p in params.items():
        noise = torch.rand(p.shape, generator=gen, dtype=torch.float64).to(p)
        out[n] = p.detach().abs() * (1 + xs.abs().mean()) + 1e-3 * noise
    return out


@pytest.fixture
def register(monkeypatch):
    """Register a criterion for one test (the "one registry line"), removed afterwards."""

    def add(name: str, fn, needs_data: bool = True, hparams: type = ToyHparams) -> str:
        monkeypatch.setitem(CRITERIA._items, name, Criterion(name, fn, hparams, needs_data, "t"))
        return name

    return add


def test_a_new_criterion_is_covered_by_one_registry_line(register):
    name = register("toy", _toy)
    # The collection-time parametrisation reads the registry, so "toy" is in it with every
    # shared case, and the contract checks pass on it.
    ids = [p.id for p in contract_params() if p.values[0] == name]
    assert ids == [f"toy[defaults]-{c}" for c in CASE_NAMES]
    for case_name in cases_for(name):
        run_contract(name, {}, case_name)


def _bad_key(model, params, batches, loss_fn, hp):
    out = _toy(model, params, batches, loss_fn, hp)
    extra = {n: p.detach().abs() for n, p in model.named_parameters() if n not in params}
    return {**out, **extra}  # scores non-prunable parameters too


def _bad_shape(model, params, batches, loss_fn, hp):
    return {n: s.reshape(-1) for n, s in _toy(model, params, batches, loss_fn, hp).items()}


def _bad_unseeded(model, params, batches, loss_fn, hp):
    return {n: torch.rand(p.shape, dtype=p.dtype) for n, p in params.items()}  # global RNG


def _bad_mutates(model, params, batches, loss_fn, hp):
    model.train()  # leaves the model in another mode
    return _toy(model, params, batches, loss_fn, hp)


def _bad_graph(model, params, batches, loss_fn, hp):
    return {n: p.abs() for n, p in params.items()}  # not detached


@pytest.mark.parametrize(
    ("fn", "check"),
    [
        (_bad_key, check_scores),
        (_bad_shape, check_scores),
        (_bad_unseeded, check_deterministic),
        (_bad_mutates, check_scores),
        (_bad_graph, check_scores),
    ],
)
def test_contract_catches_broken_criteria(register, fn, check):
    name = register("broken", fn)
    with pytest.raises(AssertionError):
        check(name, make_case("convbn"), {})  # has BatchNorm parameters, not prunable
