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
