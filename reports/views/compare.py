"""Compare two runs case by case: the verdict with its intervals and leakage, the transition grid
(click a cell to list its cases), per-criterion changes, and one compact row per case that opens
in place. Every choice on the page is in the URL."""

from __future__ import annotations

from functools import partial

import streamlit as st

from harness.errors import UserError
from reports import charts, data, slicing, suites, urlstate
from reports.caseview import details, row_label
from reports.comparison import (
    CELLS,
    CHANGES,
    CRITERION_STATES,
    LEAK_FILTERS,
    compared,
    filter_pairs,
    ordered,
    with_cell_change,
)
from reports.headline import headline
from reports.render import CHANGE_MARK, md
from reports.widgets import model_label, run_label, scroll_to, suite_picker

PAGE_SIZE = 25
db = data.db_path()
all_runs = [r for r in data.runs(db, data.stamp(db)) if r["n_results"]]
by_id = {r["id"]: r for r in all_runs}
st.title("Compare")
if len(all_runs) < 2:
    st.info("Comparing needs two runs with results on the same suite.")
    st.stop()

# --- choose the runs ------------------------------------------------------------------------
pick = st.columns([2, 4, 1, 4], vertical_alignment="bottom")
suite = suite_picker(pick[0], all_runs, "compare-suite")
options = [r["id"] for r in all_runs if r["suite"] == suite]
defaults = dict(zip("ab", data.default_pair(all_runs, suite), strict=True))
for side in "ab":
    urlstate.seed(f"compare-{side}", side, defaults[side], options=options)
    urlstate.keep(f"compare-{side}", options, defaults[side])


def label(run_id: str) -> str:
    return run_label(by_id[run_id])


def swap() -> None:
    state = st.session_state
    state["compare-a"], state["compare-b"] = state["compare-b"], state["compare-a"]


run_a = pick[1].selectbox("A (base)", options, format_func=label, key="compare-a")
pick[2].button(
    "⇄", key="compare-swap", on_click=swap, help="Swap A and B", width="stretch"
)  # fmt: skip
run_b = pick[3].selectbox("B (candidate)", options, format_func=label, key="compare-b")
urlstate.seed("compare-force", "force", False, parse=lambda v: v == "1")
published = {"suite": suite, "a": run_a, "b": run_b}
if not run_a or not run_b or run_a == run_b:
    urlstate.publish(published)  # even a page that asks for two runs can be linked
    if run_a == run_b:
        st.warning("Pick two different runs.")
    else:
        st.info("This suite has a single run: evaluate another model on it to compare.")
    st.stop()

force = False
if by_id[run_a]["suite_fingerprint"] != by_id[run_b]["suite_fingerprint"]:
    st.warning("The two runs used different versions of the suite (cases or rubric changed).")
    force = st.checkbox("Compare anyway", key="compare-force")
versions = (data.run_version(by_id[run_a], db), data.run_version(by_id[run_b], db))
try:
    c = compared(db, run_a, run_b, force, *versions)
except UserError as e:
    urlstate.publish(published)
    st.error("These runs cannot be compared as they are:\n\n" + "\n\n".join(map(md, e.lines())))
    st.stop()
cmp = c.cmp
view = suites.for_run(by_id[run_a])
leaks = suites.leaks(view)
leaked = frozenset(str(p.case_id) for p in cmp.pairs if str(p.case_id) in leaks)
headline(c, db, (run_a, run_b), force, versions, leaks, suites.leak_note(view, by_id[run_a]))
in_slice, slice_params = slicing.panel(cmp, view)
published |= slice_params


# --- filters --------------------------------------------------------------------------------
def first_page() -> None:
    st.session_state["compare-page"] = 1  # the page shown; not a widget key (see turn_page)


