"""The Markdown tables of a benchmark result (pasted into BENCHMARKS.md)."""

from __future__ import annotations

import math

from _contestants import EIG_TOL
from _plan import OPS
from _timing import median_ratio

PRUNELAB = ("prunelab", "prunelab cache")


def _fmt_s(s: float) -> str:
    if math.isnan(s):
        return "–"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _accurate(cells: dict) -> set[str]:
    """Contestants whose top eigenvalue is within the tolerance of the best one.

    Every method here returns a Rayleigh quotient, a lower bound of λ_max, so the largest
    value is the most accurate; a peer further below it than the tolerance did not solve
    the same problem and is not compared for speed.
    """
    tops = {n: c["median_info"].get("top") for n, c in cells.items()}
    tops = {n: t for n, t in tops.items() if isinstance(t, float) and not math.isnan(t)}
    if not tops:
        return set(cells)
    best = max(tops.values())
    return {n for n, t in tops.items() if best - t <= EIG_TOL * abs(best)}


def _vs_fastest(cells: dict, ours: str, op: str = "") -> str:
    """``ours / fastest peer`` (median of per-repetition ratios) and the peer's name.

    For the top eigenvalue only peers at equal accuracy count (:func:`_accurate`).
    """
    if ours not in cells:
        return "–"
    best = None
    fair = _accurate(cells) if op == "top" else set(cells)
    for name, cell in cells.items():
        if name in PRUNELAB or name not in fair:
            continue
        k = min(len(cell["wall"]), len(cells[ours]["wall"]))
        r = median_ratio(cells[ours]["wall"][:k], cell["wall"][:k])
        if best is None or r > best[0]:
            best = (r, name)
    return "–" if best is None else f"**{best[0]:.2f}** ({best[1]})"


def _timing_table(run: dict, names: list[str]) -> list[str]:
    g = run["gradient"]
    head = ["operation", *names, "prunelab / fastest peer", "cache / fastest peer", "load"]
    lines = [
        f"Threads: {run['threads']}. Unit: one full-data gradient, "
        f"{_fmt_s(g['median_s'])} (median of {len(g['wall'])}). Cells: median time per call, "
        "and in brackets time / gradient (median of per-repetition ratios). The top "
        "eigenvalue's ratio counts only peers within 1e-3 of the best (largest) value.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
    for op, (label, _kw) in OPS.items():
        cells = run["ops"].get(op)
        if not cells:
            continue
        reps = max(len(c["wall"]) for c in cells.values())
        row = [f"{label} ({reps} rep{'s' if reps > 1 else ''})"]
        loads = []
        for n in names:
            c = cells.get(n)
            if c is None:
                row.append("–")
                continue
            loads += c["load"]
            row.append(f"{_fmt_s(c['median_s'])} ({c['gradients']:.2f})")
        row += [_vs_fastest(cells, "prunelab", op), _vs_fastest(cells, "prunelab cache", op)]
        row.append(f"{min(loads):.1f}–{max(loads):.1f}" if loads else "–")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _checks_table(run: dict, names: list[str]) -> list[str]:
    ck, ops = run["checks"], run["ops"]

    def info(op, n, field, fmt="{:.5g}"):
        v = ops.get(op, {}).get(n, {}).get("median_info", {}).get(field)
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)

    head = ["", *names]
    rows = [
        [
            "HVP rel. error vs prunelab",
            *[f"{ck['hvp_rel_err_vs_prunelab'].get(n, math.nan):.1e}" for n in names],
        ],
        [
            "10 HVPs rel. error",
            *[f"{ck['hvp10_rel_err_vs_prunelab'].get(n, math.nan):.1e}" for n in names],
        ],
        ["top eigenvalue (1e-3)", *[info("top", n, "top", "{:.5f}") for n in names]],
        ["  its products", *[info("top", n, "products", "{:.0f}") for n in names]],
        ["  residual bound", *[info("top", n, "residual", "{:.1e}") for n in names]],
        ["SLQ 10 × 4 largest Ritz value", *[info("slq10", n, "top_ritz", "{:.5f}") for n in names]],
        ["trace (40 probes)", *[info("trace", n, "trace", "{:.4g}") for n in names]],
        ["diagonal sum (40 probes)", *[info("diag", n, "diag_sum", "{:.4g}") for n in names]],
    ]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    out += ["| " + " | ".join(r).replace("nan", "–") + " |" for r in rows]
    return out


def _memory_table(entry: dict) -> list[str]:
    mem = entry.get("memory")
    if not mem:
        return []
    d, steps = entry["dim"], mem["steps"]
    full = steps * d * 4 / 2**20
    basis = {"curvlinops": f"3 vectors ({3 * d * 4 / 2**20:.1f} MiB)"}
    lines = [
        f"Peak memory of {steps} Lanczos steps (one chain, first batch; peak-RSS growth "
        "after a warm-up HVP, one process per contestant). Full re-orthogonalisation "
        f"stores {steps} × D × 4 B = {full:.1f} MiB.",
        "",
        "| contestant | stored vectors (accounting) | peak RSS growth |",
        "| --- | --- | --- |",
    ]
    for name, r in mem["results"].items():
        what = basis.get(name, f"{steps} vectors ({full:.1f} MiB)")
        if "max_memory" in name:
            what = "capped (see text)"
        growth = f"{r['growth_mib']:.0f} MiB" if "growth_mib" in r else f"error {r.get('error')}"
        lines.append(f"| {name} | {what} | {growth} |")
    return lines


def markdown(result: dict) -> str:
    """All tables of ``result`` as one Markdown string."""
    ls, le = result["load_start"], result["load_end"]
    out = [
        f"Command: `{result['command']}`; started {result['started']}; "
        f"{result['machine']['cores']} cores, torch {result['machine']['torch']}; "
        f"load average at start {ls[0]:.1f} / {ls[1]:.1f} / {ls[2]:.1f}, "
        f"at end {le[0]:.1f} / {le[1]:.1f} / {le[2]:.1f}; {result['elapsed_s'] / 60:.1f} min.",
        "",
    ]
    for scale, entry in result["scales"].items():
        out += [f"#### {scale}: {entry['description']}", ""]
        for run in entry["runs"]:
            names = [n for n in _names(run)]
            out += _timing_table(run, names) + [""]
            out += _checks_table(run, names) + [""]
        out += _memory_table(entry) + [""]
    return "\n".join(out)


def _names(run: dict) -> list[str]:
    seen: list[str] = []
    for cells in run["ops"].values():
        for n in cells:
            if n not in seen:
                seen.append(n)
    return seen
