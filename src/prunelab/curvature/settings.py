"""Settings of a spectrum measurement (SLQ density, top eigenvalues, traces).

Declared once: ``prunelab spectrum`` flags, a sweep's ``[predictions.spectrum]`` table
and the defaults of :func:`prunelab.curvature.spectrum_summary` all come from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from prunelab.curvature._basis import parse_bytes
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
        max_memory: Cap on the Lanczos basis, bytes or a size such as ``"512MiB"``
            (``None``: full re-orthogonalisation, refused above 4 GiB). Above the cap
            the basis is kept in half precision, then only its latest vectors.
    """

    num_iters: int = setting(64, "Lanczos steps per run", flag="iters", minimum=1)
    num_runs: int = setting(4, "SLQ runs (one block)", flag="runs", minimum=1)
    samples: int = setting(1024, "training examples in each product", minimum=1)
    batch_size: int = setting(256, "examples per product batch (memory only)", minimum=1)
    operator: Literal["hessian", "ggn", "fisher"] = setting("hessian", "curvature operator")
    per_layer: bool = setting(False, "also per-layer spectra, top eigenvalues, traces")
    max_memory: int | str | None = setting(
        None, "cap on the Lanczos basis, e.g. 512MiB (half precision / fewer vectors above it)"
    )

    def __post_init__(self):
        parse_bytes(self.max_memory)  # refuse a bad size when the settings are read

    def to_dict(self) -> dict:
        """Plain dict (sweep identities, ``meta.json``); ``max_memory`` only when set.

        ``max_memory`` came later; leaving it out at its default keeps every identity
        written before it existed.
        """
        out = asdict(self)
        if out["max_memory"] is None:
            del out["max_memory"]
        return out
