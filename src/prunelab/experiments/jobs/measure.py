"""Jobs that measure a model: its spectrum, its predicted and measured limits, its scores.

``prunelab spectrum`` / ``score`` call the ``*_job`` functions here on a checkpoint (files
go to the checkpoint's ``report/`` folder, atomically); ``prunelab limit`` calls
:func:`~prunelab.experiments.jobs.limit.limit_job`. The sweep's prediction runs and the
demo call :func:`predictions` on a trained model, so every limit row is built once, by
:func:`~prunelab.experiments.jobs.limit.limit_rows`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as save_tensors

from prunelab import checkpoint, curvature, limits
from prunelab._io import atomic_write_bytes, check_writable
from prunelab.curvature.settings import SpectrumSettings
from prunelab.errors import PrunelabError
from prunelab.experiments.files import main_process, report_dir
from prunelab.experiments.jobs.data import load_data
from prunelab.experiments.report import plots
from prunelab.experiments.report.spectrum import write_spectrum_report
from prunelab.limits.certified import certified_limit
from prunelab.limits.cosine import KURTOSIS_TENSORS
from prunelab.limits.settings import ActualSettings, LimitSettings, TruthSettings
from prunelab.limits.task_metric import loss_eps
from prunelab.procedures import PruneSettings
from prunelab.prunable import PrunableSpec
from prunelab.scores import CRITERIA, score
from prunelab.train import TrainConfig, loss_function

#: what ``prunelab limit --method`` accepts (``all`` = every prediction)
LIMIT_METHODS = ("gaussian-width", "cosine", "certified", "quadratic", "calibration", "all")
#: everything :func:`predictions` can compute
PREDICTIONS = (
    "gaussian-width", "cosine", "certified", "quadratic", "retrained", "actual", "one-shot",
    "fine-tuned", "calibration", "spectrum",
)  # fmt: skip
#: points kept of the ρ(R(p)) curve (a report needs a plot, not 1001 points)
CURVE_POINTS = 201


def _thin(curve: dict) -> dict:
    n = len(curve.get("p", []))
    if n <= CURVE_POINTS:
        return curve
    idx = np.linspace(0, n - 1, CURVE_POINTS).round().astype(int)
    return {k: [v[i] for i in idx] for k, v in curve.items()}


def spectrum(
    model, data, settings: SpectrumSettings, seed: int = 0, spec=None, *, progress: bool = False
):
    """The :class:`~prunelab.curvature.SpectrumSummary` of ``model`` on its training data.

    ``progress`` draws a bar of the Lanczos steps on stderr; it is not a setting (no
    number depends on it).
    """
    batches = list(data.batches("train", settings.batch_size, limit=settings.samples))
    return curvature.spectrum_summary(
        model, loss_function(data), batches, settings.num_iters, settings.num_runs, seed,
        settings.per_layer, operator=settings.operator, params=spec, progress=progress,
        max_memory=settings.max_memory,
    )  # fmt: skip


def predictions(
    model,
    data,
    methods,
    *,
    limit: LimitSettings | None = None,
    actual: ActualSettings | None = None,
    spectrum_settings: SpectrumSettings | None = None,
    truth: TruthSettings | None = None,
    cosine_grid: int = 100001,
    kurtosis_tensors: str = "weights",
    spec: PrunableSpec | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Every limit prediction (and ground truth) asked for, as plain dicts.

    Args:
        model: A trained network (not modified).
        data: Its dataset.
        methods: Names from :data:`PREDICTIONS`.
        limit: Settings of the Gaussian-width prediction.
        actual: Settings of the measured limit.
        spectrum_settings: Settings of the spectrum.
        truth: Settings of the ground truths with intervals and the quadratic model.
        cosine_grid: Grid points of the cosine curve.
        kurtosis_tensors: Tensors of the cosine rule's layer kurtoses (``"weights"`` or
            003's notebook ``"weights+bias"``); the ``cosine`` result also holds ``K²``
            and ``p_safe`` under every convention in ``by_kurtosis_tensors``.
        spec: Prunable set.
        seed: Seed of the stochastic estimators.
        progress: Progress bars on stderr (the measured limit's sparsities); changes
            no number.

    Returns:
        ``method -> result dict`` (``LimitEstimate`` / ``ActualLimit`` /
        ``SpectrumSummary`` as dicts; the ρ curve thinned to :data:`CURVE_POINTS`), and
        ``"seconds"``: ``method -> wall-clock seconds`` it took.
    """
    out, seconds = {}, {}
    for name in methods:
        start = time.perf_counter()
        settings = limit or LimitSettings()
        if name == "gaussian-width":
            gw = dataclasses.asdict(settings)
            for key in ("probes", "max_iters", "bracket"):  # the certified limit's
                gw.pop(key)
            est = limits.predict_limit(model, data, "gaussian-width", spec=spec, seed=seed, **gw)
            out[name] = {**est.to_dict(), "curve": _thin(est.to_dict()["curve"])}
        elif name == "certified":
            out[name] = certified_limit(
                model, data, eps=settings.eps, samples=settings.samples,
                batch_size=settings.batch_size, num_probes=settings.probes,
                max_iters=settings.max_iters, tolerance=settings.bracket, seed=seed, spec=spec,
            ).to_dict()  # fmt: skip
        elif name == "cosine":
            out[name] = _cosine(model, cosine_grid, spec, kurtosis_tensors)
        elif name in ("quadratic", "retrained", "one-shot", "fine-tuned", "calibration"):
            out[name] = _truth(name, model, data, truth or TruthSettings(), settings, spec)
        elif name == "actual":
            a = dataclasses.asdict(actual or ActualSettings())
            measured = limits.find_actual_limit(model, data, spec=spec, progress=progress, **a)
            out[name] = measured.to_dict()
        elif name == "spectrum":
            s = spectrum_settings or SpectrumSettings()
            out[name] = spectrum(model, data, s, seed, spec).to_dict()
        else:
            raise PrunelabError(f"unknown prediction {name!r}; valid: {', '.join(PREDICTIONS)}")
        seconds[name] = time.perf_counter() - start
    if seconds:  # the cost of predicting vs measuring (wall clock, not part of any hash)
        out["seconds"] = seconds
    return out


