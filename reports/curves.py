"""The checkpoint curve on the Training page: pass and better rate per step with their intervals
(the base at step 0), the best step against the base with its paired interval, the cases that
fell below their base grade or flip, and a link from each point to its comparison with the base.
The figures are `harness.comparison.curve`'s, the same that `tuneval curve` prints."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from reports import data
from reports.render import md


@st.cache_data(show_spinner=False, max_entries=16)
def curve(db: str, train_run: str, version: data.Stamp) -> dict[str, Any]:
    from harness.comparison.curve import build_curve

    with data.reader(db) as store:
        return build_curve(store, train_run).to_json()


def chart(c: dict[str, Any]) -> alt.LayerChart:
    rows = []
    points = ([c["base"]] if c["base"] else []) + c["points"]
    for p in points:
        step = 0 if c["base"] is p else p["step"]
        for rate, series in (("pass", "pass rate"), ("better", "better rate")):
            low, high = p[f"{rate}_interval"]
            rows.append({"step": step, "series": series, "rate": p[f"{rate}_rate"],
                         "low": low, "high": high})  # fmt: skip
    frame = pd.DataFrame(rows)
    x = alt.X("step:Q", axis=alt.Axis(tickMinStep=1, format="d"))
    colour = alt.Color("series:N", title=None, legend=alt.Legend(orient="top"))
    band = (
        alt.Chart(frame).mark_area(opacity=0.15).encode(x=x, y="low:Q", y2="high:Q", color=colour)
    )
    line = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y("rate:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            color=colour,
            tooltip=["step", "series", alt.Tooltip("rate:Q", format=".1%")],
        )
    )
    return (band + line).properties(height=260)


def show(db: str, train_run: str, version: data.Stamp) -> None:
    c = curve(db, train_run, version)
    if not c["points"]:
        return
    st.subheader("Checkpoint curve")
    st.altair_chart(chart(c), key="chart-curve")
    best, base = c["best"], c["base"]
    if base is None:
        st.caption("No base run to pair with: evaluate the base model on the suite.")
    else:
        d = best["vs_base"]["pass_rate"]
        mde = best["vs_base"]["mde"]
        st.markdown(
            f"Best step **{best['step']}**: pass rate {best['pass_rate']:.1%}, "
            f"{d['delta'] * 100:+.1f} points against the base "
            f"[{d['low'] * 100:+.1f}, {d['high'] * 100:+.1f}] · {md(best['vs_base']['verdict'])}"
            + (f" · smallest detectable change {mde * 100:.1f} points" if mde else "")
        )
        for p in c["points"]:
            st.page_link(
                "views/compare.py",
                label=f"Step {p['step']} against the base",
                icon=":material/compare_arrows:",
                query_params={"suite": c["suite"], "a": base["run_id"], "b": p["run_id"]},
            )
    steps = [p["step"] for p in c["points"]]
    rows = [
        {"case": t["case_id"], "base": t["base"], "first regressed at": t["first_regressed"],
         "flips": t["flips"], **{f"step {s}": g for s, g in zip(steps, t["grades"], strict=True)}}
        for t in {t["case_id"]: t for t in c["regressed"] + c["flipping"]}.values()
    ]  # fmt: skip
    if rows:
        st.markdown(f"**{len(c['regressed'])}** cases fell below their base grade; "
                    f"**{len(c['flipping'])}** flip between pass and fail.")  # fmt: skip
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="curve-cases")
