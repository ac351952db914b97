"""Sweep configurations: a TOML file validated into typed, frozen dataclasses.

The file's layout (every table optional unless marked; see ``experiments/tiny.toml``)::

    name = "tiny"                  # required: names the sweep
    models = ["lenet300"]          # registry names or "package.module:factory"
    seeds = [0, 1]                 # run seeds: initialisation, training order, score seeds
    sparsities = [0.5, 0.9, "p_star"]  # fractions removed, or a symbolic limit (below)
    [[data]]                       # one table or a list of tables
    name = "digits"; seed = 0; options = {}   # seed = data split, fixed across run seeds
    [train]                        # TrainConfig fields shared by every training variant
    [[training]]                   # variants, e.g. name = "plain" / name = "l1", l1 = 5e-5
    [finetune]                     # after pruning; unset fields inherit [train]; epochs = 0
    [[criteria]]                   # name, label, hparams = {...}, sweep = {hparam = [..]}
    [[procedures]]                 # kind = one-shot | iterative | at-init | imp | lomp
    [scoring]                      # samples, batch_size, scope, min_per_layer, loss_change
    [prunable]                     # include_classifier, include_bias
    [predictions]                  # methods = gaussian-width, cosine, actual, spectrum
    [linear_theory]                # paper 000's simulator (no neural network needed)
    [[exclude]]                    # drop grid points: model, data, training, criterion, ...
    [report]                       # layer_sparsity for the per-layer density plot

Symbolic sparsities resolve per trained dense model from its predictions: ``p_star`` and
``p_safe`` (cosine rule, 003), ``gw`` (Gaussian-width ``p̂``, 004) and ``actual`` (the
measured limit). Their method must be listed in ``predictions.methods``.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from prunelab._hashing import stable_hash
from prunelab.errors import PrunelabError
from prunelab.experiments._typed import build, fail, join

KINDS = ("one-shot", "iterative", "at-init", "imp", "lomp")
#: symbolic sparsity -> prediction method that provides it
SYMBOLIC = {"p_star": "cosine", "p_safe": "cosine", "gw": "gaussian-width", "actual": "actual"}
#: procedure kind -> keys it accepts besides kind / label / scope
PROCEDURE_KEYS = {
    "one-shot": ("loss_change",),
    "iterative": ("steps", "loss_change"),
    "at-init": ("bn_recalibrate", "rounds", "loss_change"),
    "imp": ("rounds", "rewind_epoch"),
    "lomp": ("l1", "loss_change"),
}


@dataclass(frozen=True)
class DataConfig:
    """A dataset: registry ``name``, split ``seed``, loader ``options``, report ``label``.

    ``data_dir`` tells where files live; it is not part of any run's identity.
    """

    name: str
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    data_dir: str = ""

    @property
    def tag(self) -> str:
        """The label, or the name when no label is given."""
        return self.label or self.name

    def identity(self) -> dict:
        """What defines the data (``data_dir`` excluded)."""
        return {"name": self.name, "seed": self.seed, "options": dict(self.options)}


@dataclass(frozen=True)
class TrainSettings:
    """TrainConfig fields; ``None`` = inherit (``seed`` is the run seed, never set here)."""

    epochs: int | None = None
    batch_size: int | None = None
    optimizer: Literal["sgd", "adam"] | None = None
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    schedule: Literal["constant", "step", "cosine"] | None = None
    step_size: int | None = None
    gamma: float | None = None
    warmup_epochs: int | None = None
    l1: float | None = None
    l2: float | None = None

    def over(self, base: dict) -> dict:
        """``base`` with this table's set fields on top."""
        own = {k: v for k, v in asdict(self).items() if v is not None and k != "name"}
        return {**base, **own}


@dataclass(frozen=True)
class TrainingVariant(TrainSettings):
    """A named training variant (e.g. ``plain``, or ``l1`` with ``l1 = 5e-5``)."""

    name: str = "plain"


@dataclass(frozen=True)
class CriterionConfig:
    """A criterion; ``sweep`` maps hparams to value lists (one grid point per product)."""

    name: str
    label: str = ""
    hparams: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcedureConfig:
    """A procedure; only the keys of :data:`PROCEDURE_KEYS` for its ``kind`` may be set.

    ``loss_change`` overrides ``scoring.loss_change`` (e.g. off for 140-step runs, where
    one Hessian-vector product per step would dominate the cost).
    """

    kind: Literal["one-shot", "iterative", "at-init", "imp", "lomp"]
    label: str = ""
    scope: Literal["global", "layer"] | None = None
    steps: int | None = None
    bn_recalibrate: bool | None = None
    rounds: int | None = None
    rewind_epoch: int | None = None
    l1: float | None = None
    loss_change: Literal["none", "hvp", "diagonal"] | None = None


@dataclass(frozen=True)
class ScoringConfig:
    """Scoring data, mask rules and the optional predicted-vs-measured ``ΔL`` per step."""

    samples: int = 1000
    batch_size: int = 256
    scope: Literal["global", "layer"] = "global"
    min_per_layer: int = 1
    loss_change: Literal["none", "hvp", "diagonal"] = "none"


@dataclass(frozen=True)
class PrunableSettings:
    """The prunable set (methods.md §0)."""

    include_classifier: bool = True
    include_bias: bool = False


