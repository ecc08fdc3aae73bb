"""The models' report as text: one self-contained HTML page, or Markdown with its pictures.

:mod:`crm_ml.report` gathers the sections (metrics, the literature's figures,
notes, pictures); this module only lays them out.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crm_ml.report import Section

__all__ = ["render_html", "render_markdown"]

logger = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;padding:0 1em}
h1{font-size:1.6em} h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ccc;padding:.25em .6em;
font-size:.92em;text-align:left} th{background:#f3f3f3} .meta{color:#666;font-size:.85em}
.imgs{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0} figcaption{font-size:.8em;color:#555}
"""


def render_html(sections: list[Section], *, generated: str | None = None) -> str:
    """The report as one self-contained HTML page (pictures inlined)."""
    generated = generated or dt.datetime.now().isoformat(timespec="seconds")
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<title>CRM assistant: model report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>CRM assistant: model report</h1>",
             f"<p class='meta'>Held-out metrics of the model versions in use, generated "
             f"{html.escape(generated)}. Figures from the literature side by side.</p>"]
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        if sec.run is None:
            parts.append("<p><em>Not trained yet: run <code>crm-ml train</code>.</em></p>")
            continue
        parts.append(f"<p class='meta'>{html.escape(sec.run.name)} version "
                     f"{html.escape(sec.run.version)}, trained {html.escape(sec.run.trained_at)}"
                     "</p>")
        parts.append("<table><tr><th>metric</th><th>ours (held out)</th>"
                     "<th>literature</th></tr>")
        for metric, ours, paper in sec.rows:
            parts.append(f"<tr><td>{html.escape(metric)}</td><td>{ours}</td>"
                         f"<td>{html.escape(paper)}</td></tr>")
        parts.append("</table>")
        for note in sec.notes:
            parts.append(f"<p>{html.escape(note)}</p>")
        if sec.images:
            parts.append("<div class='imgs'>")
            for caption, png in sec.images:
                b64 = base64.b64encode(png).decode()
                parts.append(f"<figure><img src='data:image/png;base64,{b64}' "
                             f"alt='{html.escape(caption)}'><figcaption>"
                             f"{html.escape(caption)}</figcaption></figure>")
            parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")[:60]


def render_markdown(sections: list[Section], figures_dir: Path, *,
                    generated: str | None = None) -> str:
    """The report as Markdown; pictures are written to ``figures_dir`` and linked."""
    generated = generated or dt.datetime.now().isoformat(timespec="seconds")
    figures_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# CRM assistant: model report", "",
             f"Held-out metrics of the model versions in use, generated {generated}.", ""]
    for sec in sections:
        lines += [f"## {sec.title}", ""]
        if sec.run is None:
            lines += ["*Not trained yet: run `crm-ml train`.*", ""]
            continue
        lines += [f"{sec.run.name} version {sec.run.version}, trained {sec.run.trained_at}", "",
                  "| metric | ours (held out) | literature |", "|---|---|---|"]
        lines += [f"| {m} | {o} | {p} |" for m, o, p in sec.rows]
        lines.append("")
        lines += [f"{n}\n" for n in sec.notes]
        for caption, png in sec.images:
            name = f"{sec.key}_{_slug(caption)}.png"
            (figures_dir / name).write_bytes(png)
            lines += [f"![{caption}]({figures_dir.name}/{name})", ""]
    return "\n".join(lines)
