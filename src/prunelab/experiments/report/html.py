"""Minimal, dependency-free HTML and CSV writers for report folders."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from pathlib import Path

from prunelab._io import atomic_write_text

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } .note { color: #555; font-size: 0.95em; }
code { background: #f6f6f6; padding: 0 0.2em; }
"""


def fmt(value: object, digits: int = 4) -> str:
    """Format a cell: floats to ``digits`` significant figures, ``None`` as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """Render a list of dict rows as an HTML table (columns default to the first row's keys)."""
    if not rows:
        return "<p class='note'>(no rows)</p>"
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_csv(path: str | Path, rows: Sequence[dict], columns: Sequence[str] | None = None) -> Path:
    """Write rows to a CSV file atomically."""
    columns = list(columns or (rows[0].keys() if rows else []))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def section(title: str, *blocks: str) -> str:
    """An ``<h2>`` section made of already-rendered HTML blocks."""
    return f"<h2>{html.escape(title)}</h2>\n" + "\n".join(blocks)


def paragraph(text: str, note: bool = False) -> str:
    """An escaped paragraph (``note=True`` renders it smaller and grey)."""
    cls = " class='note'" if note else ""
    return f"<p{cls}>{html.escape(text)}</p>"


def image(src: str, alt: str, csv_src: str | None = None) -> str:
    """An image with an optional link to the CSV behind it."""
    link = f" <a href='{html.escape(csv_src)}'>data (CSV)</a>" if csv_src else ""
    return f"<p><img src='{html.escape(src)}' alt='{html.escape(alt)}'><br>{link}</p>"


def write_page(path: str | Path, title: str, blocks: Sequence[str]) -> Path:
    """Write a complete HTML page atomically."""
    body = "\n".join(blocks)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n"
        "</body></html>\n"
    )
    return atomic_write_text(path, page)


def preformatted(text: str) -> str:
    """An escaped ``<pre>`` block (config files, settings)."""
    return f"<pre>{html.escape(text)}</pre>"


def bullet_list(items: Sequence[str]) -> str:
    """An escaped ``<ul>`` list."""
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"
