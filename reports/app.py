"""tuneval report: `tuneval report [--db PATH]`, or `streamlit run reports/app.py -- --db PATH`."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `streamlit run` puts reports/ itself on the path
    sys.path.insert(0, str(HERE.parent))

from reports import data  # noqa: E402

st.set_page_config(page_title="tuneval report", page_icon=":material/science:", layout="wide")

PAGES = [
    st.Page(
        HERE / "views" / "runs.py",
        title="Runs and models",
        icon=":material/table_rows:",
        url_path="runs",
        default=True,
    ),
    st.Page(
        HERE / "views" / "compare.py",
        title="Compare",
        icon=":material/compare_arrows:",
        url_path="compare",
    ),
    st.Page(
        HERE / "views" / "leaderboard.py",
        title="Leaderboard",
        icon=":material/leaderboard:",
        url_path="leaderboard",
    ),
    st.Page(
        HERE / "views" / "cases.py",
        title="Case explorer",
        icon=":material/search:",
        url_path="cases",
    ),
    st.Page(
        HERE / "views" / "training.py",
        title="Training",
        icon=":material/show_chart:",
        url_path="training",
    ),
    st.Page(
        HERE / "views" / "suite.py", title="Suite", icon=":material/menu_book:", url_path="suite"
    ),
    st.Page(
        HERE / "views" / "grading.py",
        title="Human grading",
        icon=":material/rate_review:",
        url_path="grading",
    ),
]


@st.cache_resource(show_spinner=False)
def _warm_imports() -> threading.Thread:
    """Import the comparison's statistics stack and altair in the background, once per server:
    together they take seconds, and the first visit to Compare should not wait for them."""

    def work() -> None:
        import altair  # noqa: F401

        import harness.compare  # noqa: F401

    thread = threading.Thread(target=work, name="tuneval-warm-imports", daemon=True)
    thread.start()
    return thread


_warm_imports()
page = st.navigation(PAGES)
db = data.db_path()
st.sidebar.caption(f"store: `{db}`")
if not Path(db).exists():
    st.error(f"No store at {db}. Evaluate a model first: `tuneval eval SUITE`.")
    st.stop()
page.run()
