"""Overview: is my latest candidate better, and on what? The newest verdict on each suite, every
model's pass rate on every suite, and the recent training runs, each a link to the full view."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st

from harness.comparison.cost import engine_caveat, summary
from harness.comparison.format import pct
from harness.errors import UserError
from reports import arms, data, suites
from reports.comparison import compared
from reports.render import CHANGE_MARK, badge, md, plural, points
from reports.widgets import RATE_BAR, as_percent, model_label

VERDICT_COLOUR = {"improved": "green", "regressed": "red"}
db = data.db_path()
version = data.stamp(db)
all_runs = data.runs(db, version)
st.title("Overview")
if not all_runs:
    st.info(
        "No runs yet. Evaluate a model with `tuneval eval SUITE --model SPEC`, or run the whole "
        "loop with `tuneval loop SUITE`."
    )
    st.stop()
by_id = {r["id"]: r for r in all_runs}


def verdict_card(suite: str) -> None:
    """The default pair of the suite (newest candidate against its base) as a few lines."""
    a, b = data.default_pair(all_runs, suite)
    st.markdown(f"#### {md(suite)}")
    if not a or not b:
        only = by_id[a]["model"] if a else "no model"
        st.caption(f"One run ({md(only)}): evaluate another model on this suite to compare.")
        return
    ra, rb = by_id[a], by_id[b]
    st.markdown(f"**{md(model_label(rb))}** against {md(model_label(ra))}")
    try:
        c = compared(db, a, b, False, data.run_version(ra, db), data.run_version(rb, db))
    except UserError as e:
        st.caption(md(e.lines()[0]))
        return
    cmp = c.cmp
    d = cmp.pass_rate
    st.markdown(
        f"{badge(cmp.verdict, VERDICT_COLOUR)} pass rate {pct(d.a)} → **{pct(d.b)}** "
        f"({points(d.delta)}, 95% CI [{d.low * 100:+.1f}, {d.high * 100:+.1f}])"
    )
    moved = [f"{CHANGE_MARK[ch]} {len(cmp.changed(ch))} {ch}" for ch in ("regressed", "improved")]
    leaks = suites.leaks(suites.for_run(ra))
    leaked = [p for p in cmp.pairs if str(p.case_id) in leaks]
    line = f"{' · '.join(moved)} of {plural(cmp.n, 'paired case')}"
    if leaked:
        line += f" · :orange[⚠ {len(leaked)} with prompts in the training data]"
    if cmp.must_pass_broken:
        line += f" · :red[{len(cmp.must_pass_broken)} must-pass broken]"
    st.markdown(line)
    spent = summary(cmp.cost, model_label(ra), model_label(rb))  # the CLI's cost sentence
    if spent:
        caveat = engine_caveat(ra, rb)
        st.caption(md(spent) + (f" · :orange[{md(caveat)}]" if caveat else ""))
    st.page_link(
        "views/compare.py",
        label="Open the comparison",
        icon=":material/compare_arrows:",
        query_params={"suite": suite, "a": a, "b": b},
    )


# --- the newest verdict on each suite, newest suite first ------------------------------------
st.subheader("Latest verdict per suite")
order = list(dict.fromkeys(r["suite"] for r in all_runs if r["n_results"]))
for start in range(0, len(order), 3):
    cols = st.columns(3)
    for col, suite in zip(cols, order[start : start + 3], strict=False):
        with col.container(border=True):
            verdict_card(suite)

# --- every model on every suite ---------------------------------------------------------------
st.subheader("Pass rate by model and suite")
latest = arms.latest(all_runs)
if latest:
    # One row per arm: "model + few-shot" is its own row, never the model's.
    names = {a: model_label(r) for (a, _), r in latest.items()}
    frame = pd.DataFrame(
        [{"model": names[a], "suite": s, "pass": r["pass_rate"]} for (a, s), r in latest.items()]
    ).pivot(index="model", columns="suite", values="pass")
    frame = as_percent(frame.reset_index(), list(frame.columns))
    st.dataframe(
        frame,
        hide_index=True,
        key="overview-matrix",
        column_config={s: RATE_BAR for s in frame.columns if s != "model"},
    )
    st.caption(
        "Share of cases graded good or better in each arm's newest complete run on the suite (an "
        "arm: a model with its prompt variant and sampling settings); checkpoint evaluations are "
        "on the Training page."
    )


# --- recent training runs ----------------------------------------------------------------------
def training_line(t: dict[str, Any]) -> str:
    log = data.train_log(db, t["id"], version)
    losses = [r for r in log if r["kind"] == "log" and "loss" in r["data"]]
    when = dt.datetime.fromtimestamp(t["created_at"]).strftime("%Y-%m-%d %H:%M")
    line = f"{when} · {md(t['trainer'])} on {md(t['suite'])}: {md(t['base'])} → "
    line += f"{md(t['model'] or '(no model yet)')} · {md(t['status'])}"
    if losses:
        line += f" · loss {float(losses[-1]['data']['loss']):.3f} at step {losses[-1]['step']}"
    return line


trains = data.train_runs(db, version)
st.subheader("Recent training runs")
if not trains:
    st.caption("None yet: `tuneval train SUITE` or `tuneval loop SUITE` trains a candidate.")
for t in trains[:5]:
    row = st.columns([6, 1])
    row[0].markdown(training_line(t))
    row[1].page_link(
        "views/training.py", label="Training", icon=":material/show_chart:",
        query_params={"run": t["id"]},
    )  # fmt: skip
