"""Runs and models: every run with its grade shares and pass rate; models with their lineage."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from reports import arms, data
from reports.labels import agreement
from reports.render import step_text
from reports.widgets import PERCENT, as_percent, model_label

db = data.db_path()
all_runs = data.runs(db, data.stamp(db))
st.title("Runs and models")

if not all_runs:
    st.info("No runs yet. Evaluate a model with `tuneval eval SUITE --model SPEC`.")
    st.stop()

labels = data.labels(db)
per_run: dict[str, list[tuple[str, str]]] = {}
for (run_id, case_id), lab in labels.items():
    per_run.setdefault(run_id, []).append((lab["grade"], case_id))


def _when(ts: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(ts) if ts else None


rows = []
for r in all_runs:
    n = r["n_results"]
    g = r["grades"]
    # What a reader looks for first (suite, model, pass rate) on the left: run ids are long.
    # A model's kind is on the Models table below: here it would cut the table at 1440 px.
    rows.append(
        {
            "suite": r["suite"],
            "model": model_label(r),
            "pass rate": r["pass_rate"],
            "bad": g["bad"] / n if n else None,
            "good": g["good"] / n if n else None,
            "better": g["better"] / n if n else None,
            "cases": n,
            "step": step_text(r["step"]),
            "when": _when(r["created_at"]),
            "candidate": r["is_candidate"],
            "labels": len(per_run.get(r["id"], [])),
            "status": r["status"],
            "run": r["id"],
        }
    )
frame = as_percent(pd.DataFrame(rows), ["pass rate", "bad", "good", "better"])
if (frame["status"] == "complete").all():
    frame = frame.drop(columns="status")  # a column of "complete" says nothing and costs width

suites = sorted(frame["suite"].unique())
chosen = st.multiselect("Suites", suites, default=suites, key="runs-suites")
shown = frame[frame["suite"].isin(chosen)] if chosen else frame
WIDTH_NARROW_PERCENT = st.column_config.NumberColumn(format="%.1f%%", width=56)
event = st.dataframe(
    shown,
    hide_index=True,
    key="runs-table",
    on_select="rerun",
    selection_mode="multi-row",
    # Narrow columns so that the table fits the page at 1440 px; the run id is cut (a click on
    # the cell shows it whole), it is for copying rather than reading.
    column_config={
        "suite": st.column_config.TextColumn(width=90),
        "model": st.column_config.TextColumn(width=190),
        "when": st.column_config.DatetimeColumn(format="MM-DD HH:mm", help="YYYY-MM-DD HH:mm"),
        "bad": WIDTH_NARROW_PERCENT,
        "good": WIDTH_NARROW_PERCENT,
        "better": WIDTH_NARROW_PERCENT,
        "pass rate": st.column_config.ProgressColumn(
            format="%.1f%%", min_value=0.0, max_value=100.0, color="blue", width=110
        ),
        "run": st.column_config.TextColumn(width=90),
        "candidate": st.column_config.CheckboxColumn(
            "trained", help="a candidate: a trained model or a checkpoint"
        ),
        "step": st.column_config.TextColumn(help="training step of a checkpoint evaluation"),
    },
)
picked = [shown.iloc[i]["run"] for i in event.selection.rows] if event else []
if len(picked) == 2:
    by_id = {r["id"]: r for r in all_runs}
    # By lineage, not time: every loop re-creates the cached base run, so the base is newer.
    a, b = (r["id"] for r in arms.order(by_id[picked[0]], by_id[picked[1]]))
    if st.button(f"Compare {a} → {b}", type="primary"):
        suite = next(r["suite"] for r in all_runs if r["id"] == a)
        st.switch_page("views/compare.py", query_params={"suite": suite, "a": a, "b": b})
else:
    st.caption("Select two rows to compare them.")

# --- agreement of human labels per run -----------------------------------------------------
if labels:
    st.subheader("Human labels")
    results_grade = {
        r["id"]: {
            res["case_id"]: res["grade"]
            for res in data.results(db, r["id"], data.run_version(r, db))
        }
        for r in all_runs
        if r["id"] in per_run
    }
    agree_rows = []
    for run_id, labs in per_run.items():
        pairs = [(h, results_grade.get(run_id, {}).get(cid, "")) for h, cid in labs]
        ag = agreement([(h, a) for h, a in pairs if a])
        kappa = ag["kappa"]
        agree_rows.append(
            {
                "run": run_id,
                "labels": ag["n"],
                "agree": None if ag["share"] is None else ag["share"] * 100,
                # undefined below two labels or when both raters gave one grade throughout
                "Cohen's kappa": "—" if kappa is None else f"{kappa:.2f}",
            }
        )
    st.dataframe(pd.DataFrame(agree_rows), hide_index=True, column_config={"agree": PERCENT})

# --- models and lineage ---------------------------------------------------------------------
st.subheader("Models")
ms = data.models(db, data.stamp(db))
if not ms:
    st.caption("No registered models (runs name their model spec directly).")
else:
    # Training settings live on the Training page, under the run named in "trained by".
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "model": m["name"],
                    "kind": "served (not verified)" if m["kind"] == "served" else m["kind"],
                    "base": m["base"] or "",
                    "trained by": m["produced_by"] or "",
                    "trainer": m["trainer"] or "",
                    "fingerprint": (m["fingerprint"] or "")[:12],
                    "path": m["path"] or "",
                }
                for m in ms
            ]
        ),
        hide_index=True,
    )
    derived = [m for m in ms if m["base"]]
    if derived:
        st.markdown("**Lineage**")
        for m in derived:
            how = f" — {m['trainer']} ({m['produced_by']})" if m["trainer"] else ""
            st.text(f"{m['base']}  →  {m['name']}{how}")
