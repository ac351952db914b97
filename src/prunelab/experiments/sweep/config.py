"""Sweep configurations: a TOML file validated into typed, frozen dataclasses.

The file's layout (every table optional unless marked; see ``experiments/tiny.toml``)::

    name = "tiny"                  # required: names the sweep
    threads = 1                    # torch threads of every job (pins published numbers)
    eval_train = true              # also evaluate the training split at every stage
    models = ["lenet300"]          # registry names or "package.module:factory"
    seeds = [0, 1]                 # run seeds: initialisation, training order, score seeds
    sparsities = [0.5, 0.9, "p_star"]  # fractions removed, or a symbolic limit (below)
    [[data]]                       # one table or a list of tables
    name = "digits"; seed = 0; options = {}   # seed = data split, fixed across run seeds
    [train]                        # TrainConfig fields shared by every training variant
    [[training]]                   # variants, e.g. name = "plain" / name = "l1", l1 = 5e-5
    [finetune]                     # after pruning; unset fields inherit [train]; epochs = 0
    [[criteria]]                   # name, label, hparams = {...}, sweep = {hparam = [..]}
    [[procedures]]                 # PruneSettings fields: kind = one-shot | iterative | ...
    [scoring]                      # PruneSettings fields shared by every procedure
    [prunable]                     # include_classifier, include_bias
    [predictions]                  # methods = gaussian-width, cosine, actual, spectrum
    [linear_theory]                # paper 000's simulator (no neural network needed)
    [[exclude]]                    # drop grid points: model, data, training, criterion, ...
    [report]                       # layer_sparsity for the per-layer density plot

``threads`` pins ``torch.set_num_threads`` for every job, in worker processes and in
``workers <= 1`` runs alike. Float32 reductions split over threads sum in another order,
so without it the numbers depend on ``--workers`` (each of ``N`` workers gets
``cores // N`` threads) and a sweep resumed with another ``--workers`` mixes them. When
set it is part of every run's, dense model's and prediction's identity; when absent the
identities (and the config hash) are those of a config without the key.

``eval_train = false`` skips the training-split evaluation after each stage (the
``train_loss`` / ``train_accuracy`` metrics), which on a large corpus costs a third of
an epoch per stage; the test metrics are unchanged. Part of the config hash only when
false.

Symbolic sparsities resolve per trained dense model from its predictions: ``p_star`` and
``p_safe`` (cosine rule, 003; ``p_safe`` under ``predictions.kurtosis_tensors``),
``p_safe_weights`` / ``p_safe_weights_bias`` (``p_safe`` with the layer kurtoses of the
weights only / of 003's notebook, weights and biases, whatever ``kurtosis_tensors`` says),
``gw`` (Gaussian-width ``p̂``, 004) and ``actual`` (the measured limit). Their method must
be listed in ``predictions.methods``.

The tables that hold training, pruning, spectrum and limit settings are not declared
here: they are read from :class:`~prunelab.train_config.TrainConfig`,
:class:`~prunelab.procedures.PruneSettings`,
:class:`~prunelab.curvature.settings.SpectrumSettings` and
:class:`~prunelab.limits.settings.LimitSettings` / ``ActualSettings`` (a field added there
is a key here, with its type checked and its default declared once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from prunelab._hashing import stable_hash
from prunelab.curvature.settings import SpectrumSettings
from prunelab.limits.settings import ActualSettings, LimitSettings, TruthSettings
from prunelab.procedures.settings import PruneSettings
from prunelab.schema.toml import Overrides
from prunelab.train_config import TrainConfig

#: symbolic sparsity -> prediction method that provides it
SYMBOLIC = {
    "p_star": "cosine",
    "p_safe": "cosine",
    "p_safe_weights": "cosine",
    "p_safe_weights_bias": "cosine",
    "gw": "gaussian-width",
    "actual": "actual",
}

#: ``[train]`` / ``[finetune]``: any TrainConfig fields (the others inherit)
TrainTable = Annotated[dict, Overrides(TrainConfig)]
#: ``[[training]]``: a named variant, e.g. ``name = "l1"`` with ``l1 = 5e-5``
VariantTable = Annotated[dict, Overrides(TrainConfig, (("name", str, "plain"),))]
#: ``[scoring]``: PruneSettings fields shared by every procedure
ScoringTable = Annotated[dict, Overrides(PruneSettings)]
#: ``[[procedures]]``: PruneSettings fields of one procedure (``kind`` required) + a label
ProcedureTable = Annotated[dict, Overrides(PruneSettings, (("label", str, ""),))]


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
class CriterionConfig:
    """A criterion; ``sweep`` maps hparams to value lists (one grid point per product)."""

    name: str
    label: str = ""
    hparams: dict[str, Any] = field(default_factory=dict)
    sweep: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrunableSettings:
    """The prunable set (methods.md §0)."""

    include_classifier: bool = True
    include_bias: bool = False


@dataclass(frozen=True)
class PredictionsConfig:
    """Limit predictions computed once per trained dense model.

    ``cosine_grid`` and ``kurtosis_tensors`` are :func:`~prunelab.limits.cosine_rule`'s
    ``grid`` and ``kurtosis_tensors`` (``"weights+bias"``: 003's notebook convention).
    """

    methods: tuple[
        Literal[
            "gaussian-width", "cosine", "certified", "quadratic", "retrained", "actual",
            "one-shot", "fine-tuned", "calibration", "spectrum",
        ],
        ...,
    ] = ()  # fmt: skip
    gaussian_width: LimitSettings = field(default_factory=LimitSettings)
    actual: ActualSettings = field(default_factory=ActualSettings)
    spectrum: SpectrumSettings = field(default_factory=SpectrumSettings)
    truth: TruthSettings = field(default_factory=TruthSettings)
    cosine_grid: int = 100001
    kurtosis_tensors: Literal["weights", "weights+bias"] = "weights"


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
    threads: int | None = None
    eval_train: bool = True
    models: tuple[str, ...] = ()
    data: tuple[DataConfig, ...] = ()
    seeds: tuple[int, ...] = (0,)
    sparsities: tuple[float | str, ...] = ()
    train: TrainTable = field(default_factory=dict)
    training: tuple[VariantTable, ...] = ({"name": "plain"},)
    finetune: TrainTable = field(default_factory=dict)
    criteria: tuple[CriterionConfig, ...] = ()
    procedures: tuple[ProcedureTable, ...] = ({"kind": "one-shot", "label": ""},)
    scoring: ScoringTable = field(default_factory=dict)
    prunable: PrunableSettings = field(default_factory=PrunableSettings)
    predictions: PredictionsConfig = field(default_factory=PredictionsConfig)
    linear_theory: LinearTheoryConfig | None = None
    exclude: tuple[ExcludeRule, ...] = ()
    report: ReportConfig = field(default_factory=ReportConfig)

    def to_dict(self) -> dict:
        """Plain nested dict (tuples become lists via JSON hashing), late keys at defaults out.

        Keys added after the first configs were written (``threads``, ``eval_train``,
        ``predictions.kurtosis_tensors``, ``predictions.truth``, the certified limit's
        keys) are left out while at their defaults, which keeps the hash of every config
        written before they existed.
        """
        out = asdict(self)
        if out["threads"] is None:
            del out["threads"]
        if out["eval_train"]:
            del out["eval_train"]
        if out["predictions"]["kurtosis_tensors"] == "weights":
            del out["predictions"]["kurtosis_tensors"]
        if out["predictions"]["truth"] == asdict(TruthSettings()):
            del out["predictions"]["truth"]
        else:  # fields added to the limit settings later: out while at their defaults
            out["predictions"]["truth"] = self.predictions.truth.to_dict()
        out["predictions"]["actual"] = self.predictions.actual.to_dict()
        out["predictions"]["spectrum"] = self.predictions.spectrum.to_dict()
        for key in ("probes", "max_iters", "bracket"):  # the certified limit's, if default
            if out["predictions"]["gaussian_width"][key] == getattr(LimitSettings, key):
                del out["predictions"]["gaussian_width"][key]
        return out

    @property
    def hash(self) -> str:
        """Identity of the whole sweep: a stable hash of the resolved config."""
        return stable_hash(self.to_dict())
