"""tuneval report: `tuneval report [--db PATH]`, or `streamlit run reports/app.py -- --db PATH`
(then pass `--browser.gatherUsageStats false` yourself; `tuneval report` does)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `streamlit run` puts reports/ itself on the path
    sys.path.insert(0, str(HERE.parent))

from reports import data  # noqa: E402
from reports.render import md  # noqa: E402

# An emoji icon is drawn in the page; a ":material/…:" favicon is fetched from Google's servers,
# and the report makes no request beyond 127.0.0.1.
st.set_page_config(page_title="tuneval report", page_icon="🧪", layout="wide")
st.set_option("client.toolbarMode", "minimal")  # no Deploy button, no developer menu


def page(file: str, title: str, icon: str, url_path: str, default: bool = False) -> st.Page:
    return st.Page(
        HERE / "views" / file, title=title, icon=icon, url_path=url_path, default=default
    )


PAGES = [
    page("overview.py", "Overview", ":material/dashboard:", "overview", default=True),
    page("compare.py", "Compare", ":material/compare_arrows:", "compare"),
    page("grading.py", "Human grading", ":material/rate_review:", "grading"),
    page("cases.py", "Case explorer", ":material/search:", "cases"),
    page("runs.py", "Runs and models", ":material/table_rows:", "runs"),
    page("leaderboard.py", "Leaderboard", ":material/leaderboard:", "leaderboard"),
    page("training.py", "Training", ":material/show_chart:", "training"),
    page("suite.py", "Suite", ":material/menu_book:", "suite"),
]


@st.cache_resource(show_spinner=False)
def _warm_imports() -> threading.Thread:
    """Import the comparison's statistics stack and altair in the background, once per server:
    together they take seconds, and the first visit to Compare should not wait for them."""

    def work() -> None:
        import altair  # noqa: F401

        import harness.comparison.compare  # noqa: F401

    thread = threading.Thread(target=work, name="tuneval-warm-imports", daemon=True)
    thread.start()
    return thread


_warm_imports()
current = st.navigation(PAGES)
db = data.db_path()
st.sidebar.caption(f"store: `{db}`")
problem = data.store_problem(db)
if problem:  # missing, not a SQLite file, a newer schema: one line on every page, no traceback
    st.error(md(problem))
    st.stop()
current.run()
