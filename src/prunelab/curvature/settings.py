"""Settings of a spectrum measurement (SLQ density, top eigenvalues, traces).

Declared once: ``prunelab spectrum`` flags, a sweep's ``[predictions.spectrum]`` table
and the defaults of :func:`prunelab.curvature.spectrum_summary` all come from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from prunelab.schema import setting


@dataclass(frozen=True)
class SpectrumSettings:
    """How the curvature spectrum of a trained model is measured.

    Attributes:
        num_iters: Lanczos steps per SLQ run.
        num_runs: Rademacher SLQ runs (one block of products).
        samples: Training examples in every curvature-vector product (the first ones).
        batch_size: Examples per product batch (memory only).
        operator: ``hessian``, ``ggn`` or (empirical) ``fisher``.
        per_layer: Also per layer (each diagonal block): SLQ spectrum, top eigenvalue and
            traces; ``L`` more passes per Lanczos step.
    """

    num_iters: int = setting(64, "Lanczos steps per run", flag="iters", minimum=1)
    num_runs: int = setting(4, "SLQ runs (one block)", flag="runs", minimum=1)
    samples: int = setting(1024, "training examples in each product", minimum=1)
    batch_size: int = setting(256, "examples per product batch (memory only)", minimum=1)
    operator: Literal["hessian", "ggn", "fisher"] = setting("hessian", "curvature operator")
    per_layer: bool = setting(False, "also per-layer spectra, top eigenvalues, traces")

    def to_dict(self) -> dict:
        """Plain dict (sweep identities, ``meta.json``)."""
        return asdict(self)
