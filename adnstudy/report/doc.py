"""A small document model — sections of text, tables and figures — written as Markdown, HTML, CSV and PNG.

The report (``adnstudy report``) and the reproduction (``make reproduce``) both
build a :class:`Document` and hand it to :func:`write_document`, which writes
into one folder:

* ``<table>.csv`` per table, every value at full precision (what a script reads),
* ``<figure>.png`` per figure,
* ``<stem>.md``: the tables as Markdown pipe tables (values rounded for reading),
  the figures as links to their PNG files,
* ``<stem>.html`` (unless ``html=False``): the same, self-contained — figures
  embedded as base64 ``data:`` URIs and the style inline, so it opens from a file
  with no server and nothing else beside it.

Text blocks take a little Markdown: ``code`` in backticks and **bold**; the HTML
writer escapes everything else.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as MplFigure

from adnstudy.report.style import png_bytes


@dataclass
class Text:
    text: str


@dataclass
class Table:
    """A table: ``name`` is its file stem (``<name>.csv``); ``formats`` maps a column to a format spec or function."""

    name: str
    title: str
    df: pd.DataFrame
    note: str = ""
    formats: Mapping[str, str | Callable[[object], str]] = field(default_factory=dict)


@dataclass
class Figure:
    name: str
    title: str
    fig: MplFigure
    note: str = ""
    _png: bytes | None = field(default=None, repr=False)

    def png(self) -> bytes:
        if self._png is None:
            self._png = png_bytes(self.fig)
        return self._png


Block = Text | Table | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block | Section] = field(default_factory=list)

    def add(self, *blocks: Block | Section | None) -> Section:
        self.blocks.extend(b for b in blocks if b is not None)
        return self

    def text(self, text: str) -> Section:
        return self.add(Text(text))


@dataclass
class Document:
    title: str
    intro: list[Block] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def walk(self):
        """Every table and figure, in document order."""
        def go(blocks):
            for b in blocks:
                if isinstance(b, Section):
                    yield from go(b.blocks)
                elif isinstance(b, Table | Figure):
                    yield b
        yield from go(self.intro)
        yield from go(self.sections)


# ---------------------------------------------------------------- values


def format_value(value: object, spec: str | Callable[[object], str] | None = None) -> str:
    """A cell for reading: thousands separators on large numbers, four significant digits on small ones."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "—"
    if callable(spec):
        return spec(value)
    if spec:
        return format(value, spec)
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if v == 0.0:
            return "0"
        if not math.isfinite(v):
            return str(v)
        if abs(v) >= 1e4:
            return f"{v:,.0f}"
        if abs(v) >= 1e-3:
            return f"{v:.4g}"
        return f"{v:.2e}"
    return str(value)


def formatted(table: Table) -> list[list[str]]:
    """The table's rows as text cells."""
    cols = list(table.df.columns)
    return [[format_value(v, table.formats.get(c)) for c, v in zip(cols, row, strict=True)]
            for row in table.df.itertuples(index=False, name=None)]


# ---------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    """The table as a Markdown pipe table (numbers right-aligned)."""
    cols = [str(c) for c in table.df.columns]
    numeric = [pd.api.types.is_numeric_dtype(table.df[c]) and not pd.api.types.is_bool_dtype(table.df[c])
               for c in table.df.columns]
    lines = ["| " + " | ".join(_md_cell(c) for c in cols) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in formatted(table)]
    return "\n".join(lines)


def render_markdown(doc: Document) -> str:
    out = [f"# {doc.title}", ""]

    def blocks(items: Sequence[Block | Section], level: int) -> None:
        for b in items:
            if isinstance(b, Section):
                out.extend([f"{'#' * level} {b.title}", ""])
                blocks(b.blocks, level + 1)
            elif isinstance(b, Text):
                out.extend([b.text, ""])
            elif isinstance(b, Table):
                out.extend([f"**{b.title}** (`{b.name}.csv`)", ""])
                if b.note:
                    out.extend([b.note, ""])
                out.extend([markdown_table(b) if len(b.df) else "*(no rows)*", ""])
            elif isinstance(b, Figure):
                out.extend([f"![{b.title}]({b.name}.png)", "", f"*{b.title}.*" + (f" {b.note}" if b.note else ""), ""])

    blocks(doc.intro, 2)
    blocks(doc.sections, 2)
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------- HTML

