"""Fixed-width text tables for the terminal (the CLI's one-screen summaries)."""

from __future__ import annotations

from collections.abc import Sequence

from prunelab.experiments.report.html import fmt


def text_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Render rows as a fixed-width text table for terminals."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def metrics_text(metrics: dict, split: str = "test") -> str:
    """One phrase for a model's quality on a split, in its task's own measure.

    Example:
        >>> metrics_text({"loss": 0.25, "accuracy": 93.5})
        'test accuracy 93.50%, loss 0.2500'
        >>> metrics_text({"loss": 2.0, "accuracy": 41.0, "perplexity": 7.389}, "validation")
        'validation perplexity 7.389 (loss 2.0000 nats, next-token accuracy 41.00%)'
        >>> metrics_text({"loss": 0.0, "accuracy": None, "cosine": 1.0})
        'test mean cosine to the dense embeddings 1.0000 (loss 1 - cos 0.0000)'
    """
    loss = metrics["loss"]
    if metrics.get("perplexity") is not None:
        return (
            f"{split} perplexity {metrics['perplexity']:.4g} (loss {loss:.4f} nats, "
            f"next-token accuracy {metrics['accuracy']:.2f}%)"
        )
    if metrics.get("cosine") is not None:
        return (
            f"{split} mean cosine to the dense embeddings {metrics['cosine']:.4f} "
            f"(loss 1 - cos {loss:.4f})"
        )
    if metrics.get("accuracy") is not None:
        return f"{split} accuracy {metrics['accuracy']:.2f}%, loss {loss:.4f}"
    return f"{split} loss {loss:.4f}"
