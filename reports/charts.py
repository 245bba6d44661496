"""Altair charts for the report (altair ships with Streamlit)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import altair as alt
import pandas as pd

from harness.grading import GRADES

HEATMAP_HEIGHT = 240
GRADE_COLOURS = alt.Scale(domain=list(GRADES), range=["#e4572e", "#f3a712", "#29bf12"])


def transitions(matrix: Mapping[str, Mapping[str, int]]) -> alt.LayerChart:
    """3x3 heatmap of grade in A (rows) against grade in B (columns), with counts."""
    frame = pd.DataFrame(
        [
            {"A": a, "B": b, "cases": int(matrix.get(a, {}).get(b, 0))}
            for a in GRADES
            for b in GRADES
        ]
    )
    base = alt.Chart(frame).encode(
        x=alt.X("B:N", sort=list(GRADES), title="grade in B", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("A:N", sort=list(reversed(GRADES)), title="grade in A"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("cases:Q", scale=alt.Scale(scheme="blues"), legend=None),
        tooltip=["A", "B", "cases"],
    )
    top = frame["cases"].max() or 1
    text = base.mark_text(fontSize=16).encode(
        text="cases:Q",
        color=alt.condition(alt.datum.cases > top / 2, alt.value("white"), alt.value("black")),
    )
    return (cells + text).properties(height=HEATMAP_HEIGHT)


def _get(d: Any, name: str) -> float:
    return float(getattr(d, name) if not isinstance(d, Mapping) else d[name])


def criteria(deltas: Mapping[str, Any]) -> alt.LayerChart:
    """Per-criterion pass-rate change B - A with its interval, worst first."""
    frame = pd.DataFrame(
        [
            {
                "criterion": cid,
                "change": _get(d, "delta") * 100,
                "low": _get(d, "low") * 100,
                "high": _get(d, "high") * 100,
                "A": _get(d, "a"),
                "B": _get(d, "b"),
            }
            for cid, d in deltas.items()
        ]
    )
    if frame.empty:
        frame = pd.DataFrame(columns=["criterion", "change", "low", "high", "A", "B"])
    order = frame.sort_values("change")["criterion"].tolist()
    y = alt.Y("criterion:N", sort=order, title=None, axis=alt.Axis(labelOverlap=False))
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=y,
            x=alt.X("change:Q", title="pass-rate change (points)"),
            color=alt.condition(alt.datum.change < 0, alt.value("#e4572e"), alt.value("#29bf12")),
            tooltip=[
                "criterion",
                alt.Tooltip("A:Q", format=".1%"),
                alt.Tooltip("B:Q", format=".1%"),
                alt.Tooltip("change:Q", format="+.1f"),
                alt.Tooltip("low:Q", format="+.1f"),
                alt.Tooltip("high:Q", format="+.1f"),
            ],
        )
    )
    whiskers = alt.Chart(frame).mark_rule(color="black").encode(y=y, x="low:Q", x2="high:Q")
    zero = alt.Chart(pd.DataFrame({"x": [0]})).mark_rule(strokeDash=[3, 3]).encode(x="x:Q")
    return (bars + whiskers + zero).properties(height=criteria_height(len(frame)))


def criteria_height(n: int) -> int:
    return max(160, 36 * n)


def loss(log: pd.DataFrame) -> alt.Chart:
    """Training (and validation, when logged) loss against step."""
    return (
        alt.Chart(log)
        .mark_line(point=len(log) < 60)
        .encode(
            x=alt.X("step:Q"),
            y=alt.Y("value:Q", title="loss", scale=alt.Scale(zero=False)),
            color=alt.Color("series:N", title=None),
            tooltip=["step", "series", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(height=260)
    )


def grade_shares(frame: pd.DataFrame) -> alt.Chart:
    """Stacked shares of bad/good/better per checkpoint step."""
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("step:O", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("share:Q", stack="normalize", axis=alt.Axis(format="%"), title="share"),
            color=alt.Color("grade:N", scale=GRADE_COLOURS, sort=list(GRADES)),
            order=alt.Order("rank:Q"),
            tooltip=["step", "grade", alt.Tooltip("share:Q", format=".1%"), "run_id"],
        )
        .properties(height=260)
    )
