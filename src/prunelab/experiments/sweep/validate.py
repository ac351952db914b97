"""Semantic checks of a :class:`~prunelab.experiments.sweep.config.SweepConfig` (after type checks).

Names are looked up in the registries, hyper-parameters built by their dataclasses,
training settings validated by :class:`~prunelab.train.TrainConfig`; every error names
the key path of the bad value.
"""

from __future__ import annotations

import inspect
import itertools

from prunelab.data.registry import DATASETS
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.experiments.sweep.config import SYMBOLIC, CriterionConfig, SweepConfig
from prunelab.models import MODELS
from prunelab.procedures import PruneSettings
from prunelab.procedures.settings import CRITERION_FREE
from prunelab.schema.toml import fail, join
from prunelab.scores import CRITERIA
from prunelab.train import TrainConfig


def train_dict(config: SweepConfig, variant_index: int | None) -> dict:
    """Resolved TrainConfig fields (``seed`` and ``progress`` left out) of a variant.

    ``variant_index=None`` gives the fine-tuning settings: ``[train]`` then ``[finetune]``,
    with ``epochs`` 0 unless ``[finetune]`` sets it.
    """
    base = TrainConfig().to_dict()
    for key in ("seed", "progress"):
        base.pop(key)
    base = {**base, **config.train}
    if variant_index is None:
        return {**base, "epochs": 0, **config.finetune}
    variant = {k: v for k, v in config.training[variant_index].items() if k != "name"}
    return {**base, **variant}


def procedure_settings(config: SweepConfig, index: int) -> PruneSettings:
    """The ``[scoring]`` defaults with procedure ``index``'s own keys on top (no label)."""
    own = {k: v for k, v in config.procedures[index].items() if k != "label"}
    return PruneSettings(**{**config.scoring, **own})


def procedure_label(config: SweepConfig, index: int) -> str:
    """The label of a procedure: given, or built from its kind and settings."""
    given = config.procedures[index].get("label")
    own = {k: v for k, v in config.procedures[index].items() if k != "label"}
    return given or PruneSettings(**own).label