def _truth(name: str, model, data, t: TruthSettings, limit: LimitSettings, spec) -> dict:
    """A ground truth with its interval, or a quadratic / calibration limit (``ε`` = the loss ε).

    The quadratic ``ε`` is the loss tolerance, or for an embedding model ``1 − min_cosine``
    (:func:`~prunelab.limits.task_metric.loss_eps`), the ``ε`` its loss truth uses.
    """
    if name == "one-shot":
        return limits.one_shot_limit(
            model, data, t.tolerance, t.loss_tolerance, t.grid(), t.bootstrap, spec=spec,
            min_cosine=t.min_cosine,
        ).to_dict()  # fmt: skip
    if name == "fine-tuned":
        ft = TrainConfig(epochs=t.finetune_epochs, lr=t.finetune_lr, schedule="constant")
        return limits.fine_tuned_limit(
            model, data, ft, t.tolerance, t.seeds, steps=t.bisect_steps, spec=spec,
            loss_tolerance=t.loss_tolerance, min_cosine=t.min_cosine, reference=t.reference,
        ).to_dict()  # fmt: skip
    eps = loss_eps(data.task, t.loss_tolerance, t.min_cosine)
    if name == "calibration":  # measured on the curvature predictors' training examples
        return limits.calibration_limit(
            model, data, eps, t.grid(), samples=limit.samples, bootstrap=t.bootstrap, spec=spec
        ).to_dict()  # fmt: skip
    fn = (
        limits.quadratic_one_shot_limit if name == "quadratic" else limits.retrained_quadratic_limit
    )
    return fn(
        model, data, eps, t.grid(), samples=limit.samples, batch_size=limit.batch_size, spec=spec,
    ).to_dict()  # fmt: skip


def _cosine(model, grid: int, spec, kurtosis_tensors: str) -> dict:
    """The cosine rule under ``kurtosis_tensors``; ``K²`` and ``p_safe`` under each convention."""
    rule = limits.cosine_rule(model, grid=grid, spec=spec, kurtosis_tensors=kurtosis_tensors)
    out = rule.to_dict()
    out["by_kurtosis_tensors"] = {}
    for tensors in KURTOSIS_TENSORS:  # p* is the same: only the kurtoses differ
        other = rule if tensors == kurtosis_tensors else limits.cosine_rule(
            model, grid=grid, spec=spec, kurtosis_tensors=tensors
        )  # fmt: skip
        keep = ("k2", "multiplier", "guard", "p_safe")
        out["by_kurtosis_tensors"][tensors] = {k: getattr(other, k) for k in keep}
    return out


