"""The demo behind ``make demo``: the three questions answered on digits in minutes.

Small and real (nanoGPT's habit): fc5 trained on scikit-learn's bundled digits, then

1. **which weights matter** — six criteria compared at the same sparsities, right after
   one-shot pruning and after a short fine-tune;
2. **how far** — the Hessian spectrum (SLQ), the spectral (Gaussian-width, paper 004)
   and cosine/kurtosis (paper 003) predictions, for a plain and an ``ℓ1`` (LOMP) model;
3. **proof** — the measured limit (one-shot magnitude, no fine-tuning) beside each
   prediction, with the error ``Δ`` in percentage points.

Everything lands in a report folder (``index.html``, PNG plots and the CSV behind each).
The library returns values; the CLI prints the summary.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from prunelab import checkpoint, curvature, limits, models
from prunelab import data as datasets
from prunelab.masks import Mask
from prunelab.procedures import finetune as finetune_masked
from prunelab.scores import score
from prunelab.train import TrainConfig, evaluate, loss_function, train_model

log = logging.getLogger(__name__)

#: (label, criterion, hparams): the criteria compared in the demo.
CRITERIA = (
    ("magnitude", "magnitude", {}),
    ("random", "random", {}),
    ("taylor1", "taylor1", {}),
    ("obd (hutchinson)", "obd", {"curvature": "hutchinson", "num_probes": 8}),
    ("taylor2 (emp. fisher)", "taylor2", {"curvature": "empirical-fisher"}),
    ("snip", "snip", {}),
)


@dataclass
class DemoConfig:
    """Settings of the demo (defaults finish in about a minute on 2 quiet cores).

    Attributes:
        seed: Seed of the data split, initialisation, training order and estimators.
        epochs: Dense training epochs (digits converges in ~20 with SGD + cosine).
        l1: ``ℓ1`` strength of the LOMP model (paper 004's 5e-5 for FC nets).
        sparsities: Sparsities of the criteria comparison (one-shot, no fine-tuning).
        finetune_sparsities: Subset re-measured after fine-tuning.
        finetune_epochs: Epochs of the short mask-preserving fine-tune.
        random_repeats: Seeds averaged for the random baseline.
        score_samples: Training examples used by data-dependent criteria.
        slq_iters: Lanczos steps per SLQ run; ``slq_runs`` runs; ``slq_seeds`` repeats
            give the spread of the spectral prediction.
        curvature_samples: Training examples in every Hessian-vector product.
        train: Base training configuration.
    """

    seed: int = 0
    epochs: int = 30
    l1: float = 5e-5
    sparsities: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.93, 0.95, 0.97, 0.98)
    finetune_sparsities: tuple[float, ...] = (0.9, 0.95, 0.98)
    finetune_epochs: int = 2
    random_repeats: int = 3
    score_samples: int = 512
    slq_iters: int = 32
    slq_runs: int = 4
    slq_seeds: int = 2
    curvature_samples: int = 512
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, lr=0.05))


@dataclass
class DemoResult:
    """What the demo measured (every table the report shows).

    Attributes:
        dense: Dense test metrics per model (``"plain"``, ``"l1"``).
        criteria: Criteria comparison rows (criterion, sparsity, stage, accuracy, sd, loss).
        limits: One row per (model, method): prediction, bounds, actual limit, Δ (pp).
        curves: Accuracy-vs-sparsity curves seen by the ground-truth search, per model.
        spectrum: The plain model's :class:`~prunelab.curvature.SpectrumSummary`.
        report: Path of ``index.html``.
        seconds: Wall-clock time per phase and in total.
    """

    dense: dict
    criteria: list[dict]
    limits: list[dict]
    curves: dict
    spectrum: object
    report: Path
    seconds: dict


def _train(data, cfg: TrainConfig, seed: int):
    torch.manual_seed(seed)
    model = models.build("fc5", data)
    history = train_model(model, data, cfg).history
    return model.eval(), history


def _compare_criteria(model, data, cfg: DemoConfig) -> list[dict]:
    """One-shot global pruning with each criterion, then a short fine-tune at a few sparsities."""
    loss_fn = loss_function(data)
    batches = list(data.batches("train", 256, limit=cfg.score_samples))
    ft = replace(cfg.train, epochs=cfg.finetune_epochs, lr=0.01, schedule="constant")
    rows = []
    for label, name, hp in CRITERIA:
        seeds = range(cfg.random_repeats) if name == "random" else [cfg.seed]
        all_scores = [
            score(model, name, batches, loss_fn, **({**hp, "seed": s} if name == "random" else hp))
            for s in seeds
        ]
        for p in cfg.sparsities:
            stages: dict[str, list[dict]] = {"after prune": [], "after fine-tune": []}
            for scores in all_scores:
                mask = Mask.from_scores(scores, p)
                pruned = mask.apply(copy.deepcopy(model))
                stages["after prune"].append(evaluate(pruned, data))
                if p in cfg.finetune_sparsities:
                    stages["after fine-tune"].append(finetune_masked(pruned, data, mask, ft)[1])
            for stage, ms in stages.items():
                if not ms:
                    continue
                accs = [m["accuracy"] for m in ms]
                rows.append(
                    {
                        "criterion": label,
                        "sparsity": p,
                        "stage": stage,
                        "accuracy": statistics.fmean(accs),
                        "accuracy_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                        "loss": statistics.fmean(m["loss"] for m in ms),
                        "compression": mask.compression_ratio,
                    }
                )
    return rows


def _limits_rows(tag, model, data, cfg: DemoConfig) -> tuple[list[dict], list[dict]]:
    """Both predictions and the measured limit for one trained model."""
    # 2% grid then 6 bisection steps: ~0.3-point resolution at a third of the default cost.
    grid = [i / 50 for i in range(50)] + [0.99]
    actual = limits.find_actual_limit(model, data, grid=grid, bisect_steps=6)
    gw = limits.predict_limit(
        model, data, "gaussian-width", num_iters=cfg.slq_iters, num_runs=cfg.slq_runs,
        num_seeds=cfg.slq_seeds, samples=cfg.curvature_samples, seed=cfg.seed,
    )  # fmt: skip
    rule = limits.cosine_rule(model)
    rows = [
        {
            "model": tag,
            "method": "gaussian-width (004)",
            "prediction": gw.p_hat,
            "spread": gw.spread,
            "lower": gw.lower,
            "upper": gw.upper,
            "trace_lower": gw.trace_lower,
            "eps": gw.eps,
            "zero_mass": gw.zero_mass,
            "actual": actual.p_actual,
            "delta_pp": limits.delta_pp(gw.p_hat, actual.p_actual),
        },
        {
            "model": tag,
            "method": "cosine p* (003)",
            "prediction": rule.p_star,
            "spread": 0.0,
            "lower": rule.p_safe,
            "upper": rule.p_star,
            "actual": actual.p_actual,
            "delta_pp": limits.delta_pp(rule.p_star, actual.p_actual),
            "k2": rule.k2,
        },
    ]
    curve = [{"model": tag, "sparsity": p, "accuracy": a, "loss": lo} for p, a, lo in actual.curve]
    return rows, curve


def run_demo(out: str | Path, config: DemoConfig | None = None) -> DemoResult:
    """Run the demo and write its report folder.

    Args:
        out: Report directory (created; every file inside is written atomically).
        config: Demo settings.

    Returns:
        The measured :class:`DemoResult`.
    """
    from prunelab.experiments.demo.section import write_demo_report

    cfg = config or DemoConfig()
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = datasets.load("digits", seed=cfg.seed)
    base = replace(cfg.train, epochs=cfg.epochs, seed=cfg.seed)
    trained = {}
    for tag, l1 in (("plain", 0.0), ("l1", cfg.l1)):
        tcfg = replace(base, l1=l1)
        model, history = _train(data, tcfg, cfg.seed)
        dense = evaluate(model, data)
        meta = {"job": "train", "data": data.spec, "train": tcfg.to_dict(), "seed": cfg.seed,
                "history": history, "metrics": {"dense": dense}}  # fmt: skip
        checkpoint.save(out / f"model-{tag}", model, meta=meta)
        trained[tag] = (model, dense)
    seconds["train"] = time.perf_counter() - t0

    t = time.perf_counter()
    plain = trained["plain"][0]
    criteria_rows = _compare_criteria(plain, data, cfg)
    seconds["criteria"] = time.perf_counter() - t

    t = time.perf_counter()
    batches = list(data.batches("train", 256, limit=cfg.curvature_samples))
    spectrum = curvature.spectrum_summary(
        plain, loss_function(data), batches, num_iters=cfg.slq_iters, num_runs=cfg.slq_runs,
        seed=cfg.seed, per_layer=True,
    )  # fmt: skip
    curvature.write_spectrum_report(spectrum, out / "spectrum")
    seconds["spectrum"] = time.perf_counter() - t

    t = time.perf_counter()
    limit_rows, curves = [], []
    for tag, (model, _) in trained.items():
        rows, curve = _limits_rows(tag, model, data, cfg)
        limit_rows += rows
        curves += curve
    seconds["limits"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0

    result = DemoResult(
        dense={tag: d for tag, (_, d) in trained.items()},
        criteria=criteria_rows,
        limits=limit_rows,
        curves={"rows": curves},
        spectrum=spectrum,
        report=out / "index.html",
        seconds=seconds,
    )
    write_demo_report(out, result, cfg)
    return result
