"""Data-dependent pruning-at-initialisation scores: snip, grasp, fisher_pai, hutchinson_pai.

* ``snip``: ``|θ_i g_i|`` (``= |∂L/∂m_i|`` at ``m = 1``), the mean gradient at the
  current point.
* ``grasp``: keep the largest ``θ ⊙ (H g)``, with ``g`` and ``H`` of the loss on
  ``logits / T`` (``T = 200`` as published). ``g`` is computed first and held fixed
  (stop-gradient); ``H g`` is one exact Hessian-vector product (double backward). This
  is Synaptic-Flow's convention, equivalent to the GraSP paper removing the largest
  ``−θ ⊙ Hg``; paper 002's code keeps the largest ``−θ ⊙ Hg``, which is the opposite
  ranking (importance notes, pitfall 10).
* ``fisher_pai``: OBD with the empirical-Fisher diagonal, ``½ F_ii θ_i²`` (paper 002 "FP").
* ``hutchinson_pai``: Taylor-2 with a Hutchinson Hessian diagonal,
  ``|−g_i θ_i + ½ ĥ_ii θ_i²|`` (paper 002 "HTS"). Paper 002 used ``temperature=200`` and
  the ``+gθ`` sign; the defaults here are ``T = 1`` and ``−gθ`` (methods.md §2), and both
  are settable to reproduce it.

All are meant to be called at initialisation (use :func:`prunelab.procedures.at_init`)
but work at any point. Means over examples are used throughout (paper 002 sums over
batches; the ranking of a single score does not change, a combined one would).
"""

from __future__ import annotations

from dataclasses import dataclass

from prunelab.curvature import Hessian
from prunelab.scores._common import (
    FIRST_ORDER_SIGNS,
    add_locality,
    check_choice,
    check_int,
    check_nonneg,
    check_positive,
    flatten,
    mean_gradient,
    require_params,
    tempered,
    unflatten,
)
from prunelab.scores._curvature_diag import NEGATIVE_CURVATURE
from prunelab.scores.base import CRITERIA, Criterion
from prunelab.scores.taylor import first_order_scores, second_order_scores


@dataclass(frozen=True)
class SnipHparams:
    """Hyper-parameters of ``snip``.

    Attributes:
        temperature: Outputs are divided by ``T`` before the loss; 1 as published.
    """

    temperature: float = 1.0

    def __post_init__(self) -> None:
        check_positive(self.temperature, "temperature")


@dataclass(frozen=True)
class GraspHparams:
    """Hyper-parameters of ``grasp``.

    Attributes:
        temperature: Outputs are divided by ``T`` before the loss; 200 as published
            (GraSP paper and Synaptic-Flow).
    """

    temperature: float = 200.0

    def __post_init__(self) -> None:
        check_positive(self.temperature, "temperature")


@dataclass(frozen=True)
class FisherPaiHparams:
    """Hyper-parameters of ``fisher_pai`` (``½ F θ²``, empirical Fisher).

    Attributes:
        temperature: Outputs are divided by ``T`` before the loss; 1 (paper 002's FP
            uses the plain loss).
        locality: ``λ >= 0`` of the ``½λθ²`` term; 0 = the raw score.
    """

    temperature: float = 1.0
    locality: float = 0.0

    def __post_init__(self) -> None:
        check_positive(self.temperature, "temperature")
        check_nonneg(self.locality, "locality")


@dataclass(frozen=True)
class HutchinsonPaiHparams:
    """Hyper-parameters of ``hutchinson_pai`` (``|−gθ + ½ ĥ θ²|``, Hutchinson ``ĥ``).

    Attributes:
        num_probes: Rademacher probes; 10 as in paper 002 (>= 2 for a standard error).
        seed: Probe seed (same seed → same scores).
        temperature: Outputs are divided by ``T`` before the loss; default 1, paper 002
            used 200 (it rescales the Gauss-Newton and residual parts of ``H``
            differently, so the ranking depends on it).
        first_order_sign: ``minus`` (default, the true Taylor change) | ``plus`` (paper
            002's code, for reproduction only).
        negative_curvature: ``keep`` (default: sign kept inside ``|·|``) | ``clamp`` | ``abs``.
        locality: ``λ >= 0`` of the ``½λθ²`` term; 0 = the raw score.
    """

    num_probes: int = 10
    seed: int = 0
    temperature: float = 1.0
    first_order_sign: str = "minus"
    negative_curvature: str = "keep"
    locality: float = 0.0

    def __post_init__(self) -> None:
        check_int(self.num_probes, "num_probes", 2)
        check_int(self.seed, "seed", 0)
        check_positive(self.temperature, "temperature")
        check_choice(self.first_order_sign, "first_order_sign", FIRST_ORDER_SIGNS)
        check_choice(self.negative_curvature, "negative_curvature", NEGATIVE_CURVATURE)
        check_nonneg(self.locality, "locality")


def _snip(model, params, batches, loss_fn, hp: SnipHparams):
    require_params(params)
    return first_order_scores(model, params, batches, loss_fn, hp.temperature)


def _grasp(model, params, batches, loss_fn, hp: GraspHparams):
    require_params(params)
    g = mean_gradient(model, params, batches, loss_fn, hp.temperature)
    module, names = tempered(model, list(params), hp.temperature)
    hg = Hessian(module, loss_fn, batches, params=names) @ flatten(g)
    hg = unflatten(hg, params)
    return {n: p.detach() * hg[n] for n, p in params.items()}


def _fisher_pai(model, params, batches, loss_fn, hp: FisherPaiHparams):
    require_params(params)
    scores = second_order_scores(
        model,
        params,
        batches,
        loss_fn,
        curvature="empirical-fisher",
        num_probes=2,
        seed=0,
        negative_curvature="keep",
        temperature=hp.temperature,
        first_order_sign=None,
    )
    return add_locality(scores, params, hp.locality)


def _hutchinson_pai(model, params, batches, loss_fn, hp: HutchinsonPaiHparams):
    require_params(params)
    scores = second_order_scores(
        model,
        params,
        batches,
        loss_fn,
        curvature="hutchinson",
        num_probes=hp.num_probes,
        seed=hp.seed,
        negative_curvature=hp.negative_curvature,
        temperature=hp.temperature,
        first_order_sign=hp.first_order_sign,
    )
    return add_locality(scores, params, hp.locality)


CRITERIA.add("snip", Criterion("snip", _snip, SnipHparams, True, "|θ g| at initialisation"))
CRITERIA.add(
    "grasp",
    Criterion("grasp", _grasp, GraspHparams, True, "θ ⊙ Hg, logits/200 (keep largest)"),
)
CRITERIA.add(
    "fisher_pai",
    Criterion("fisher_pai", _fisher_pai, FisherPaiHparams, True, "½ F θ², empirical Fisher (002)"),
)
CRITERIA.add(
    "hutchinson_pai",
    Criterion(
        "hutchinson_pai",
        _hutchinson_pai,
        HutchinsonPaiHparams,
        True,
        "|−g θ + ½ ĥ θ²|, Hutchinson ĥ (002 HTS)",
    ),
)
