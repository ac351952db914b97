"""``synthetic-linear``: Gaussian linear regression with chosen per-feature scales (paper 000).

Model: ``x ~ N(0, Σ)`` with ``Σ = diag(scales²)``, ``y = x·β* + ε``, ``ε ~ N(0, noise_std²)``.
Features are deliberately **not** standardised: covariance-scaled magnitude
``Σ_ii β_i²`` and plain magnitude ``β_i²`` only rank weights differently when scales
differ, which is the point of paper 000.

Scale presets: ``"equal"`` sets every scale to 1; ``"heterogeneous"`` spaces them
log-uniformly from 0.1 to 10 (``numpy.geomspace(0.1, 10, dim)``, so scales span two
decades and the covariance has condition number 10⁴). A list gives the scales explicitly.

Teacher ``β*``: ``"dense"`` draws every coefficient from ``N(0, 1)``; ``"sparse"`` draws
``max(1, round(teacher_density · dim))`` coefficients from ``N(0, 1)`` at uniformly
random positions and sets the rest to 0. Coefficients do not depend on the scales, so
the same seed gives the same ``β*`` under every preset.

Independent seeded streams for the teacher, the training set and the test set mean that
changing ``n_test`` leaves the training data and ``β*`` unchanged.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from prunelab.data._common import check_count, check_seed, reject_unknown, rng
from prunelab.data.base import DataBundle
from prunelab.data.registry import DATASETS
from prunelab.errors import PrunelabError

log = logging.getLogger(__name__)

NAME = "synthetic-linear"
OPTIONS = ("n_train", "n_test", "dim", "scales", "teacher", "teacher_density", "noise_std")
HETEROGENEOUS_RANGE = (0.1, 10.0)


def resolve_scales(scales: str | list[float] | tuple[float, ...], dim: int) -> np.ndarray:
    """Turn a scale preset or explicit list into per-feature standard deviations.

    Args:
        scales: ``"equal"``, ``"heterogeneous"`` or a sequence of ``dim`` positive numbers.
        dim: Number of features.

    Returns:
        float64 array ``(dim,)`` of standard deviations.

    Raises:
        PrunelabError: On an unknown preset or a list of the wrong length / non-positive
            or non-finite entries.
    """
    if isinstance(scales, str):
        if scales == "equal":
            return np.ones(dim)
        if scales == "heterogeneous":
            return np.geomspace(*HETEROGENEOUS_RANGE, num=dim)
        raise PrunelabError(
            f"{NAME}: unknown scales {scales!r}; valid choices: equal, heterogeneous, or a "
            f"list of {dim} positive numbers"
        )
    try:
        values = np.asarray(scales, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.asarray([np.nan])
    if values.shape != (dim,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise PrunelabError(
            f"{NAME}: scales must be equal, heterogeneous, or a list of {dim} (= dim) "
            f"positive finite numbers, got {scales!r}"
        )
    return values


def _teacher(kind: str, density: float, dim: int, gen: np.random.Generator) -> np.ndarray:
    """Draw ``β*`` of shape ``(dim,)`` (see the module docstring for the two kinds)."""
    coefficients = gen.standard_normal(dim)
    if kind == "dense":
        return coefficients
    support = gen.permutation(dim)[: max(1, round(density * dim))]
    beta = np.zeros(dim)
    beta[support] = coefficients[support]
    return beta


def _draw(n: int, scales: np.ndarray, beta: np.ndarray, noise_std: float, gen) -> tuple:
    """Draw ``n`` examples; ``y`` is computed from the float32-rounded ``x`` it is paired with."""
    x = (gen.standard_normal((n, scales.size)) * scales).astype(np.float32)
    y = x.astype(np.float64) @ beta + noise_std * gen.standard_normal(n)
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))


@DATASETS.register(NAME)
def load_synthetic_linear(
    seed: int,
    data_dir: Path | None = None,
    *,
    n_train: int = 200,
    n_test: int = 2000,
    dim: int = 50,
    scales: str | list[float] = "heterogeneous",
    teacher: str = "dense",
    teacher_density: float = 0.1,
    noise_std: float = 1.0,
    **unknown,
) -> DataBundle:
    """Draw a Gaussian linear-regression data set with chosen feature scales.

    Args:
        seed: Seed of the teacher and of both splits (non-negative integer).
        data_dir: Must be ``None`` (the data are generated); refused otherwise.
        n_train: Training examples (default 200).
        n_test: Test examples (default 2000).
        dim: Number of features ``D`` (default 50).
        scales: ``"heterogeneous"`` (default; log-spaced 0.1 to 10), ``"equal"`` (all 1),
            or a list of ``dim`` standard deviations.
        teacher: ``"dense"`` (default) or ``"sparse"``.
        teacher_density: Fraction of non-zero teacher coefficients when sparse, in
            ``(0, 1]`` (default 0.1; at least one is non-zero).
        noise_std: Standard deviation of the label noise, ``>= 0`` (default 1.0).
        **unknown: Any other option is an error.

    Returns:
        A :class:`DataBundle` with float32 ``x`` of shape ``(N, dim)``, float32 ``y`` of
        shape ``(N,)``, ``num_classes=0`` and ``info`` holding float64 tensors
        ``"beta_star"`` ``(dim,)``, ``"scales"`` ``(dim,)``, ``"covariance"`` ``(dim, dim)``
        (the population ``Σ``, diagonal) plus ``"noise_std"``, ``"teacher"`` and
        ``"bayes_risk"`` (= ``noise_std²``, the test MSE of ``β*`` in expectation).

    Raises:
        PrunelabError: On any invalid option, in one line.

    Example:
        >>> data = load_synthetic_linear(seed=0, n_train=20, n_test=5, dim=3)
        >>> data.train[0].shape, data.test[1].shape, data.task
        (torch.Size([20, 3]), torch.Size([5]), 'regression')
    """
    reject_unknown(NAME, unknown, OPTIONS)
    seed = check_seed(NAME, seed)
    if data_dir is not None:  # refused, never silently ignored
        raise PrunelabError(
            f"{NAME} is generated and reads no files; data_dir={str(data_dir)!r} would be "
            "ignored, leave it out"
        )
    n_train = check_count(NAME, "n_train", n_train)
    n_test = check_count(NAME, "n_test", n_test)
    dim = check_count(NAME, "dim", dim)
    if teacher not in ("dense", "sparse"):
        raise PrunelabError(f"{NAME}: unknown teacher {teacher!r}; valid choices: dense, sparse")
    density = _number(teacher_density, "teacher_density")
    if not 0.0 < density <= 1.0:
        raise PrunelabError(f"{NAME}: teacher_density must be in (0, 1], got {teacher_density!r}")
    noise = _number(noise_std, "noise_std")
    if not noise >= 0.0:
        raise PrunelabError(f"{NAME}: noise_std must be a number >= 0, got {noise_std!r}")
    sd = resolve_scales(scales, dim)
    beta = _teacher(teacher, density, dim, rng(seed, 0))
    train = _draw(n_train, sd, beta, noise, rng(seed, 1))
    test = _draw(n_test, sd, beta, noise, rng(seed, 2))
    return DataBundle(
        name=NAME,
        train=train,
        test=test,
        num_classes=0,
        input_shape=(dim,),
        info={
            "beta_star": torch.from_numpy(beta.copy()),
            "scales": torch.from_numpy(sd.copy()),
            "covariance": torch.from_numpy(np.diag(sd**2)),
            "noise_std": noise,
            "bayes_risk": noise**2,
            "teacher": teacher,
        },
    )


def _number(value: object, option: str) -> float:
    """``value`` as a finite float, or a :class:`PrunelabError` naming ``option``."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise PrunelabError(f"{NAME}: {option} must be a finite number, got {value!r}")
    return number
