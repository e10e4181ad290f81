"""The one HTML report writer: a self-contained page of tables, figures and fragments.

Every report of the package (classifier, foundation model, spectral models, the
job's page) is written by :func:`write_html_report`, so they look alike and a
report folder can be moved or copied as a whole (images are linked relatively).
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; border-bottom: 2px solid #ccc; }
h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; border: 1px solid #eee; }
.scroll { overflow-x: auto; max-width: 100%; }
"""


def _is_image(content: Any) -> bool:
    if isinstance(content, Path):
        return True
    return isinstance(content, str) and "<" not in content and content.lower().endswith(".png")


def _fragment(content: Any, out_dir: Path) -> str:
    if isinstance(content, pd.DataFrame):
        # A RangeIndex carries no information; keep any index that does.
        index = not isinstance(content.index, pd.RangeIndex)
        return f'<div class="scroll">{content.to_html(float_format="%.3f", index=index)}</div>'
    if _is_image(content):
        # Relative link, so the report folder can be moved or copied as a whole.
        src = Path(os.path.relpath(Path(content).resolve(), out_dir.resolve())).as_posix()
        alt = html.escape(Path(content).stem)
        return f'<img src="{html.escape(src)}" alt="{alt}">'
    if isinstance(content, list | tuple):
        return "\n".join(_fragment(c, out_dir) for c in content)
    return str(content)


def write_html_report(
    out_dir: str | Path,
    title: str,
    sections: Sequence[tuple[str, Any]],
) -> Path:
    """Write ``out_dir/report.html``: a title and one heading per section.

    Parameters
    ----------
    out_dir : str or Path
        Folder of the report; created if needed.
    title : str
        Page title and top heading (escaped).
    sections : sequence of (heading, content)
        ``content`` is a DataFrame (rendered with ``to_html(float_format="%.3f")``),
        a PNG path (a ``Path``, or a ``str`` ending in ``.png``: embedded as an
        ``<img>`` with a link relative to ``out_dir``), an HTML fragment (any
        other ``str``, inserted verbatim), or a list / tuple of those.

    Returns
    -------
    Path
        The written ``report.html``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, content in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>\n{_fragment(content, out_dir)}")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