@dataclass(frozen=True)
class GaussianWidthSettings:
    """Arguments of :func:`prunelab.limits.predict_limit` (``eps`` absent = 004's default)."""

    num_iters: int = 64
    num_runs: int = 4
    num_seeds: int = 3
    samples: int = 1024
    batch_size: int = 256
    eps: float | None = None
    zero_mass: float | Literal["auto", "jacobian", "ritz", "none"] = "auto"


@dataclass(frozen=True)
class ActualSettings:
    """Arguments of :func:`prunelab.limits.find_actual_limit` (``grid`` absent = default)."""

    tolerance: float = 0.5
    strict: bool = False
    grid: tuple[float, ...] | None = None
    bisect_steps: int = 8


@dataclass(frozen=True)
class SpectrumSettings:
    """Arguments of :func:`prunelab.curvature.spectrum_summary` on the dense model."""

    num_iters: int = 64
    num_runs: int = 4
    samples: int = 1024
    batch_size: int = 256
    operator: Literal["hessian", "ggn", "fisher"] = "hessian"


@dataclass(frozen=True)
class PredictionsConfig:
    """Limit predictions computed once per trained dense model."""

    methods: tuple[Literal["gaussian-width", "cosine", "actual", "spectrum"], ...] = ()
    gaussian_width: GaussianWidthSettings = field(default_factory=GaussianWidthSettings)
    actual: ActualSettings = field(default_factory=ActualSettings)
    spectrum: SpectrumSettings = field(default_factory=SpectrumSettings)
    cosine_grid: int = 100001


@dataclass(frozen=True)
class LinearTheoryConfig:
    """Arguments of :func:`prunelab.limits.linear_theory.simulate_linear_pruning`, per scale."""

    sparsities: tuple[float, ...]
    scales: tuple[Literal["heterogeneous", "equal"], ...] = ("heterogeneous", "equal")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    methods: tuple[Literal["magnitude", "cov_scaled", "hessian"], ...] = (
        "magnitude",
        "cov_scaled",
        "hessian",
    )
    dim: int = 50
    n_train: int = 200
    noise_std: float = 1.0
    teacher: Literal["dense", "sparse"] = "dense"
    ridge: float = 0.0
    n_mc: int = 20000


@dataclass(frozen=True)
class ExcludeRule:
    """Drop every grid point matching all given keys (each a value or a list of values).

    ``criterion`` matches a name or label, ``procedure`` a kind or label, ``data`` a label.
    """

    model: tuple[str, ...] | str | None = None
    data: tuple[str, ...] | str | None = None
    training: tuple[str, ...] | str | None = None
    criterion: tuple[str, ...] | str | None = None
    procedure: tuple[str, ...] | str | None = None
    sparsity: tuple[float | str, ...] | float | str | None = None
    seed: tuple[int, ...] | int | None = None


@dataclass(frozen=True)
class ReportConfig:
    """Report options: the sparsity of the per-layer density plot (default: the largest)."""

    layer_sparsity: float | None = None


@dataclass(frozen=True)
class SweepConfig:
    """A whole sweep: the grid model × data × training × criterion × procedure × p × seed."""

    name: str
    description: str = ""
    models: tuple[str, ...] = ()
    data: tuple[DataConfig, ...] = ()
    seeds: tuple[int, ...] = (0,)
    sparsities: tuple[float | str, ...] = ()
    train: TrainSettings = field(default_factory=TrainSettings)
    training: tuple[TrainingVariant, ...] = (TrainingVariant(),)
    finetune: TrainSettings = field(default_factory=TrainSettings)
    criteria: tuple[CriterionConfig, ...] = ()
    procedures: tuple[ProcedureConfig, ...] = (ProcedureConfig("one-shot"),)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    prunable: PrunableSettings = field(default_factory=PrunableSettings)
    predictions: PredictionsConfig = field(default_factory=PredictionsConfig)
    linear_theory: LinearTheoryConfig | None = None
    exclude: tuple[ExcludeRule, ...] = ()
    report: ReportConfig = field(default_factory=ReportConfig)

    def to_dict(self) -> dict:
        """Plain nested dict (tuples become lists via JSON hashing)."""
        return asdict(self)

    @property
    def hash(self) -> str:
        """Identity of the whole sweep: a stable hash of the resolved config."""
        return stable_hash(self.to_dict())


def parse_config(text: str, source: str = "config") -> SweepConfig:
    """Parse and validate TOML text into a :class:`SweepConfig`.

    Args:
        text: The TOML document.
        source: Name used in the message of a TOML syntax error.

    Returns:
        The validated config.

    Raises:
        PrunelabError: Invalid TOML, unknown keys, wrong types or values, each naming the key.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PrunelabError(f"{source}: invalid TOML: {exc}") from None
    if isinstance(raw.get("data"), dict):  # a single [data] table is a list of one
        raw["data"] = [raw["data"]]
    config = build(SweepConfig, raw)
    # deferred: the registries import torch, and the grid module imports this one
    from prunelab.experiments._validate import validate
    from prunelab.experiments.grid import expand

    validate(config)
    expand(config)  # settings that only fail in combination (e.g. IMP's rewind_epoch)
    return config


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a TOML sweep config file (see :func:`parse_config`)."""
    path = Path(path)
    if not path.is_file():
        raise PrunelabError(f"config file {str(path)!r} does not exist")
    return parse_config(path.read_text(encoding="utf-8"), str(path))


def check_unique(items: list[str], path: str, what: str) -> None:
    """Refuse duplicate labels / names, naming the first repeated one."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item in seen:
            raise fail(join(path, i), f"duplicate {what} {item!r}; give each a distinct label")
        seen.add(item)