def pick_cell(key: str) -> None:
    """A click on the transition grid lists that cell's cases. The Change pills stay as they
    were, widened by the cell's own change when they leave it out: a click never lists nothing,
    and the pills show what filters the list."""
    state = st.session_state.get(key) or {}
    chosen = (state.get("selection") or {}).get(charts.CELL) or []
    cell = f"{chosen[0]['A']}→{chosen[0]['B']}" if chosen else ""
    st.session_state["compare-cell"] = cell
    st.session_state["compare-changes"] = with_cell_change(
        st.session_state.get("compare-changes") or [], cell
    )
    first_page()


st.subheader("Cases")
grid, filters = st.columns([2, 5])
urlstate.seed("compare-cell", "cell", "", options=CELLS)
# The grid is keyed by the chosen cell and draws it as its selection: when the cell changes
# elsewhere (the selectbox, "any", a link) the grid is drawn anew with that cell highlighted, or
# none, instead of keeping its last click.
grid_key = f"chart-transitions-{st.session_state['compare-cell'] or 'any'}"
with grid.container(key="transition-grid"):
    st.vega_lite_chart(
        charts.with_cell(c.charts["transitions"], st.session_state["compare-cell"]),
        key=grid_key,
        height=charts.HEATMAP_HEIGHT,
        on_select=partial(pick_cell, grid_key),
        selection_mode=charts.CELL,
    )
    st.caption("Rows: grade in A; columns: grade in B. Click a cell to list its cases.")
counts = c.table["change"].value_counts().to_dict() if not c.table.empty else {}
cells = {f"{a}→{b}": n for a, row in cmp.transitions.items() for b, n in row.items()}
# "" stands for "any" in the selectboxes: a selectbox shows None as an empty choice, not a word.
urlstate.seed("compare-changes", "change", ["regressed", "improved"], options=CHANGES, many=True)
urlstate.seed("compare-criterion", "criterion", "", options=c.criteria)
urlstate.seed("compare-crit-state", "which", "changed", options=CRITERION_STATES)
urlstate.seed("compare-search", "q", "")
urlstate.seed("compare-regex", "re", False, parse=lambda v: v == "1")
urlstate.seed("compare-leak", "leak", "all", options=LEAK_FILTERS)
with filters:
    changes = st.pills(
        "Change",
        CHANGES,
        selection_mode="multi",
        key="compare-changes",
        format_func=lambda ch: f"{CHANGE_MARK[ch]} {ch} ({counts.get(ch, 0)})",
        on_change=first_page,
    )
    f = st.columns(2)
    cell = f[0].selectbox(
        "Transition (or click the grid)",
        ["", *CELLS],
        key="compare-cell",
        format_func=lambda x: f"{x} ({cells.get(x, 0)})" if x else "any",
        on_change=first_page,
    )
    leak = f[1].selectbox(
        "Training data",
        list(LEAK_FILTERS),
        key="compare-leak",
        format_func=lambda k: f"{LEAK_FILTERS[k]}" + (f" ({len(leaked)})" if k == "leaked" else ""),
        on_change=first_page,
        disabled=not leaked,
        help="test prompts that the suite's train or validation split holds, or nearly",
    )
    f = st.columns(2)
    criterion = f[0].selectbox(
        "Criterion",
        ["", *c.criteria],
        key="compare-criterion",
        format_func=lambda x: x or "any",
        on_change=first_page,
    )
    state = f[1].selectbox(
        "…which",
        list(CRITERION_STATES),
        key="compare-crit-state",
        format_func=CRITERION_STATES.get,
        disabled=not criterion,
        on_change=first_page,
    )
    f = st.columns([5, 1], vertical_alignment="bottom")
    search = f[0].text_input(
        "Search case id, the case's own fields and question, both outputs",
        key="compare-search",
        on_change=first_page,
        help="not the few-shot examples or system text around the question",
    )
    regex = f[1].toggle("regex", key="compare-regex", on_change=first_page)
