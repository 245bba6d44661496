"""Runs and models: every run with its grade shares and pass rate; models with their lineage."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from reports import data
from reports.labels import agreement

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
    rows.append(
        {
            "run": r["id"],
            "suite": r["suite"],
            "model": r["model"],
            "prompt": r["prompt_variant"],
            "kind": r["model_kind"] or "",
            "candidate": r["is_candidate"],
            "step": r["step"],
            "when": _when(r["created_at"]),
            "status": r["status"],
            "cases": n,
            "bad": g["bad"] / n if n else None,
            "good": g["good"] / n if n else None,
            "better": g["better"] / n if n else None,
            "pass rate": r["pass_rate"],
            "labels": len(per_run.get(r["id"], [])),
        }
    )
frame = pd.DataFrame(rows)

suites = sorted(frame["suite"].unique())
chosen = st.multiselect("Suites", suites, default=suites, key="runs-suites")
shown = frame[frame["suite"].isin(chosen)] if chosen else frame
share = st.column_config.NumberColumn(format="percent")
rate = st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)
event = st.dataframe(
    shown,
    hide_index=True,
    key="runs-table",
    on_select="rerun",
    selection_mode="multi-row",
    column_config={
        "when": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        "bad": share,
        "good": share,
        "better": share,
        "pass rate": rate,
        "candidate": st.column_config.CheckboxColumn(help="a trained model or a checkpoint"),
    },
)
picked = [shown.iloc[i]["run"] for i in event.selection.rows] if event else []
if len(picked) == 2:
    a, b = sorted(picked, key=lambda rid: next(r["created_at"] for r in all_runs if r["id"] == rid))
    if st.button(f"Compare {a} → {b}", type="primary"):
        st.session_state["compare-a"], st.session_state["compare-b"] = a, b
        st.session_state["compare-suite"] = next(r["suite"] for r in all_runs if r["id"] == a)
        st.switch_page("views/compare.py")
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
        agree_rows.append(
            {"run": run_id, "labels": ag["n"], "agree": ag["share"], "Cohen's kappa": ag["kappa"]}
        )
    st.dataframe(
        pd.DataFrame(agree_rows),
        hide_index=True,
        column_config={
            "agree": share,
            "Cohen's kappa": st.column_config.NumberColumn(format="%.2f"),
        },
    )

# --- models and lineage ---------------------------------------------------------------------
st.subheader("Models")
ms = data.models(db, data.stamp(db))
if not ms:
    st.caption("No registered models (runs name their model spec directly).")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "model": m["name"],
                    "kind": m["kind"],
                    "base": m["base"] or "",
                    "trained by": m["produced_by"] or "",
                    "trainer": m["trainer"] or "",
                    "settings": ", ".join(
                        f"{k}={v}"
                        for k, v in m["train_config"].items()
                        if not isinstance(v, dict | list)
                    ),
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
