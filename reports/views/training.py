"""Training: loss curves and grade shares per checkpoint for one training run."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from harness.grading import GRADES, RANK
from reports import charts, data

db = data.db_path()
version = data.stamp(db)
trains = data.train_runs(db, version)
st.title("Training")
if not trains:
    st.info("No training runs yet. Train a candidate with `tuneval train`.")
    st.stop()

by_id = {t["id"]: t for t in trains}


def describe(tid: str) -> str:
    t = by_id[tid]
    result = f" → {t['model']}" if t["model"] else ""
    return f"{t['trainer']}: {t['base']}{result} · {t['suite']} · {t['status']} · {tid}"


tid = st.selectbox("Training run", list(by_id), format_func=describe, key="training-run")
t = by_id[tid]
when = dt.datetime.fromtimestamp(t["created_at"]).strftime("%Y-%m-%d %H:%M")
head = st.columns(4)
head[0].metric("Status", t["status"])
head[1].metric("Trainer", t["trainer"])
head[2].metric("Base", t["base"])
head[3].metric("Result", t["model"] or "—")
st.caption(f"started {when} · output {t['output_dir']}")

log = data.train_log(db, tid, version)
points = []
for row in log:
    d = row["data"]
    for key, series in (
        ("loss", "train loss"),
        ("eval_loss", "validation loss"),
        ("val_loss", "validation loss"),
    ):
        if isinstance(d.get(key), int | float):
            points.append({"step": row["step"], "series": series, "value": float(d[key])})
st.subheader("Loss")
if points:
    st.altair_chart(charts.loss(pd.DataFrame(points)), key="chart-loss")
else:
    st.caption("No loss logged yet.")

logs = [r for r in log if r["kind"] == "log"]
if logs:
    last = logs[-1]["data"]
    cols = st.columns(3)
    if isinstance(last.get("lr"), int | float):
        cols[0].metric("Learning rate (last)", f"{last['lr']:.2e}")
    if isinstance(last.get("tokens_per_s"), int | float):
        cols[1].metric("Tokens/s (last)", f"{last['tokens_per_s']:,.0f}")
    cols[2].metric("Logged steps", len(logs))

st.subheader("Grades per checkpoint")
counts = data.checkpoint_grades(db, tid, version)
if counts:
    frame = pd.DataFrame(counts)
    frame["share"] = frame["n"] / frame.groupby("run_id")["n"].transform("sum")
    frame["rank"] = frame["grade"].map(RANK)
    st.altair_chart(charts.grade_shares(frame), key="chart-grades")
    wide = frame.pivot_table(
        index=["step", "run_id"], columns="grade", values="share", fill_value=0.0
    ).reset_index()
    for g in GRADES:
        if g not in wide:
            wide[g] = 0.0
    wide["pass rate"] = wide["good"] + wide["better"]
    share = st.column_config.NumberColumn(format="percent")
    rate = st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)
    st.dataframe(
        wide[["step", "run_id", *GRADES, "pass rate"]],
        hide_index=True,
        column_config={**{g: share for g in GRADES}, "pass rate": rate},
    )
else:
    st.caption("No checkpoint has been evaluated yet.")

checkpoints = [r for r in log if r["kind"] == "checkpoint"]
if checkpoints:
    st.subheader("Checkpoints")
    st.dataframe(
        pd.DataFrame([{"step": r["step"], "path": r["data"].get("path", "")} for r in checkpoints]),
        hide_index=True,
    )

with st.expander("Configuration"):
    st.json(t["config"])
