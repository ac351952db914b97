"""Spectral pruning limit of a trained model (paper 004, methods.md §4.1).

:func:`predict_limit` runs three steps:

* **measure inputs** — :func:`~prunelab.limits._inputs.measure_limit_inputs`: the
  prunable weights, ``ε``, the curvature batches, the null-space mass and the curvature
  operator restricted to the remaining weights (items 1–3 below);
* **build measures** — :func:`~prunelab.limits._spectra.build_measures`: SLQ, one
  :class:`~prunelab.curvature.SpectralMeasure` per seed (item 4);
* **estimate** — :func:`~prunelab.limits._estimate.estimate_from_measures`: the
  crossings of the pure math in :mod:`prunelab.limits._crossing`, assembled into a
  :class:`~prunelab.limits.LimitEstimate` with its diagnostics.

1. **Weights**: the prunable set (``spec``); exact zeros are treated as already pruned.
2. **ε**: by default (``"batch-std"``) 004's choice, the standard deviation (``ddof=0``)
   of the mean training loss over consecutive full mini-batches of 128 examples of the
   whole training split, unshuffled, dense model in ``eval()`` (an incomplete last batch
   is dropped: its smaller size would inflate the spread). ``"train-loss"``: the mean
   training loss. Any ``ε > 0`` can be passed instead; the source is recorded. An ℓ1
   training penalty (LOMP) is left out of the loss on purpose: it adds no curvature
   (almost everywhere) and the same constant to every batch, so neither ``H`` nor the
   batch-std ``ε`` would change.
3. **Null-space mass** (``zero_mass="auto"`` = ``"jacobian"``): a prunable weight whose
   output-Jacobian column ``∂f(x_n)/∂θ_i`` is zero on every curvature example has a zero
   Hessian row and column (dead ReLU unit, always-zero input, unit whose outgoing weights
   are all pruned): the loss is locally flat along it. We estimate
   ``c_i = Σ_n ‖∂f(x_n)/∂θ_i‖²`` unbiasedly with Gaussian output probes
   (``E[(uᵀJ_i)²] = ‖J_i‖²``; an exactly zero column gives exactly 0) and call weight
   ``i`` null when ``c_i ≤ JACOBIAN_TOL · mean(c)``: its curvature is then ~1e-8 of a
   typical weight's, so ``1/(1 + R²λ/(2ε)) ≈ 1`` at any relevant ``R``. The null
   fraction ``z`` is an exact point mass, and SLQ runs on the Hessian block of the other
   weights only, so Lanczos spends no nodes on it: ``ρ = z + (1 − z)·ρ_SLQ``.
   ``"ritz"``: SLQ on the full block; Ritz values with ``|λ| ≤ max|λ| / m²`` (below the
   spacing of ``m`` Lanczos nodes at the spectrum's edge, i.e. unresolved) are moved
   into the point mass. A float: ``z`` given by the user, the measure taken as the rest.
   ``"none"`` or ``0``: no point mass.
4. **Spectrum**: SLQ (``num_seeds`` seeds × ``num_runs`` Rademacher runs × ``num_iters``
   Lanczos steps) of the Hessian over ``samples`` training examples in batches of
   ``batch_size``, unshuffled, model in ``eval()``; ``|λ|`` for negative eigenvalues
   (``curvature="ggn"`` uses the positive semi-definite Gauss-Newton matrix instead).
   Diagnostics in ``settings``: ``p̂`` after ``m/2`` and ``m`` steps (``"convergence"``)
   and from the Gauss ``m−1`` / anti-Gauss ``m`` rules (``"quadrature_bracket"``, see
   :mod:`prunelab.curvature.quadrature`); a gap above 2 points is logged as a warning,
   because the seed ``spread`` does not contain this quadrature error.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from prunelab._evaluate import restore_modes, save_modes
from prunelab.curvature import QUADRATURES
from prunelab.data.base import DataBundle
from prunelab.errors import PrunelabError
from prunelab.limits._estimate import LimitEstimate, estimate_from_measures
from prunelab.limits._inputs import EPS_RULES, LimitInputs, measure_limit_inputs
from prunelab.limits._spectra import SeedMeasures, build_measures
from prunelab.limits.cosine import cosine_curve, cosine_rule
from prunelab.limits.settings import LimitSettings
from prunelab.prunable import PrunableSpec, prunable_parameters

METHODS = ("gaussian-width", "cosine")
ZERO_MASS_METHODS = ("auto", "jacobian", "ritz", "none")
CURVATURES = ("hessian", "ggn")


def _check_args(method, eps, zero_mass, num_iters, num_runs, num_seeds, samples, batch_size):
    if method not in METHODS:
        raise PrunelabError(f"unknown limit method {method!r}; valid choices: {', '.join(METHODS)}")
    if eps is not None and eps not in EPS_RULES:
        e = float(eps) if isinstance(eps, int | float) and not isinstance(eps, bool) else None
        if e is None or not (math.isfinite(e) and e > 0):
            raise PrunelabError(
                f"eps must be a number > 0 or one of {', '.join(EPS_RULES)}, got {eps!r}"
            )
    if isinstance(zero_mass, str):
        if zero_mass not in ZERO_MASS_METHODS:
            raise PrunelabError(
                f"unknown zero_mass {zero_mass!r}; valid: {', '.join(ZERO_MASS_METHODS)} "
                "or a fraction in [0, 1)"
            )
    elif isinstance(zero_mass, bool) or not (
        isinstance(zero_mass, int | float) and 0.0 <= zero_mass < 1.0
    ):
        raise PrunelabError(
            f"zero_mass must be a method name or a fraction in [0, 1), got {zero_mass!r}"
        )
    for name, v in (
        ("num_iters", num_iters),
        ("num_runs", num_runs),
        ("num_seeds", num_seeds),
        ("samples", samples),
        ("batch_size", batch_size),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise PrunelabError(f"{name} must be an integer >= 1, got {v!r}")


def _cosine_estimate(model: nn.Module, spec: PrunableSpec | None) -> LimitEstimate:
    rule = cosine_rule(model, spec=spec)
    w = torch.cat([p.detach().reshape(-1) for p in prunable_parameters(model, spec).values()])
    p = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64)
    return LimitEstimate(
        method="cosine",
        p_hat=rule.p_star,
        lower=rule.p_safe,
        upper=rule.p_star,
        trace_lower=None,
        curve={"p": p.tolist(), "cos": cosine_curve(model, p, spec).tolist()},
        eps=None,
        zero_mass=0.0,
        p_hat_without_zero_mass=rule.p_star,
        spread=0.0,
        p_hat_runs=[rule.p_star],
        initial_sparsity=float((w == 0).double().mean()),
        num_weights=w.numel(),
        settings={"cosine_rule": rule.to_dict()},
    )


def predict_limit(
    model: nn.Module,
    data: DataBundle,
    method: str = "gaussian-width",
    *,
    eps: float | str | None = None,
    num_iters: int = LimitSettings.num_iters,
    num_runs: int = LimitSettings.num_runs,
    num_seeds: int = LimitSettings.num_seeds,
    samples: int = LimitSettings.samples,
    batch_size: int = LimitSettings.batch_size,
    seed: int = 0,
    zero_mass: str | float = LimitSettings.zero_mass,
    spec: PrunableSpec | None = None,
    loss_fn=None,
    curve_points: int = 1001,
    quadrature: str = "gauss",
    curvature: str = "hessian",
) -> LimitEstimate:
    """Predict the largest removable fraction of the prunable weights.

    Args:
        model: Trained network (its train/eval flags are restored afterwards).
        data: Its dataset; the training split feeds curvature and the default ``ε``.
        method: ``"gaussian-width"`` (004) or ``"cosine"`` (003's ``p*``, ``lower=p_safe``).
        eps: Loss tolerance ``ε > 0``, or a rule name: ``"batch-std"`` (default, 004's
            spread of mini-batch training losses) or ``"train-loss"`` (module docstring).
        num_iters: Lanczos steps ``m`` per run (capped at the operator's dimension).
        num_runs: Rademacher runs per SLQ seed.
        num_seeds: SLQ seeds; the spread of ``p̂`` over them is reported.
        samples: Training examples for the Hessian (the first ``samples``, unshuffled).
        batch_size: Batch size of the Hessian-vector products (memory only).
        seed: Base seed of the SLQ seeds and Jacobian probes.
        zero_mass: ``"auto"`` (= ``"jacobian"``), ``"jacobian"``, ``"ritz"``, ``"none"`` or
            a fraction in ``[0, 1)``; see the module docstring.
        spec: Prunable-set rule (also the Hessian's dimension).
        loss_fn: Mean-reduced ``(output, y) -> loss``; default ``prunelab.train.loss_function``.
        curve_points: Points of the reported ``ρ(R(p))`` curve.
        quadrature: ``"gauss"`` (plain SLQ, default) or ``"averaged"`` (Gauss ``m−1`` +
            anti-Gauss ``m``); see :mod:`prunelab.curvature.quadrature`.
        curvature: ``"hessian"`` (004) or ``"ggn"`` (generalised Gauss-Newton: positive
            semi-definite, so no ``|λ|`` folding of negative eigenvalues).

    Returns:
        A :class:`~prunelab.limits.LimitEstimate` (sparsities of the whole prunable set).

    Raises:
        PrunelabError: Bad method / ``eps`` / ``zero_mass`` / counts, or a zero default ``ε``.
    """
    _check_args(method, eps, zero_mass, num_iters, num_runs, num_seeds, samples, batch_size)
    if curvature not in CURVATURES:
        raise PrunelabError(
            f"unknown curvature {curvature!r}; valid choices: {', '.join(CURVATURES)}"
        )
    if quadrature not in QUADRATURES:
        raise PrunelabError(
            f"unknown quadrature {quadrature!r}; valid choices: {', '.join(QUADRATURES)}"
        )
    if method == "cosine":
        return _cosine_estimate(model, spec)
    modes = save_modes(model)
    model.eval()
    try:  # the operator runs the model: eval() until the spectrum is measured
        inputs = measure_limit_inputs(
            model,
            data,
            eps=eps,
            samples=samples,
            batch_size=batch_size,
            seed=seed,
            zero_mass=zero_mass,
            spec=spec,
            loss_fn=loss_fn,
            curvature=curvature,
        )
        spectra = build_measures(
            inputs.operator, num_iters, num_runs, num_seeds, seed=seed, quadrature=quadrature
        )
    finally:
        restore_modes(modes)
    settings = _settings(inputs, spectra, num_iters, num_runs, batch_size, curvature, spec)
    return estimate_from_measures(
        inputs.weights,
        spectra,
        inputs.eps,
        inputs.zero_mass,
        ritz=inputs.zero_mass_method == "ritz",
        curve_points=curve_points,
        settings=settings,
    )


def _settings(
    inputs: LimitInputs,
    spectra: SeedMeasures,
    num_iters: int,
    num_runs: int,
    batch_size: int,
    curvature: str,
    spec: PrunableSpec | None,
) -> dict:
    """What :attr:`LimitEstimate.settings` records of the inputs and the spectrum."""
    mode = inputs.zero_mass_method
    settings = {
        "num_iters": spectra.num_iters,
        "num_iters_requested": num_iters,
        "quadrature": spectra.quadrature,
        "curvature": curvature,
        "num_runs": num_runs,
        "num_seeds": len(spectra.seeds),
        "seeds": spectra.seeds,
        "samples": inputs.num_samples,
        "batch_size": batch_size,
        "eps_source": inputs.eps_source,
        "zero_mass_method": mode if isinstance(mode, str) else "given",
        "hessian_dim": inputs.operator.dim,
        "prunable_set": (spec or PrunableSpec()).describe(),
    }
    if inputs.already_pruned:
        settings["note"] = (
            f"model already pruned ({1 - float(inputs.live.double().mean()):.4g} of the "
            "weights are 0): predicted for the remaining weights, reported as sparsity of "
            "the whole set"
        )
    return settings
