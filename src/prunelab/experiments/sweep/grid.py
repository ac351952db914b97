"""The grid of a sweep: model × data × training × criterion × procedure × sparsity × seed.

Each grid point becomes a :class:`RunSpec` whose identity is :func:`stable_hash` of its
*resolved* settings (criterion hyper-parameters with their defaults, full training and
fine-tuning configs), so it does not depend on key order, defaults left implicit, or the
process. Runs that prune a trained model share a :class:`DenseSpec` (train once, prune
many); predictions are made once per trained dense model (:class:`PredictionSpec`).

Combinations dropped automatically (everything else must be excluded explicitly with
``[[exclude]]`` rules):

* ``imp`` and ``lomp`` are magnitude pruning by definition: they run once per remaining
  grid point with criterion ``magnitude``, whatever ``criteria`` lists;
* symbolic sparsities (``p_star``, ``p_safe``, ``gw``, ``actual``) are predictions for a
  *trained* model, so ``at-init`` and ``imp`` (which start from the initialisation) skip
  them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from prunelab._hashing import stable_hash
from prunelab.experiments.sweep.config import DataConfig, ExcludeRule, SweepConfig
from prunelab.experiments.sweep.validate import (
    criterion_points,
    procedure_label,
    procedure_settings,
    train_dict,
)
from prunelab.procedures.settings import CRITERION_FREE, FROM_INIT
from prunelab.schema.toml import fail, join
from prunelab.scores import CRITERIA


@dataclass(frozen=True)
class DenseSpec:
    """A dense model trained once and shared by every run that prunes it."""

    model: str
    data: DataConfig
    train: dict
    prunable: dict
    threads: int | None = None

    def identity(self) -> dict:
        """Everything that determines the trained weights (``threads`` only when pinned)."""
        out = {
            "model": self.model,
            "data": self.data.identity(),
            "train": self.train,
            "prunable": self.prunable,
        }
        if self.threads is not None:
            out["threads"] = self.threads
        return out

    @property
    def hash(self) -> str:
        """Content hash naming the checkpoint directory ``dense/<hash>``."""
        return stable_hash(self.identity())

    @property
    def label(self) -> str:
        """Short human description."""
        return f"{self.model}/{self.data.tag}/seed={self.train['seed']}"


@dataclass(frozen=True)
class PredictionSpec:
    """The limit predictions of one trained dense model."""

    dense: DenseSpec
    settings: dict

    @property
    def hash(self) -> str:
        """Identity: the dense model and the prediction settings."""
        return stable_hash({"dense": self.dense.hash, "settings": self.settings})


@dataclass(frozen=True)
class RunSpec:
    """One grid point, fully resolved.

    Attributes:
        model: Model name.
        data: Dataset.
        training: Name of the training variant.
        train: Resolved TrainConfig dict of the dense training (``seed`` = run seed).
        criterion: Criterion name; ``criterion_label`` its label in reports.
        hparams: Resolved criterion hyper-parameters (defaults filled in).
        procedure: ``label`` and the resolved :class:`~prunelab.procedures.PruneSettings`
            (``kind``, ``scope``, scoring samples, ...).
        sparsity: Fraction removed, or a symbolic name resolved from the predictions.
        seed: Run seed.
        finetune: Resolved fine-tuning TrainConfig dict, or ``None`` (no fine-tuning).
        prunable: The prunable-set rule.
        threads: The pinned torch thread count, or ``None`` (not pinned; then left out
            of :meth:`identity`).
    """

    model: str
    data: DataConfig
    training: str
    train: dict
    criterion: str
    criterion_label: str
    hparams: dict
    procedure: dict
    sparsity: float | str
    seed: int
    finetune: dict | None
    prunable: dict
    threads: int | None = None

    def identity(self) -> dict:
        """The resolved config that names this run (``data_dir`` excluded)."""
        out = dataclasses.asdict(self)
        out["data"] = {**self.data.identity(), "label": self.data.tag}
        if self.threads is None:
            del out["threads"]
        return out

    @property
    def hash(self) -> str:
        """Stable content hash of :meth:`identity`."""
        return stable_hash(self.identity())

    @property
    def dense(self) -> DenseSpec | None:
        """The trained checkpoint this run prunes (``None`` for at-init and IMP)."""
        if self.procedure["kind"] in FROM_INIT:
            return None
        return DenseSpec(self.model, self.data, self.train, self.prunable, self.threads)

    @property
    def label(self) -> str:
        """Short human description for progress and failure tables."""
        return (
            f"{self.model}/{self.data.tag}/{self.training}/{self.procedure['label']}/"
            f"{self.criterion_label}/p={self.sparsity}/seed={self.seed}"
        )


def _matches(rule: ExcludeRule, point: dict) -> bool:
    for key, wanted in vars(rule).items():
        if wanted is None:
            continue
        wanted = wanted if isinstance(wanted, tuple) else (wanted,)
        if not any(value in wanted for value in point[key]):
            return False
    return True


def _procedure(config: SweepConfig, index: int, variant_train: dict, criterion: str) -> dict:
    """Procedure ``index`` resolved for one criterion and training variant, with its label."""
    settings = procedure_settings(config, index).resolved(criterion, variant_train["l1"])
    if settings.kind == "imp" and settings.rewind_epoch > variant_train["epochs"]:
        raise fail(
            join(join("procedures", index), "rewind_epoch"),
            f"{settings.rewind_epoch} exceeds the training epochs ({variant_train['epochs']})",
        )
    return {"label": procedure_label(config, index), **settings.to_dict()}


def _resolved_hparams(name: str, hparams: dict, seed: int) -> dict:
    crit = CRITERIA.get(name)
    fields = {f.name for f in dataclasses.fields(crit.hparams)}
    if "seed" in fields and "seed" not in hparams:
        hparams = {**hparams, "seed": seed}  # stochastic criteria follow the run seed
    return dataclasses.asdict(crit.make_hparams(**hparams))


def expand(config: SweepConfig) -> list[RunSpec]:
    """Every run of the grid, in a deterministic order, exclusions applied, no duplicates.

    Raises:
        PrunelabError: A setting that only fails once combined (e.g. IMP's
            ``rewind_epoch`` beyond a variant's epochs), naming its key.
    """
    runs: dict[str, RunSpec] = {}
    finetune = train_dict(config, None)
    prunable = dataclasses.asdict(config.prunable)
    criteria = [(c.name, lab, hp) for c in config.criteria for lab, hp in criterion_points(c)]
    for model in config.models:
        for data in config.data:
            for v_index, variant in enumerate(config.training):
                base_train = train_dict(config, v_index)
                for p_index, proc in enumerate(config.procedures):
                    kind = proc["kind"]
                    crit_list = criteria
                    if kind in CRITERION_FREE:
                        crit_list = [("magnitude", "magnitude", {})]
                    for name, crit_label, hparams in crit_list:
                        resolved_proc = _procedure(config, p_index, base_train, name)
                        for sparsity in config.sparsities:
                            if isinstance(sparsity, str) and kind in FROM_INIT:
                                continue
                            for seed in config.seeds:
                                point = {
                                    "model": [model],
                                    "data": [data.tag],
                                    "training": [variant["name"]],
                                    "criterion": [name, crit_label],
                                    "procedure": [kind, resolved_proc["label"]],
                                    "sparsity": [sparsity],
                                    "seed": [seed],
                                }
                                if any(_matches(rule, point) for rule in config.exclude):
                                    continue
                                train = {**base_train, "seed": seed}
                                if kind == "lomp":
                                    train["l1"] = resolved_proc["l1"]
                                ft = {**finetune, "seed": seed}
                                run = RunSpec(
                                    model=model,
                                    data=data,
                                    training=variant["name"],
                                    train=train,
                                    criterion=name,
                                    criterion_label=crit_label,
                                    hparams=_resolved_hparams(name, hparams, seed),
                                    procedure=resolved_proc,
                                    sparsity=sparsity,
                                    seed=seed,
                                    # at-init trains with `train` after pruning; IMP retrains
                                    finetune=None if kind in FROM_INIT else ft,
                                    prunable=prunable,
                                    threads=config.threads,
                                )
                                runs.setdefault(run.hash, run)
    return list(runs.values())


def dense_specs(runs: list[RunSpec]) -> list[DenseSpec]:
    """The distinct trained dense models the runs need, in first-use order."""
    out: dict[str, DenseSpec] = {}
    for run in runs:
        dense = run.dense
        if dense is not None:
            out.setdefault(dense.hash, dense)
    return list(out.values())


def prediction_settings(config: SweepConfig) -> dict | None:
    """Resolved prediction settings (only the methods asked for), or ``None`` if none."""
    pred = config.predictions
    if not pred.methods:
        return None
    out: dict = {"methods": sorted(pred.methods)}
    curvature = {"gaussian-width", "certified", "quadratic", "retrained", "calibration"}
    if curvature & set(pred.methods):
        out["gaussian_width"] = dataclasses.asdict(pred.gaussian_width)
        if "certified" not in pred.methods:  # its keys would change older prediction hashes
            for key in ("probes", "max_iters", "bracket"):
                del out["gaussian_width"][key]
    if {"quadratic", "retrained", "one-shot", "fine-tuned", "calibration"} & set(pred.methods):
        out["truth"] = pred.truth.to_dict()  # late keys at defaults left out
    if "actual" in pred.methods:
        out["actual"] = pred.actual.to_dict()
    if "spectrum" in pred.methods:
        out["spectrum"] = dataclasses.asdict(pred.spectrum)
    if "cosine" in pred.methods:
        out["cosine_grid"] = pred.cosine_grid
        # only when it matters, so the prediction hashes of older configs stay the same
        # (an older row has no p_safe per convention)
        by_convention = {"p_safe_weights", "p_safe_weights_bias"} & set(config.sparsities)
        if pred.kurtosis_tensors != "weights" or by_convention:
            out["kurtosis_tensors"] = pred.kurtosis_tensors
    return out


def study_specs(config: SweepConfig) -> list[dict]:
    """Linear-theory studies (paper 000): one per feature-scale setting."""
    lt = config.linear_theory
    if lt is None:
        return []
    base = dataclasses.asdict(lt)
    scales = base.pop("scales")
    return [{"kind": "linear-theory", **base, "scales": s} for s in scales]
