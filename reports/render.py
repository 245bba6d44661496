"""Rendering that never lets model text become markup, and the report's one way to write numbers.

Model outputs, prompts and references go through `st.code` (literal text) or through HTML that
this module builds itself with `html.escape` on every piece of text; text inside markdown (labels,
case ids, snippets) goes through `md`."""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Mapping
from typing import Any

import streamlit as st

from harness.grading.grader import GRADES

GRADE_COLOUR = {"bad": "red", "good": "blue", "better": "green"}  # orange would read as a warning
CHANGE_COLOUR = {"improved": "green", "regressed": "red", "unchanged": "gray"}
CHANGE_MARK = {"improved": "▲", "regressed": "▼", "unchanged": "="}
SECTION_ORDER = {g: i for i, g in enumerate(GRADES)}
MAX_DIFF_CHARS = 6000  # difflib is quadratic in the worst case; past this, diff the prefixes
MAX_DETAIL_CHARS = 240  # a criterion's detail past this is cut (the full text is its tooltip)
# A word or one punctuation mark, with the whitespace before it: the diff compares the words and
# keeps the spacing, so that a replaced word never runs into its neighbour.
_TOKEN = re.compile(r"\s*(?:\w+|[^\w\s])")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")

BOX_STYLE = (
    "font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.85rem;"
    " white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.6;"
    " padding: 0.5rem 0.75rem; border-radius: 0.5rem; background: rgba(128,128,128,0.08)"
)
DEL_STYLE = (
    "background: rgba(214,58,30,0.18); color: inherit; text-decoration: line-through;"
    " text-decoration-color: #d63a1e; border-radius: 3px; padding: 0 1px"
)
INS_STYLE = (
    "background: rgba(26,156,62,0.22); color: inherit; text-decoration: underline;"
    " text-decoration-color: #1a9c3e; border-radius: 3px; padding: 0 1px"
)
PASS_MARK = '<b style="color:#1a9c3e">✓ pass</b>'
FAIL_MARK = '<b style="color:#d63a1e">✗ fail</b>'


# --- numbers -------------------------------------------------------------------------------------
# A share as a percentage is `harness.comparison.format.pct` (and `percent` for table columns):
# the command line writes the same figure the same way.


def points(x: float) -> str:
    """A change of a share, in percentage points: '+4.2 pts'."""
    return f"{x * 100:+.1f} pts"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def step_text(step: int | None) -> str:
    return "—" if step is None else str(step)


# --- markdown ------------------------------------------------------------------------------------


