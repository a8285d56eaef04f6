"""A recipe's report: report.md next to its figures, and report.html with every figure embedded.

A report is a list of Sections; a section holds blocks: text (Markdown paragraphs and "- " bullet
lists, with **bold** and `code`), Tables and Figures. Both files are written from the same blocks,
so no Markdown parser is needed; the HTML page is self-contained (PNG figures as base64 data URIs).
"""
from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..storage import atomic_write_bytes


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    path: Path          # a PNG written by the recipe (usually inside one of its run folders)
    caption: str


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)   # str (Markdown text) | Table | Figure


# ------------------------------------------------------------------------------ Markdown
def _md_cell(c) -> str:
    return str(c).replace("|", "\\|")   # a pipe inside a cell would end it


def _md_table(t: Table) -> str:
    lines = ["| " + " | ".join(map(_md_cell, t.headers)) + " |", "|" + "---|" * len(t.headers)]
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in t.rows]
    return "\n".join(lines)


def to_markdown(title: str, intro: list[str], sections: list[Section], folder: Path) -> str:
    out = [f"# {title}", "", *intro, ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                out += [_md_table(b), ""]
            elif isinstance(b, Figure):
                rel = os.path.relpath(b.path, folder)
                out += [f"![{b.caption}]({Path(rel).as_posix()})", "", f"*{b.caption}*", ""]
            else:
                out += [str(b).rstrip(), ""]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------ HTML
_INLINE = [(re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"), (re.compile(r"`(.+?)`"), r"<code>\1</code>")]


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


def _html_text(text: str) -> str:
    """Paragraphs separated by blank lines; a paragraph whose lines start with '- ' is a list."""
    parts = []
    for para in re.split(r"\n\s*\n", str(text).strip()):
        lines = para.splitlines()
        if lines and all(line.startswith("- ") for line in lines):
            parts.append("<ul>" + "".join(f"<li>{_inline(line[2:])}</li>" for line in lines) + "</ul>")
        elif para.strip():
            parts.append(f"<p>{_inline(' '.join(line.strip() for line in lines))}</p>")
    return "\n".join(parts)


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{_inline(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in t.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_figure(f: Figure) -> str:
    data = base64.b64encode(Path(f.path).read_bytes()).decode("ascii")
    cap = _inline(f.caption)
    return (f'<figure><img alt="{html.escape(f.caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{cap}</figcaption></figure>")


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}figure{margin:1.2em 0}
img{max-width:100%;image-rendering:pixelated}figcaption{color:#555;font-size:.9em}code{background:#f3f3f3;padding:0 .2em}"""


def to_html(title: str, intro: list[str], sections: list[Section]) -> str:
    body = [f"<h1>{_inline(title)}</h1>", _html_text("\n".join(intro))]
    for s in sections:
        body.append(f"<h2>{_inline(s.title)}</h2>")
        for b in s.blocks:
            body.append(_html_table(b) if isinstance(b, Table) else _html_figure(b) if isinstance(b, Figure)
                        else _html_text(b))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(folder: Path, title: str, intro: list[str], sections: list[Section]) -> tuple[Path, Path]:
    """Write folder/report.md and folder/report.html (figures embedded); returns both paths."""
    folder = Path(folder)
    md, page = folder / "report.md", folder / "report.html"
    atomic_write_bytes(md, to_markdown(title, intro, sections, folder).encode())
    atomic_write_bytes(page, to_html(title, intro, sections).encode())
    return md, page
