"""Semantic checks of a :class:`~prunelab.experiments.config.SweepConfig` (after type checks).

Names are looked up in the registries, hyper-parameters built by their dataclasses,
training settings validated by :class:`~prunelab.train.TrainConfig`; every error names
the key path of the bad value.
"""

from __future__ import annotations

import inspect
import itertools

from prunelab.data.registry import DATASETS
from prunelab.errors import PrunelabError, check_sparsity
from prunelab.experiments._typed import fail, join
from prunelab.experiments.config import (
    PROCEDURE_KEYS,
    SYMBOLIC,
    CriterionConfig,
    SweepConfig,
    check_unique,
)
from prunelab.models import MODELS
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
    base = config.train.over(base)
    if variant_index is None:
        return config.finetune.over({**base, "epochs": 0})
    return config.training[variant_index].over(base)


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
        allowed = PROCEDURE_KEYS[proc.kind]
        for key in ("steps", "bn_recalibrate", "rounds", "rewind_epoch", "l1", "loss_change"):
            if getattr(proc, key) is not None and key not in allowed:
                valid = ", ".join(("kind", "label", "scope", *allowed))
                raise fail(join(path, key), f"not valid for kind {proc.kind!r}; valid: {valid}")
        for key in ("steps", "rounds"):
            value = getattr(proc, key)
            if value is not None and value < 1:
                raise fail(join(path, key), f"must be an integer >= 1, got {value}")
        if proc.kind == "iterative" and proc.steps is None:
            raise fail(join(path, "steps"), "required for kind 'iterative'")
        if proc.kind == "imp" and proc.rounds is None:
            raise fail(join(path, "rounds"), "required for kind 'imp'")
        if proc.rewind_epoch is not None and proc.rewind_epoch < 0:
            raise fail(join(path, "rewind_epoch"), f"must be >= 0, got {proc.rewind_epoch}")
        if proc.l1 is not None and not proc.l1 > 0:
            raise fail(join(path, "l1"), f"must be > 0, got {proc.l1}")
        labels.append(procedure_label(proc))
    check_unique(labels, "procedures", "procedure label")


def procedure_label(proc) -> str:
    """The label of a procedure: given, or built from its kind and settings."""
    if proc.label:
        return proc.label
    parts = [proc.kind]
    if proc.steps is not None:
        parts.append(f"{proc.steps}steps")
    if proc.bn_recalibrate:
        parts.append("bn")
    if proc.rounds is not None:
        parts.append(f"{proc.rounds}rounds")
    if proc.rewind_epoch is not None:
        parts.append(f"rewind{proc.rewind_epoch}")
    if proc.l1 is not None:
        parts.append(f"l1={proc.l1:g}")
    return "-".join(parts)


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
    needs_criteria = any(p.kind not in ("imp", "lomp") for p in config.procedures)
    if needs_criteria and not config.criteria:
        raise fail("criteria", "required by procedure(s) other than imp / lomp")
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
    _check_data(config)
    if not config.training:
        raise fail("training", "needs at least one variant")
    check_unique([v.name for v in config.training], "training", "training variant name")
    for i in range(len(config.training)):
        _check_train(train_dict(config, i), join("training", i))
    _check_train(train_dict(config, None), "finetune")
    _check_criteria(config)
    _check_procedures(config)
    _check_grid(config)
    s = config.scoring
    for key in ("samples", "batch_size"):
        if getattr(s, key) < 1:
            raise fail(join("scoring", key), f"must be an integer >= 1, got {getattr(s, key)}")
    if s.min_per_layer < 0:
        raise fail("scoring.min_per_layer", f"must be >= 0, got {s.min_per_layer}")
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