def criterion_points(crit: CriterionConfig) -> list[tuple[str, dict]]:
    """``(label, hparams)`` for every point of a criterion's ``sweep`` product."""
    base = crit.label or crit.name
    if not crit.sweep:
        return [(base, dict(crit.hparams))]
    keys = list(crit.sweep)
    out = []
    for values in itertools.product(*(crit.sweep[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        suffix = ",".join(f"{k}={v}" for k, v in point.items())
        out.append((f"{base}[{suffix}]", {**crit.hparams, **point}))
    return out


def _check_train(d: dict, path: str) -> None:
    try:
        TrainConfig(**d, seed=0).validate()
    except PrunelabError as exc:
        raise fail(path, str(exc)) from None


def _check_data(config: SweepConfig) -> None:
    for i, d in enumerate(config.data):
        path = join("data", i)
        try:
            loader = DATASETS.get(d.name)
        except PrunelabError as exc:
            raise fail(join(path, "name"), str(exc)) from None
        params = inspect.signature(loader).parameters
        named = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
        for key in d.options:
            if key not in named:
                raise fail(
                    join(join(path, "options"), key),
                    f"unknown option for dataset {d.name!r}; valid: {', '.join(named) or '(none)'}",
                )
        if d.seed < 0:
            raise fail(join(path, "seed"), f"must be an integer >= 0, got {d.seed}")
    check_unique([d.tag for d in config.data], "data", "data label")


def _check_criteria(config: SweepConfig) -> None:
    labels = []
    for i, crit in enumerate(config.criteria):
        path = join("criteria", i)
        try:
            registered = CRITERIA.get(crit.name)
        except PrunelabError as exc:
            raise fail(join(path, "name"), str(exc)) from None
        for key, values in crit.sweep.items():
            if not isinstance(values, list) or not values:
                raise fail(join(join(path, "sweep"), key), "expected a non-empty list of values")
        for label, hparams in criterion_points(crit):
            try:
                registered.make_hparams(**hparams)
            except (PrunelabError, TypeError) as exc:
                raise fail(join(path, "hparams"), str(exc)) from None
            labels.append(label)
    check_unique(labels, "criteria", "criterion label")


def _check_procedures(config: SweepConfig) -> None:
    labels = []
    for i, proc in enumerate(config.procedures):
        path = join("procedures", i)
        if "kind" not in proc:
            raise fail(join(path, "kind"), "required key is missing")
        try:
            procedure_settings(config, i).validate()
        except PrunelabError as exc:  # PruneSettings names the key: "steps: ..."
            key, _, message = str(exc).partition(": ")
            raise fail(join(path, key), message) from None
        labels.append(procedure_label(config, i))
    check_unique(labels, "procedures", "procedure label")


def _check_grid(config: SweepConfig) -> None:
    for i, model in enumerate(config.models):
        if ":" not in model:
            try:
                MODELS.get(model)
            except PrunelabError as exc:
                raise fail(join("models", i), str(exc)) from None
    if not config.models:
        if config.linear_theory is None:
            raise fail("models", "no models and no [linear_theory]: the sweep has nothing to run")
        return
    if not config.data:
        raise fail("data", "required when models are given")
    if not config.sparsities:
        raise fail("sparsities", "required when models are given")
    if not config.seeds:
        raise fail("seeds", "required when models are given")
    needs_criteria = any(p["kind"] not in CRITERION_FREE for p in config.procedures)
    if needs_criteria and not config.criteria:
        raise fail("criteria", f"required by procedure(s) other than {' / '.join(CRITERION_FREE)}")
    for i, p in enumerate(config.sparsities):
        path = join("sparsities", i)
        if isinstance(p, str):
            if p not in SYMBOLIC:
                raise fail(path, f"unknown symbolic sparsity {p!r}; valid: {', '.join(SYMBOLIC)}")
            if SYMBOLIC[p] not in config.predictions.methods:
                raise fail(path, f"{p!r} needs {SYMBOLIC[p]!r} in predictions.methods")
        else:
            try:
                check_sparsity(p)
            except PrunelabError as exc:
                raise fail(path, str(exc)) from None
    for key, values in (
        ("sparsities", [str(s) for s in config.sparsities]),
        ("seeds", [str(s) for s in config.seeds]),
        ("models", list(config.models)),
    ):
        check_unique(values, key, key.rstrip("s"))


def validate(config: SweepConfig) -> SweepConfig:
    """Check names, hyper-parameters, training settings and the grid; return ``config``.

    Raises:
        PrunelabError: The first problem found, naming its key path.
    """
    if not config.name.strip():
        raise fail("name", "must not be empty")
    if config.threads is not None and config.threads < 1:
        raise fail("threads", f"must be >= 1, got {config.threads}")
    _check_data(config)
    if not config.training:
        raise fail("training", "needs at least one variant")
    check_unique([v["name"] for v in config.training], "training", "training variant name")
    for i in range(len(config.training)):
        _check_train(train_dict(config, i), join("training", i))
    _check_train(train_dict(config, None), "finetune")
    _check_criteria(config)
    _check_procedures(config)
    _check_grid(config)
    for i, rule in enumerate(config.exclude):
        if all(v is None for v in vars(rule).values()):
            raise fail(join("exclude", i), "an exclude rule needs at least one key")
    lt = config.linear_theory
    if lt is not None:
        for i, p in enumerate(lt.sparsities):
            try:
                check_sparsity(p)
            except PrunelabError as exc:
                raise fail(join("linear_theory.sparsities", i), str(exc)) from None
        if not lt.seeds:
            raise fail("linear_theory.seeds", "needs at least one seed")
    rl = config.report.layer_sparsity
    if rl is not None:
        try:
            check_sparsity(rl)
        except PrunelabError as exc:
            raise fail("report.layer_sparsity", str(exc)) from None
    return config


def check_unique(items: list[str], path: str, what: str) -> None:
    """Refuse duplicate labels / names, naming the first repeated one."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item in seen:
            raise fail(join(path, i), f"duplicate {what} {item!r}; give each a distinct label")
        seen.add(item)