FOLD_ROWS = 24  # a longer table is folded (<details>) in the HTML page
SCREEN_PX_PER_IN = 125  # CSS pixels per inch of figure width on screen (96 is print size)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;border-bottom:2px solid #0072B2;padding-bottom:.3rem}
h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:1px solid #ccc}
h3{font-size:1.05rem;margin-top:1.5rem}
table{border-collapse:collapse;margin:.4rem 0 1.2rem;font-size:.85rem}
th,td{border-bottom:1px solid #ddd;padding:.2rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f6f9;border-bottom:2px solid #bbb}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.caption{font-weight:600;margin:.8rem 0 .2rem}
.note{color:#555;font-size:.9rem;margin:.1rem 0 .4rem}
figure{margin:1rem 0 1.6rem}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.9rem;color:#444}
code{background:#f3f3f3;padding:0 .2rem;border-radius:3px;font-size:.9em}
.toc{font-size:.9rem}
.scroll{overflow-x:auto}
details{margin:.2rem 0 1.2rem}
summary{cursor:pointer;color:#0072B2;font-size:.9rem}
"""


def _inline(text: str) -> str:
    """Escape, then the two Markdown marks the writers use: `code` and **bold**."""
    t = html.escape(text, quote=False)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)


def _html_paragraphs(text: str, cls: str | None = None) -> str:
    attr = f' class="{cls}"' if cls else ""
    return "".join(f"<p{attr}>{_inline(p)}</p>" for p in text.split("\n\n") if p.strip())


def html_table(table: Table) -> str:
    numeric = [pd.api.types.is_numeric_dtype(table.df[c]) and not pd.api.types.is_bool_dtype(table.df[c])
               for c in table.df.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.df.columns)
    rows = "".join(
        "<tr>" + "".join(f'<td class="num">{html.escape(v)}</td>' if n else f"<td>{html.escape(v)}</td>"
                         for v, n in zip(row, numeric, strict=True)) + "</tr>"
        for row in formatted(table))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def render_html(doc: Document) -> str:
    """The document as one HTML page: style inline, figures as base64 data URIs."""
    body: list[str] = [f"<h1>{html.escape(doc.title)}</h1>"]

    def blocks(items: Sequence[Block | Section], level: int) -> None:
        for b in items:
            if isinstance(b, Section):
                body.append(f'<h{level} id="{_anchor(b.title)}">{html.escape(b.title)}</h{level}>')
                blocks(b.blocks, min(level + 1, 6))
            elif isinstance(b, Text):
                body.append(_html_paragraphs(b.text))
            elif isinstance(b, Table):
                body.append(f'<p class="caption">{html.escape(b.title)} '
                            f'<span class="note">(<code>{html.escape(b.name)}.csv</code>)</span></p>')
                if b.note:
                    body.append(_html_paragraphs(b.note, "note"))
                if not len(b.df):
                    body.append('<p class="note">(no rows)</p>')
                elif len(b.df) > FOLD_ROWS:  # long tables folded, so the page stays readable
                    body.append(f'<details><summary>{len(b.df)} rows</summary><div class="scroll">'
                                f"{html_table(b)}</div></details>")
                else:
                    body.append(f'<div class="scroll">{html_table(b)}</div>')
            elif isinstance(b, Figure):
                data = base64.b64encode(b.png()).decode("ascii")
                cap = _inline(b.title + ".") + (" " + _inline(b.note) if b.note else "")
                width = round(b.fig.get_figwidth() * SCREEN_PX_PER_IN)  # its print size, a little enlarged
                body.append(f'<figure><img alt="{html.escape(b.title)}" width="{width}" '
                            f'src="data:image/png;base64,{data}">'
                            f"<figcaption>{cap}</figcaption></figure>")

    blocks(doc.intro, 2)
    if doc.sections:
        toc = "".join(f'<li><a href="#{_anchor(s.title)}">{html.escape(s.title)}</a></li>' for s in doc.sections)
        body.append(f'<nav class="toc"><ul>{toc}</ul></nav>')
    blocks(doc.sections, 2)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------- files


def write_document(doc: Document, folder: Path, stem: str = "report", *, html_page: bool = True) -> list[Path]:
    """Write the document's CSVs, PNGs, ``<stem>.md`` and (``html_page``) ``<stem>.html`` into ``folder``.

    The folder must exist; the caller publishes it (atomically, for the report). Names must be unique.
    """
    names = [b.name for b in doc.walk()]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"document {doc.title!r}: names used twice: {', '.join(dup)}")
    written: list[Path] = []
    for b in doc.walk():
        if isinstance(b, Table):
            path = folder / f"{b.name}.csv"
            b.df.to_csv(path, index=False)
        else:
            path = folder / f"{b.name}.png"
            path.write_bytes(b.png())
        written.append(path)
    md = folder / f"{stem}.md"
    md.write_text(render_markdown(doc), encoding="utf-8")
    written.append(md)
    if html_page:
        page = folder / f"{stem}.html"
        page.write_text(render_html(doc), encoding="utf-8")
        written.append(page)
    return written
