"""Leaderboard: every model with a complete run on a suite, ranked by Bradley–Terry ratings on
per-case grades (Elo scale), with bootstrap intervals over cases and the pass rate beside."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from harness.errors import UserError
from reports import data, urlstate
from reports.widgets import RATE_BAR, as_percent

db = data.db_path()
version = data.stamp(db)
st.title("Leaderboard")


@st.cache_data(show_spinner=False, max_entries=16)
def board(db: str, suite: str, version: data.Stamp) -> dict[str, Any]:
    from harness.comparison.leaderboard import leaderboard

    with data.reader(db) as store:
        return leaderboard(store, suite).to_json()


suites = sorted({r["suite"] for r in data.runs(db, version) if r["status"] == "complete"})
if not suites:
    st.info("No complete runs yet. Evaluate models with `tuneval eval SUITE --model SPEC`.")
    st.stop()
urlstate.seed("leaderboard-suite", "suite", suites[0], options=suites)
urlstate.keep("leaderboard-suite", suites, suites[0])
suite = st.selectbox("Suite", suites, key="leaderboard-suite")
urlstate.publish({"suite": suite})
try:
    result = board(db, suite, version)
except UserError as e:
    st.warning(str(e))
    st.stop()
st.caption(
    f"{len(result['models'])} models · {result['cases']} cases. For each case and pair of models "
    "the better grade wins and equal grades tie (half a win each); Bradley–Terry ratings on the "
    "Elo scale (mean 1000; 100 points ≈ 64% of comparisons won), 95% bootstrap intervals over "
    "cases. Same as `tuneval leaderboard --suite "
    f"{suite}`."
)
rows = [
    {
        "#": i,
        "model": m["model"] + ("" if m["verified"] else "  (served, not verified)"),
        "rating": round(m["rating"]),
        "95% CI": f"[{m['low']:.0f}, {m['high']:.0f}]",
        "pass rate": m["pass_rate"],
        "n": m["n"],
        "run": m["run_id"],
    }
    for i, m in enumerate(result["models"], start=1)
]
st.dataframe(
    as_percent(pd.DataFrame(rows), ["pass rate"]),
    hide_index=True,
    column_config={"pass rate": RATE_BAR},
    key="leaderboard-table",
)
frame = pd.DataFrame(result["models"])
order = list(frame["model"])
# Whole names: two candidates "python-docs-sft-…" cut alike would read as one.
base = alt.Chart(frame).encode(
    y=alt.Y("model:N", sort=order, title=None, axis=alt.Axis(labelLimit=0))
)
chart = base.mark_rule().encode(
    x=alt.X("low:Q", title="rating (Elo scale)", scale=alt.Scale(zero=False)), x2="high:Q"
) + base.mark_point(filled=True, size=60).encode(
    x="rating:Q", tooltip=["model", "rating", "low", "high", "pass_rate", "n"]
)
st.altair_chart(chart, key="leaderboard-chart")
if result["skipped"]:
    st.caption("Left out, evaluated on older files of the suite: " + ", ".join(result["skipped"]))
if result.get("partial"):
    shown = ", ".join(f"{p['model']} ({p['n']} of {p['of']} cases)" for p in result["partial"])
    st.caption("Left out, graded fewer cases than the others: " + shown)
