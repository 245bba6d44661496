"""Rendering that never lets model text become markup.

Model outputs, prompts and references go through `st.code` (literal text) or through HTML that
this module builds itself with `html.escape` on every piece of text."""

from __future__ import annotations

import difflib
import html
import json
import re
from collections.abc import Mapping
from typing import Any

import streamlit as st

GRADE_COLOUR = {"bad": "red", "good": "orange", "better": "green"}
CHANGE_COLOUR = {"improved": "green", "regressed": "red", "unchanged": "gray"}
MAX_DIFF_CHARS = 6000  # difflib is quadratic in the worst case; past this, diff the prefixes
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")

DIFF_STYLE = (
    "font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.85rem;"
    " white-space: pre-wrap; word-break: break-word; line-height: 1.5;"
    " padding: 0.5rem 0.75rem; border-radius: 0.5rem; background: rgba(128,128,128,0.08)"
)
DEL_STYLE = "background: rgba(255,75,75,0.25); text-decoration: line-through"
INS_STYLE = "background: rgba(33,195,84,0.28); text-decoration: none"


PASS_MARK = '<b style="color:#1a9c3e">✓ pass</b>'
FAIL_MARK = '<b style="color:#d63a1e">✗ fail</b>'


def md(text: str) -> str:
    """Escape text for st.markdown (case ids, model names: user data, never markup)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def badge(value: str, colours: Mapping[str, str] = GRADE_COLOUR) -> str:
    """A coloured markdown badge for a known label (grades, changes): never free text."""
    colour = colours.get(value, "gray")
    return f":{colour}-badge[{md(value)}]"


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


def diff_html(a: str, b: str) -> str:
    """Word-level diff of two outputs: removed text struck through in red, added text green."""
    note = ""
    if len(a) > MAX_DIFF_CHARS or len(b) > MAX_DIFF_CHARS:
        a, b = a[:MAX_DIFF_CHARS], b[:MAX_DIFF_CHARS]
        note = f" (first {MAX_DIFF_CHARS} characters)"
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    parts: list[str] = []
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            parts.append(html.escape("".join(ta[i1:i2])))
            continue
        if i2 > i1:
            parts.append(f'<del style="{DEL_STYLE}">{html.escape("".join(ta[i1:i2]))}</del>')
        if j2 > j1:
            parts.append(f'<ins style="{INS_STYLE}">{html.escape("".join(tb[j1:j2]))}</ins>')
    body = "".join(parts) or "<em>(both empty)</em>"
    ratio = matcher.ratio()
    head = (
        f'<div style="font-size:0.8rem;opacity:0.7;margin-bottom:0.2rem">diff A → B: '
        f"{ratio:.0%} similar{html.escape(note)}</div>"
    )
    return f'<div class="tv-diff">{head}<div style="{DIFF_STYLE}">{body}</div></div>'


def _cell(c: Mapping[str, Any] | None) -> str:
    if c is None:
        return '<td style="opacity:0.5">—</td>'
    passed = bool(c.get("passed"))
    mark = PASS_MARK if passed else FAIL_MARK
    score = c.get("score")
    extra = f" · {score:.2f}" if isinstance(score, int | float) else ""
    detail = html.escape(str(c.get("detail") or ""))
    return f"<td>{mark}{extra}<br><span style='opacity:0.8'>{detail}</span></td>"


def criteria_html(
    a: Mapping[str, Mapping[str, Any]], b: Mapping[str, Mapping[str, Any]] | None = None
) -> str:
    """A table of every criterion with its pass/fail and detail, for one run or two side by side.
    Rows whose outcome differs between the two runs are tinted."""
    ids = list(a) + [k for k in (b or {}) if k not in a]
    head = "<th>criterion</th><th>A</th><th>B</th>" if b is not None else "<th>criterion</th>"
    if b is None:
        head += "<th>result</th>"
    rows = []
    for cid in ids:
        ca, cb = a.get(cid), (b or {}).get(cid)
        section = (ca or cb or {}).get("section", "")
        changed = b is not None and (ca or {}).get("passed") != (cb or {}).get("passed")
        tint = ' style="background: rgba(255,200,0,0.12)"' if changed else ""
        name = f"{html.escape(str(section))}/<b>{html.escape(cid)}</b>"
        cells = _cell(ca) + (_cell(cb) if b is not None else "")
        rows.append(f"<tr{tint}><td>{name}</td>{cells}</tr>")
    return (
        '<table class="tv-criteria" style="width:100%;font-size:0.85rem;border-collapse:collapse">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"