# The case's fields as the suite holds them (an lm-eval item has none: its question is enough).
fields = {
    cid: "\n".join(str(v) for k, v in case.items() if k != "__line__")
    for cid, case in view.cases.items()
}
try:
    matching = filter_pairs(
        c.table, changes, criterion, state, search, cell=cell, leaked=leaked, leak=leak,
        regex=regex, fields=fields,
    )  # fmt: skip
except ValueError as e:  # a pattern that does not compile: say so, filter by the rest
    st.warning(md(str(e)))
    matching = filter_pairs(c.table, changes, criterion, state, cell=cell, leaked=leaked, leak=leak)
by_share = c.cmp.sampling is not None and st.toggle(
    "Sort by change in pass share", key="compare-by-share", help="k samples per case"
)
shown = ordered(matching, by_share)
if in_slice is not None:  # a slice row picked, or "cases where the probe differs"
    shown = shown[shown["case_id"].astype(str).isin(in_slice)]

# --- pages of compact rows ------------------------------------------------------------------
pages = max(1, -(-len(shown) // PAGE_SIZE))
urlstate.seed("compare-page", "page", 1, parse=int)
case_ids = c.table["case_id"].tolist() if not c.table.empty else []
urlstate.seed("compare-open", "case", None, options=case_ids)
st.session_state["compare-page"] = min(max(1, int(st.session_state["compare-page"])), pages)
page_no = st.session_state["compare-page"]
urlstate.publish(
    published
    | {
        "force": "1" if force else None,
        "change": None if changes == ["regressed", "improved"] else changes,
        "cell": cell,
        "leak": None if leak == "all" else leak,
        "criterion": criterion,
        "which": state if criterion and state != "changed" else None,
        "q": search.strip() or None,
        "re": "1" if regex and search.strip() else None,
        "page": page_no if page_no > 1 else None,
        "case": st.session_state["compare-open"],
    }
)


def turn_page(key: str) -> None:
    st.session_state["compare-page"] = st.session_state[key]


def pager(where: str) -> None:
    """Page numbers; above and below the rows, both showing the page in "compare-page". Their
    keys name that page, so a turn (or a filter that starts again at 1) makes new widgets with
    the right default, instead of writing into a widget's state."""
    key = f"compare-pages-{where}-{page_no}-{pages}"
    st.pagination(pages, default=page_no, key=key, on_change=turn_page, args=(key,))


def opened(case_id: str) -> None:
    """One open row at a time: opening a row closes the one open before."""
    before = st.session_state.get("compare-open")
    if st.session_state.get(f"row-{case_id}"):
        if before and before != case_id:
            st.session_state[f"row-{before}"] = False
        st.session_state["compare-open"] = case_id
    elif before == case_id:
        st.session_state["compare-open"] = None


st.caption(f"{len(shown)} of {len(c.table)} cases match · page {page_no} of {pages}")
if pages > 1:
    pager("top")
open_case = st.session_state["compare-open"]
if open_case is not None:
    st.session_state.setdefault(f"row-{open_case}", True)
names = {"A": model_label(by_id[run_a]), "B": model_label(by_id[run_b])}
labels = data.labels(db)
for i in shown["i"].iloc[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE]:
    p = cmp.pairs[int(i)]
    cid = str(p.case_id)
    box = st.expander(
        row_label(p, must_pass=suites.must_pass(view, cid), leak=leaks.get(cid)),
        key=f"row-{cid}",
        on_change=opened,
        args=(cid,),
    )
    if box.open:  # rows render their details only when opened: a page stays quick
        with box:
            details(
                p,
                view=view,
                suite=suite,
                runs={"A": run_a, "B": run_b},
                names=names,
                labels=labels,
                leak=leaks.get(cid),
            )
if pages > 1:
    pager("bottom")

# A link that opens a case lands on it: the first run of the page in a session scrolls the open
# row into view once it is drawn (Streamlit has no scroll of its own; the row's key is its class).
if "compare-landed" not in st.session_state:
    st.session_state["compare-landed"] = True
    if open_case is not None:
        scroll_to(f"row-{open_case}")
