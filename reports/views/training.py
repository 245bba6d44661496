"""Training: loss curves, grade shares per checkpoint, the checkpoint curve against the base
(reports/curves.py), the link to the candidate's comparison with its base, and a sample of the
preference pairs a dpo candidate learned from, for one training run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from harness.grading.grader import GRADES, RANK
from reports import charts, curves, data, urlstate
from reports.render import md, plural
from reports.widgets import PERCENT, RATE_BAR, as_percent

db = data.db_path()
version = data.stamp(db)
trains = data.train_runs(db, version)
st.title("Training")
if not trains:
    st.info("No training runs yet. Train a candidate with `tuneval train SUITE`.")
    st.stop()

by_id = {t["id"]: t for t in trains}


def describe(tid: str) -> str:
    t = by_id[tid]
    when = dt.datetime.fromtimestamp(t["created_at"]).strftime("%m-%d %H:%M")
    return f"{t['model'] or t['base']} · {t['suite']} · {when} · {t['status']}"


urlstate.seed("training-run", "run", trains[0]["id"], options=by_id)
urlstate.keep("training-run", list(by_id), trains[0]["id"])
tid = st.selectbox("Training run", list(by_id), format_func=describe, key="training-run")
urlstate.publish({"run": tid})
t = by_id[tid]
when = dt.datetime.fromtimestamp(t["created_at"]).strftime("%Y-%m-%d %H:%M")
# Model names are long: sentences, not metric tiles that cut them off.
st.markdown(
    f"**{md(t['trainer'])}** on suite **{md(t['suite'])}**: {md(t['base'])} → "
    f"**{md(t['model'] or '(no model yet)')}** · {md(t['status'])}"
)
st.caption(f"{tid} · started {when} · output {t['output_dir']}")


def candidate_pair(t: dict[str, Any]) -> tuple[str, str] | None:
    """(base run, candidate run): the newest runs of the base and of the trained model on the
    training suite, checkpoint evaluations aside."""
    latest = data.latest_runs(data.runs(db, version))
    base, cand = latest.get((t["base"], t["suite"])), latest.get((t["model"], t["suite"]))
    return (base["id"], cand["id"]) if base and cand else None


pair = candidate_pair(t) if t["model"] else None
if pair:
    st.page_link(
        "views/compare.py",
        label=f"Compare {t['model']} with {t['base']} on {t['suite']}",
        icon=":material/compare_arrows:",
        query_params={"suite": t["suite"], "a": pair[0], "b": pair[1]},
    )
elif t["model"]:
    st.caption(f"Evaluate both models on the suite to compare them: `tuneval eval` ({t['suite']}).")


def show_pairs(model: str) -> None:
    """The preference pairs a candidate learned from (the dpo trainer's manifest names them)."""
    info = next((m["info"] for m in data.models(db, version) if m["name"] == model), None) or {}
    sample, note = data.pairs_sample(info)
    if not note:
        return
    st.subheader("Preference pairs behind this candidate")
    st.caption(note)
    if not sample:
        return

    def last(messages: Any) -> str:
        return str(messages[-1]["content"]) if messages else ""

    table = []
    for row in sample:
        meta = row.get("tuneval") or {}
        table.append(
            {
                "prompt": last(row["prompt"]),
                "chosen": last(row["chosen"]),
                "grade": (meta.get("chosen") or {}).get("grade"),
                "rejected": last(row["rejected"]),
                "grade ": (meta.get("rejected") or {}).get("grade"),
                "decided by": ", ".join(meta.get("decided_by") or []),
            }
        )
    st.dataframe(pd.DataFrame(table), hide_index=True)  # text cells: never rendered as HTML


if t["model"]:
    show_pairs(t["model"])

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


def last(key: str) -> tuple[int, float] | None:
    """(step, value) of the newest log line that has `key`: validation lines carry no lr."""
    for row in reversed(log):
        value = row["data"].get(key)
        if row["kind"] == "log" and isinstance(value, int | float):
            return row["step"], float(value)
    return None


train_steps = [r["step"] for r in log if r["kind"] == "log" and "loss" in r["data"]]
val_steps = [r["step"] for r in log if r["kind"] == "log" and "val_loss" in r["data"]]
if train_steps:
    cols = st.columns(3)
    lr, rate = last("lr"), last("tokens_per_s")
    cols[0].metric("Learning rate (last)", f"{lr[1]:.2e}" if lr else "—")
    cols[1].metric("Tokens/s (last)", f"{rate[1]:,.0f}" if rate else "—")
    cols[2].metric("Steps trained", train_steps[-1])
    val = f"validation loss at {plural(len(val_steps), 'step')}" if val_steps else "no validation"
    st.caption(f"Train loss logged at {plural(len(train_steps), 'step')}; {val}.")

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
    st.dataframe(
        as_percent(wide[["step", "run_id", *GRADES, "pass rate"]], [*GRADES, "pass rate"]),
        hide_index=True,
        column_config={**{g: PERCENT for g in GRADES}, "pass rate": RATE_BAR},
    )
else:
    st.caption(
        "No checkpoint has been evaluated. `tuneval train SUITE --eval-checkpoints N` (or `tuneval "
        "loop`) grades every checkpoint on the suite's first N test cases and charts them here."
    )

checkpoints = [r for r in log if r["kind"] == "checkpoint"]
if checkpoints:
    st.subheader("Checkpoints")
    rows = []
    for r in checkpoints:
        path = r["data"].get("path", "")
        kept = bool(path) and Path(path).exists()
        rows.append({"step": r["step"], "on disk": "kept" if kept else "deleted", "path": path})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    if not any(row["on disk"] == "kept" for row in rows):
        st.caption("The trainer removes its checkpoints once the model is saved.")

curves.show(db, tid, version)

with st.expander("Configuration"):
    st.json(t["config"])