def _load(ckpt, data_dir, data_options=None, part=None, device=None):
    """Model (on ``device``), mask and data of ``ckpt``; refuses an unwritable ``report/<part>``."""
    model, mask, meta = checkpoint.load(ckpt, device)
    if part is not None:
        check_writable(report_dir(ckpt, part))
    return model, mask, load_data(meta.get("data"), data_dir, options=data_options)


def spectrum_job(
    ckpt: str | Path,
    settings: SpectrumSettings | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
    data_options: dict | None = None,
    *,
    progress: bool = False,
    device: str | None = None,
) -> dict:
    """SLQ spectrum of a checkpoint's curvature over its prunable set.

    Writes ``report/spectrum/{spectral_density.png, ritz.csv, spectrum.json}`` and, with
    ``settings.per_layer``, ``layer_spectral_density.png`` and ``layer_ritz.csv``.
    ``progress`` shows a bar of the Lanczos steps on stderr.

    Returns:
        The :class:`~prunelab.curvature.SpectrumSummary` as a dict plus ``files``.
    """
    model, mask, data = _load(ckpt, data_dir, data_options, "spectrum", device)
    summary = spectrum(
        model, data, settings or SpectrumSettings(), seed, mask.spec, progress=progress
    )
    if not main_process():  # torchrun: every rank has the numbers, rank 0 writes them
        return {**summary.to_dict(), "files": {}}
    files = write_spectrum_report(summary, report_dir(ckpt, "spectrum"))
    return {**summary.to_dict(), "files": {k: str(v) for k, v in files.items()}}


def score_job(
    ckpt: str | Path,
    criterion: str,
    hparams: dict | None = None,
    samples: int = PruneSettings.samples,
    data_dir: str | Path | None = None,
    data_options: dict | None = None,
    device: str | None = None,
) -> dict:
    """Score every prunable weight of a checkpoint and save the scores and a histogram.

    Writes ``report/scores/<criterion>.safetensors`` (one tensor per parameter) and
    ``<criterion>.png`` (histogram of log10 scores over surviving weights).

    Returns:
        Per-layer summary statistics of the scores and the file paths.
    """
    crit = CRITERIA.get(criterion)
    hp = dataclasses.asdict(crit.make_hparams(**(hparams or {})))
    model, mask, meta = checkpoint.load(ckpt, device)
    check_writable(report_dir(ckpt, "scores"))
    batches = loss_fn = None
    if crit.needs_data:
        data = load_data(meta.get("data"), data_dir, options=data_options)
        batches, loss_fn = (
            list(data.batches("train", PruneSettings.batch_size, limit=samples)),
            loss_function(data),
        )
    scores = score(model, criterion, batches, loss_fn, spec=mask.spec, **hp)
    out = report_dir(ckpt, "scores")
    if not main_process():  # torchrun: rank 0 alone writes
        return {"criterion": criterion, "hparams": hp, "layers": [], "files": []}
    tensors = {k: v.detach().cpu().contiguous() for k, v in scores.items()}
    st = atomic_write_bytes(out / f"{criterion}.safetensors", save_tensors(tensors))
    alive = torch.cat([v[mask.masks[k]].flatten().double() for k, v in tensors.items()])
    counts, edges = np.histogram(torch.log10(alive.abs().clamp_min(1e-30)).numpy(), bins=80)
    png = plots.histogram(
        edges.tolist(), counts.tolist(), out / f"{criterion}.png",
        title=f"{criterion} scores of surviving weights", xlabel=f"log10 |{criterion} score|",
    )  # fmt: skip
    rows = [
        {"layer": k, "kept": int(mask.masks[k].sum()), "mean": float(v[mask.masks[k]].mean()),
         "max": float(v.max()), "min": float(v[mask.masks[k]].min())}
        for k, v in tensors.items()
    ]  # fmt: skip
    return {"criterion": criterion, "hparams": hp, "layers": rows,
            "files": [str(st), str(png)]}  # fmt: skip
