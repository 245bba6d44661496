"""Suite: the rubric (bad / good / better criteria), the prompt and its variants, the cases."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from reports import data, suites, urlstate
from reports.caseview import choices
from reports.render import md, plural, text_block


def params_text(params: dict[str, object]) -> str:
    """`value: {module} · min: 0.5`: strings as they are, other values as JSON."""
    return (
        " · ".join(
            f"{k}: {v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
            for k, v in params.items()
        )
        or "—"
    )


TASK_KEYS = ("task", "output_type", "dataset_path", "test_split", "doc_to_text", "doc_to_target")


def lm_eval_section(name: str, folder: Path, files: list[str]) -> None:
    """An lm-eval suite's tasks (read as data), and its items and criteria as the newest run
    of the suite stored them: lm-eval builds the items, so the store is where they are."""
    from harness.suite.lmeval_config import read_task

    st.subheader(f"lm-eval tasks ({len(files)})")
    rows = []
    for file in files:
        config = read_task(folder / file, folder).config
        metrics = [m.get("metric") for m in config.get("metric_list") or [] if isinstance(m, dict)]
        rows.append(
            {"file": file, **{k: str(config.get(k, "")) for k in TASK_KEYS}}
            | {"metrics": ", ".join(map(str, metrics))}
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="suite-tasks")
    runs = [r for r in all_runs if r["suite"] == name and r["n_results"]]
    if not runs:
        st.caption("No run yet: the items appear once a model is evaluated on the suite.")
        return
    newest = runs[0]
    results = data.results(db, newest["id"], data.run_version(newest, db))
    criteria = sorted({cid for row in results for cid in row["criteria"]})
    st.markdown("**Criteria** (lm-eval's metrics as grades): " + ", ".join(map(md, criteria)))
    st.subheader(f"Items ({len(results)})")
    st.caption(f"as stored by run {newest['id']} ({md(newest['arm_label'])})")
    items = []
    for row in results:
        options = choices(row)
        try:
            prompt = json.loads(row["prompt"])[-1]["content"]
        except (ValueError, LookupError, TypeError):
            prompt = str(row["prompt"])
        items.append(
            {
                "item": row["case_id"],
                "prompt": prompt,
                "choices": " | ".join(options[0]) if options else "",
                "gold": " | ".join(options[1]) if options else "",
            }
        )
    st.dataframe(pd.DataFrame(items), hide_index=True, key="suite-items")


db = data.db_path()
all_runs = data.runs(db, data.stamp(db))
st.title("Suite")

# Suites the store knows (newest path of each), then shipped suites next to the working directory.
known: dict[str, str] = {}
for r in all_runs:
    known.setdefault(r["suite"], r["suite_path"])
shipped = Path("suites")
if shipped.is_dir():
    for yml in sorted(shipped.glob("*/suite.yaml")):
        known.setdefault(yml.parent.name, str(yml.parent.resolve()))
if not known:
    st.info("No suites: no runs in the store and no ./suites folder.")
    st.stop()

first = data.default_suite(all_runs) or sorted(known)[0]
urlstate.seed("suite-name", "suite", first, options=known)
urlstate.keep("suite-name", list(known), first)
name = st.selectbox("Suite", sorted(known), key="suite-name")
urlstate.publish({"suite": name})
view = suites.load(known[name])
st.caption(f"folder: {view.path}")
if view.suite is None:
    st.warning(f"Cannot load this suite: {view.problem}")
    ids = sorted(
        {
            cid
            for r in all_runs
            if r["suite"] == name
            for cid in data.results(db, r["id"], data.run_version(r, db))[0]["criteria"]
        }
    )
    if ids:
        st.markdown("Criteria seen in its stored results: " + ", ".join(map(md, ids)))
    st.stop()

suite = view.suite
spec = suite.spec
st.markdown(f"**{md(spec.name)}** v{spec.version} — {md(spec.description)}")
stale = {r["suite_fingerprint"] for r in all_runs if r["suite"] == name} - {suite.fingerprint}
if stale:
    st.caption(f"{len(stale)} stored fingerprint(s) differ from the folder as it is now.")

st.subheader("Rubric")
if spec.lm_eval and not any(specs for _, specs in spec.rubric.sections()):
    st.caption("No rubric of its own: lm-eval's metrics grade each item (the tasks below).")
cols = st.columns(3)
blurbs = {
    "bad": "any one that fires makes the case bad",
    "good": "every one must pass for good",
    "better": "good, and every one passes: better",
}
for col, (section, specs) in zip(cols, spec.rubric.sections(), strict=True):
    with col:
        st.markdown(f"**{section}** — {blurbs[section]}")
        if not specs:
            st.caption("(none)")
            continue
        # A static table wraps its cells: parameters are read whole, not cut at a column edge.
        st.table(
            pd.DataFrame(
                [{"id": c.id, "type": c.type, "parameters": params_text(c.params())} for c in specs]
            ).set_index("id")
        )

if spec.prompt:
    st.subheader("Prompt")
    for part in ("system", "user", "assistant"):
        template = getattr(spec.prompt, part)
        if template:
            st.caption(part + (" (the reference answer)" if part == "assistant" else ""))
            text_block(template)
g = spec.generation
st.caption(
    f"generation: max {g.max_new_tokens} new tokens · stop {g.stop} · temperature {g.temperature}"
)
if spec.prompt and spec.prompt.variants:
    variants = spec.prompt.variants
    st.subheader(f"Prompt variants ({len(variants)})")
    st.caption(
        "Prompt-engineering baselines on the same cases: `tuneval eval SUITE --prompt NAME`, "
        "`tuneval loop SUITE --prompt-baseline NAME`."
    )

    def unless_base(text: str | None) -> str:
        return "(the base prompt's)" if text is None else text or "(none)"

    st.dataframe(
        pd.DataFrame(
            [
                {
                    "variant": name,
                    "examples": f"{v.shots} from {v.split} (seed {v.seed})" if v.shots else "none",
                    "system": unless_base(v.system),
                    "user": unless_base(v.user),
                }
                for name, v in variants.items()
            ]
        ),
        hide_index=True,
        key="suite-variants",
    )

if spec.lm_eval:
    lm_eval_section(name, Path(view.path), spec.lm_eval)
if suite.cases or not spec.lm_eval:
    st.subheader(f"Cases ({len(suite.cases)})")
if suite.cases:
    frame = pd.DataFrame([{k: v for k, v in c.items() if k != "__line__"} for c in suite.cases])
    st.dataframe(frame.fillna("").astype(str), hide_index=True)
if suite.train is not None:
    st.caption(f"training split: {plural(len(suite.train), 'example')}")

readme = Path(view.path) / "README.md"
if readme.is_file():
    with st.expander("README"):
        st.markdown(readme.read_text(encoding="utf-8", errors="replace"))
