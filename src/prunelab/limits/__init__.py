"""How far can a network be pruned? Predictions and the measured ground truth (methods.md §4).

* :func:`predict_limit` — 004's spectral (Gaussian-width) limit from the Hessian spectrum,
  or 003's cosine rule through the same interface; returns a :class:`LimitEstimate`.
* :func:`cosine_curve`, :func:`cosine_rule`, :func:`safety_multiplier` — 003's closed-form
  cosine similarity of magnitude pruning, ``p*`` and the kurtosis-guarded safe amount.
* :func:`find_actual_limit`, :func:`delta_pp` — the largest one-shot magnitude-pruning
  sparsity that keeps test accuracy, and the prediction error in percentage points.
* Linear models (paper 000): :func:`pruning_excess_risk` (closed form),
  :func:`simulate_linear_pruning` (magnitude vs covariance-scaled vs Hessian pruning).
* Pure math (no model): :func:`removed_norm_curve`, :func:`rho`, :func:`solve_crossing`,
  :func:`crossing`, :func:`jensen_rho`, :func:`limit_from_measures`.
* The three steps of :func:`predict_limit`, for callers that want one of them:
  :func:`measure_limit_inputs` (→ :class:`LimitInputs`), :func:`build_measures`
  (→ :class:`SeedMeasures`), :func:`estimate_from_measures` (→ :class:`LimitEstimate`).
* Paper 004's other analyses: :func:`hessian_row_norms` (ℓ1 norms of Hessian rows at the
  magnitude quantiles), :func:`compare_runs` / :func:`tv_distance` (weight-magnitude
  distributions of independent runs), :func:`weight_scaling` (``p̂`` with the weights ×α).
"""

from prunelab.limits._crossing import (
    GW_LOWER_FACTOR,
    RemovedNormCurve,
    crossing,
    jensen_crossing,
    jensen_rho,
    mean_abs_eigenvalue,
    removed_norm_curve,
    rho,
    solve_crossing,
)
from prunelab.limits._estimate import LimitEstimate, estimate_from_measures, limit_from_measures
from prunelab.limits._inputs import (
    EPS_RULES,
    LimitInputs,
    batch_loss_std,
    jacobian_null_mask,
    measure_limit_inputs,
    resolve_eps,
    train_loss_mean,
)
from prunelab.limits._spectra import SeedMeasures, build_measures
from prunelab.limits.actual import ActualLimit, delta_pp, find_actual_limit
from prunelab.limits.calibration import calibration_limit
from prunelab.limits.certified import CertifiedLimit, certified_limit, ggn_rank_bound
from prunelab.limits.cosine import (
    CosineRule,
    cosine_curve,
    cosine_rule,
    kurtosis_of_kurtoses,
    layer_kurtoses,
    safety_multiplier,
)
from prunelab.limits.gaussian_width import predict_limit
from prunelab.limits.hessian_rows import HessianRows, hessian_row_norms, threshold_indices
from prunelab.limits.linear_theory import (
    METHODS as LINEAR_METHODS,
)
from prunelab.limits.linear_theory import (
    LinearPruningStudy,
    fit_linear,
    linear_scores,
    monte_carlo_excess,
    population_risk,
    prune_coefficients,
    pruning_excess_risk,
    simulate_linear_pruning,
)
from prunelab.limits.quadratic import (
    QuadraticLimit,
    quadratic_one_shot_limit,
    retrained_quadratic_limit,
)
from prunelab.limits.truth import (
    FineTunedLimit,
    Interval,
    OneShotLimit,
    fine_tuned_limit,
    one_shot_limit,
)
from prunelab.limits.weight_distributions import (
    RunComparison,
    compare_runs,
    ks_distance,
    log_bins,
    magnitude_histogram,
    tv_distance,
)
from prunelab.limits.weight_scaling import (
    ScaledLimit,
    WeightScaling,
    scaled_curve,
    scaled_limits,
    weight_scaling,
)

__all__ = [
    "calibration_limit",
    "HessianRows",
    "hessian_row_norms",
    "threshold_indices",
    "RunComparison",
    "compare_runs",
    "ks_distance",
    "log_bins",
    "magnitude_histogram",
    "tv_distance",
    "ScaledLimit",
    "WeightScaling",
    "scaled_curve",
    "scaled_limits",
    "weight_scaling",
    "FineTunedLimit",
    "Interval",
    "OneShotLimit",
    "QuadraticLimit",
    "fine_tuned_limit",
    "one_shot_limit",
    "quadratic_one_shot_limit",
    "retrained_quadratic_limit",
    "CertifiedLimit",
    "certified_limit",
    "ggn_rank_bound",
    "LINEAR_METHODS",
    "LinearPruningStudy",
    "fit_linear",
    "linear_scores",
    "monte_carlo_excess",
    "population_risk",
    "prune_coefficients",
    "pruning_excess_risk",
    "simulate_linear_pruning",
    "EPS_RULES",
    "GW_LOWER_FACTOR",
    "ActualLimit",
    "CosineRule",
    "LimitEstimate",
    "LimitInputs",
    "RemovedNormCurve",
    "SeedMeasures",
    "batch_loss_std",
    "build_measures",
    "cosine_curve",
    "cosine_rule",
    "crossing",
    "delta_pp",
    "estimate_from_measures",
    "find_actual_limit",
    "jacobian_null_mask",
    "jensen_crossing",
    "jensen_rho",
    "kurtosis_of_kurtoses",
    "layer_kurtoses",
    "limit_from_measures",
    "mean_abs_eigenvalue",
    "measure_limit_inputs",
    "predict_limit",
    "removed_norm_curve",
    "resolve_eps",
    "rho",
    "safety_multiplier",
    "solve_crossing",
    "train_loss_mean",
]
