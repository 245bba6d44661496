"""Altair charts for the report (altair ships with Streamlit).

Colours carry meaning and nothing else: red is worse, green is better, grey is no change; grades
are red/orange/green for bad/good/better; a neutral blue marks what has no direction (loss)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import altair as alt
import pandas as pd

from harness.grading.grader import GRADES, RANK

HEATMAP_HEIGHT = 240
CRITERIA_WIDTH = 380  # a faceted chart cannot take the container's width; this fits half a page
CELL = "cell"  # the transition heatmap's selection: a click picks the cell's (A, B) grades
GRADE_COLOURS = alt.Scale(domain=list(GRADES), range=["#e4572e", "#4c78a8", "#29bf12"])
# Diverging by how far the grade moved (B rank - A rank): two steps down to two steps up.
MOVE_COLOURS = alt.Scale(
    domain=[-2, -1, 0, 1, 2], range=["#b2182b", "#ef8a62", "#e6e6e6", "#7fbf7b", "#1b7837"]
)
TRAIN_COLOUR, VALIDATION_COLOUR = "#1f77b4", "#d62728"


def transitions(matrix: Mapping[str, Mapping[str, int]]) -> alt.LayerChart:
    """3x3 grid of grade in A (rows, bad on top as in the CLI) against grade in B (columns):
    red below the diagonal (regressed), green above (improved), grey on it; click a cell to list
    its cases."""
    frame = pd.DataFrame(
        [
            {
                "A": a,
                "B": b,
                "cases": int(matrix.get(a, {}).get(b, 0)),
                "move": RANK[b] - RANK[a],
                "change": "improved" if RANK[b] > RANK[a] else "regressed" if RANK[b] < RANK[a]
                else "unchanged",
            }
            for a in GRADES
            for b in GRADES
        ]
    )  # fmt: skip
    pick = alt.selection_point(name=CELL, fields=["A", "B"], on="click", empty=False)
    base = alt.Chart(frame).encode(
        x=alt.X(
            "B:N", sort=list(GRADES), title="grade in B", axis=alt.Axis(labelAngle=0, orient="top")
        ),
        y=alt.Y("A:N", sort=list(GRADES), title="grade in A"),
    )
    cells = (
        base.mark_rect(cursor="pointer")
        .encode(
            color=alt.Color("move:Q", scale=MOVE_COLOURS, legend=None),
            opacity=alt.condition(alt.datum.cases > 0, alt.value(1.0), alt.value(0.35)),
            stroke=alt.condition(pick, alt.value("#111"), alt.value(None)),
            strokeWidth=alt.condition(pick, alt.value(3), alt.value(0)),
            tooltip=["A", "B", "change", "cases"],
        )
        .add_params(pick)
    )
    text = base.mark_text(fontSize=16).encode(
        text="cases:Q",
        color=alt.condition(
            (alt.datum.move >= 2) | (alt.datum.move <= -2), alt.value("white"), alt.value("black")
        ),
    )
    return (cells + text).properties(height=HEATMAP_HEIGHT)


def with_cell(spec: Mapping[str, Any], cell: str) -> dict[str, Any]:
    """The transition grid's spec with `cell` ("bad→better", or "" for none) as its selection,
    so the highlight shows the cell that filters the cases, whoever picked it."""
    params = [dict(p) for p in spec["params"]]
    for p in params:
        if p["name"] == CELL:
            p.pop("value", None)
            if cell:
                a, b = cell.split("→")
                p["value"] = [{"A": a, "B": b}]
    return {**spec, "params": params}


def _get(d: Any, name: str) -> float:
    return float(getattr(d, name) if not isinstance(d, Mapping) else d[name])


def criteria(deltas: Mapping[str, Any], sections: Mapping[str, str]) -> alt.FacetChart:
    """Per-criterion pass-rate change B - A with its interval, one panel per rubric section
    (bad detectors, good requirements, better extras), worst first in each. Changes whose
    interval holds zero are drawn faint."""
    columns = ["criterion", "section", "change", "low", "high", "A", "B", "clear"]
    rows = []
    for cid, d in deltas.items():
        low, high = _get(d, "low") * 100, _get(d, "high") * 100
        rows.append(
            {
                "criterion": cid,
                "section": sections.get(cid, "good"),
                "change": _get(d, "delta") * 100,
                "low": low,
                "high": high,
                "A": _get(d, "a"),
                "B": _get(d, "b"),
                "clear": low > 0 or high < 0,
            }
        )
    numbers = dict.fromkeys(("change", "low", "high", "A", "B"), float)
    frame = pd.DataFrame(rows, columns=columns).astype({**numbers, "clear": bool})
    y = alt.Y("criterion:N", sort=alt.EncodingSortField("change"), title=None)
    bars = (
        alt.Chart()
        .mark_bar()
        .encode(
            y=y,
            x=alt.X("change:Q", title="pass-rate change, B − A (points, 95% CI)"),
            color=alt.condition(alt.datum.change < 0, alt.value("#d63a1e"), alt.value("#1a9c3e")),
            opacity=alt.condition(alt.datum.clear, alt.value(1.0), alt.value(0.4)),
            tooltip=[
                "section",
                "criterion",
                alt.Tooltip("A:Q", format=".1%"),
                alt.Tooltip("B:Q", format=".1%"),
                alt.Tooltip("change:Q", format="+.1f"),
                alt.Tooltip("low:Q", format="+.1f"),
                alt.Tooltip("high:Q", format="+.1f"),
            ],
        )
    )
    whiskers = alt.Chart().mark_rule(color="#333").encode(y=y, x="low:Q", x2="high:Q")
    zero = alt.Chart().mark_rule(strokeDash=[3, 3], color="#888").encode(x=alt.datum(0))
    return (
        alt.layer(bars, whiskers, zero)
        .properties(height=alt.Step(22), width=CRITERIA_WIDTH)
        .facet(
            row=alt.Row(
                "section:N",
                sort=list(GRADES),
                title=None,
                header=alt.Header(labelAngle=0, labelAlign="left", labelFontWeight="bold"),
            ),
            data=frame,
            spacing=6,
        )
        .resolve_scale(y="independent")
    )


def loss(log: pd.DataFrame) -> alt.LayerChart:
    """Training and validation loss against step: the axis starts at step 0 with whole-number
    ticks, and the y range has room above and below, so no line sits on an edge."""
    last = int(log["step"].max()) if not log.empty else 1
    low, high = float(log["value"].min()), float(log["value"].max())
    pad = max((high - low) * 0.1, 0.05)
    x = alt.X(
        "step:Q",
        scale=alt.Scale(domain=[0, max(last, 1)], nice=False),
        axis=alt.Axis(tickMinStep=1, format="d", tickCount=min(max(last, 1), 10)),
    )
    y = alt.Y("value:Q", title="loss", scale=alt.Scale(domain=[max(low - pad, 0), high + pad]))
    colour = alt.Color(
        "series:N",
        title=None,
        scale=alt.Scale(
            domain=["train loss", "validation loss"], range=[TRAIN_COLOUR, VALIDATION_COLOUR]
        ),
        legend=alt.Legend(orient="top"),
    )
    tooltip = ["step", "series", alt.Tooltip("value:Q", format=".4f")]
    train = log[log["series"] == "train loss"]
    lines = (
        alt.Chart(train)
        .mark_line(point=len(train) < 60, strokeWidth=2)
        .encode(x=x, y=y, color=colour, tooltip=tooltip)
    )
    val = log[log["series"] == "validation loss"]
    dots = (
        alt.Chart(val)
        .mark_line(point=alt.OverlayMarkDef(size=70, filled=True), strokeWidth=2.5)
        .encode(x=x, y=y, color=colour, tooltip=tooltip)
    )
    return (lines + dots).properties(height=260)


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