def md(text: str) -> str:
    """Escape text for st.markdown (case ids, model names: user data, never markup)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def badge(value: str, colours: Mapping[str, str] = GRADE_COLOUR) -> str:
    """A coloured markdown badge for a known label (grades, changes): never free text."""
    colour = colours.get(value, "gray")
    return f":{colour}-badge[{md(value)}]"


def change_badge(change: str) -> str:
    """▲ improved in green, ▼ regressed in red: the arrow says it without the colour."""
    colour = CHANGE_COLOUR.get(change, "gray")
    return f":{colour}-badge[{CHANGE_MARK.get(change, '')} {md(change)}]"


def snippet(text: str, limit: int = 70) -> str:
    """One line of an output for a compact row, escaped for markdown: newlines shown as ⏎."""
    flat = " ⏎ ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    if not flat:
        return "_(empty)_"
    cut = flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
    return md(cut)


# --- literal blocks ------------------------------------------------------------------------------


def text_block(text: str, *, empty: str = "(empty output)") -> None:
    """Literal text, wrapped: `<script>` shows as the characters it is."""
    if text == "":
        st.caption(empty)
    else:
        st.code(text, language=None, wrap_lines=True)


def messages(prompt_json: str) -> list[dict[str, str]]:
    try:
        value = json.loads(prompt_json)
    except (TypeError, json.JSONDecodeError):
        return [{"role": "user", "content": str(prompt_json)}]
    if isinstance(value, list):
        return [
            {"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in value
        ]
    return [{"role": "user", "content": str(value)}]


def prompt_block(prompt_json: str) -> None:
    """The conversation as one literal block, each message headed by its role."""
    msgs = messages(prompt_json)
    if len(msgs) == 1 and msgs[0]["role"] == "user":
        text_block(msgs[0]["content"], empty="(empty prompt)")
        return
    text_block("\n\n".join(f"[{m['role']}]\n{m['content']}" for m in msgs), empty="(empty)")


# --- diff ----------------------------------------------------------------------------------------


def _marked(tag: str, style: str, text: str) -> str:
    """The changed words inside the mark, the space before them outside it."""
    core = text.lstrip()
    lead = text[: len(text) - len(core)]
    return f'{html.escape(lead)}<{tag} style="{style}">{html.escape(core)}</{tag}>'


def diff_html(a: str, b: str) -> str:
    """Word-level diff of two outputs: words only in A struck through on red, words only in B
    underlined on green; a replaced word and its replacement always have a space between them."""
    note = ""
    if len(a) > MAX_DIFF_CHARS or len(b) > MAX_DIFF_CHARS:
        a, b = a[:MAX_DIFF_CHARS], b[:MAX_DIFF_CHARS]
        note = f" (first {MAX_DIFF_CHARS} characters)"
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    matcher = difflib.SequenceMatcher(
        None, [t.strip() for t in ta], [t.strip() for t in tb], autojunk=False
    )
    parts: list[str] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(html.escape("".join(tb[j1:j2])))
            continue
        if i2 > i1:
            parts.append(_marked("del", DEL_STYLE, "".join(ta[i1:i2])))
        if j2 > j1:
            inserted = "".join(tb[j1:j2])
            if i2 > i1 and not inserted[:1].isspace():
                inserted = " " + inserted  # keep "in" and "defines" from reading "indefines"
            parts.append(_marked("ins", INS_STYLE, inserted))
    body = "".join(parts) or "<em>(both empty)</em>"
    head = (
        '<div style="font-size:0.8rem;opacity:0.75;margin-bottom:0.2rem">diff A → B: '
        f"{matcher.ratio():.0%} of words shared{html.escape(note)} · "
        f'<del style="{DEL_STYLE}">only in A</del> · <ins style="{INS_STYLE}">only in B</ins></div>'
    )
    return f'<div class="tv-diff">{head}<div style="{BOX_STYLE}">{body}</div></div>'


# --- criteria ------------------------------------------------------------------------------------


def _cell(c: Mapping[str, Any] | None) -> str:
    if c is None:
        return '<td style="opacity:0.5">—</td>'
    mark = PASS_MARK if c.get("passed") else FAIL_MARK
    score = c.get("score")
    extra = f" · {score:.2f}" if isinstance(score, int | float) else ""
    full = str(c.get("detail") or "")
    cut = full if len(full) <= MAX_DETAIL_CHARS else full[: MAX_DETAIL_CHARS - 1] + "…"
    return (
        f'<td title="{html.escape(full)}">{mark}{extra}<br>'
        f"<span style='opacity:0.8'>{html.escape(cut)}</span></td>"
    )


def criteria_html(
    a: Mapping[str, Mapping[str, Any]], b: Mapping[str, Mapping[str, Any]] | None = None
) -> str:
    """Every criterion with its pass/fail and detail, for one run or two side by side, grouped
    bad → good → better. Rows whose outcome differs between the two runs are tinted. Fixed column
    widths, so that the table looks the same in every case."""
    ids = list(a) + [k for k in (b or {}) if k not in a]

    def section(cid: str) -> str:
        return str((a.get(cid) or (b or {}).get(cid) or {}).get("section", ""))

    ids.sort(key=lambda cid: SECTION_ORDER.get(section(cid), len(SECTION_ORDER)))
    two = b is not None
    widths = ("26%", "37%", "37%") if two else ("34%", "66%")
    cols = "".join(f'<col style="width:{w}">' for w in widths)
    head = "<th>criterion</th>" + ("<th>A</th><th>B</th>" if two else "<th>result</th>")
    rows = []
    for cid in ids:
        ca, cb = a.get(cid), (b or {}).get(cid)
        changed = two and (ca or {}).get("passed") != (cb or {}).get("passed")
        tint = ' style="background: rgba(255,200,0,0.14)"' if changed else ""
        name = f"<span style='opacity:0.7'>{html.escape(section(cid))}/</span>"
        name += f"<b>{html.escape(cid)}</b>"
        cells = _cell(ca) + (_cell(cb) if two else "")
        rows.append(f"<tr{tint}><td>{name}</td>{cells}</tr>")
    style = (
        "width:100%;table-layout:fixed;font-size:0.85rem;border-collapse:collapse;"
        "overflow-wrap:anywhere;word-break:break-word"
    )
    return (
        f'<table class="tv-criteria" style="{style}"><colgroup>{cols}</colgroup>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def changed_criteria(a: Mapping[str, Mapping[str, Any]], b: Mapping[str, Mapping[str, Any]]) -> str:
    """'✗ names-module · ✓ bare': criteria whose outcome differs, marked by their state in B."""
    out = []
    for cid in list(a) + [k for k in b if k not in a]:
        pa, pb = (a.get(cid) or {}).get("passed"), (b.get(cid) or {}).get("passed")
        if pa != pb:
            out.append(("✓ " if pb else "✗ ") + cid)
    return " · ".join(out)
