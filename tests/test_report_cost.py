"""Cost beside quality: the Compare page's cost table is `tuneval compare --json`'s, the Overview
names it in a sentence, and runs on different engines carry the CLI's caveat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.compare_helpers import answers
from tests.conftest import FakeBackend, run_cli, write_suite

APP = Path(__file__).resolve().parents[1] / "reports" / "app.py"


class CostlyBackend(FakeBackend):
    """The fake backend with figures that differ by answer: tokens and seconds grow with the
    answer's length, prompt tokens with the prompt's; it names its engine as the pool does."""

    engine_ran = "pool"

    def generate(self, conversations, settings, on_batch) -> None:  # type: ignore[no-untyped-def]
        from harness.generation.types import Generation

        for i, conv in enumerate(conversations):
            text = self.answer(conv[-1]["content"])
            n = 1 + len(text.split())
            prompt = sum(len(m["content"].split()) for m in conv)
            on_batch([i], [Generation(text, n, 0.01 * n, prompt)])


@pytest.fixture
def costly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, str]:
    from harness.evaluation.runner import EvalOptions, evaluate_suite
    from harness.generation.models import ModelRef
    from harness.store import Store
    from harness.suite.loader import load_suite

    suite = load_suite(write_suite(tmp_path / "mini"))
    db = tmp_path / "tuneval.db"
    wordy = answers({"a": "it is in the module named textwrap, I believe", "b": "maybe json"})
    ids = []
    with Store(db) as store:
        for name, answer, dtype in (("wordy", wordy, "float32"), ("terse", answers(), "bfloat16")):
            ref = ModelRef(name, name, tmp_path, "local", f"fp-{name}")
            opts = EvalOptions(progress=False, dtype=dtype)
            ids.append(
                evaluate_suite(suite, ref, store, opts, backend=CostlyBackend(answer)).run_id
            )
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    return db, ids[0], ids[1]


def test_cost_on_compare_equals_the_cli(
    costly: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from streamlit.testing.v1 import AppTest

    from harness.comparison.cost import FIGURES, CostLine, amount, ratio_cells

    db, a, b = costly
    code, out, _ = run_cli("compare", a, b, "--json", "--db", str(db), capsys=capsys)
    assert code == 0
    cli = json.loads(out)["cost"]
    code, out, _ = run_cli("compare", a, b, "--db", str(db), capsys=capsys)
    assert code == 0 and "different engines (pool float32 vs pool bfloat16)" in " ".join(
        out.split()
    )
    # seconds of different engines are shown, never divided; token counts still are
    assert cli["seconds"]["ratio"] is None and cli["seconds"]["apart"] == "engines differ"
    assert cli["output_tokens"]["ratio"] is not None
    assert "not divided: engines differ" in " ".join(out.split())
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.query_params.update({"suite": "mini", "a": a, "b": b})
    at.switch_page("views/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "cost per case (mean)" in d.value.columns)
    assert list(table["cost per case (mean)"]) == [FIGURES[f] for f in cli]
    for (_, row), line in zip(table.iterrows(), cli.values(), strict=True):
        expected = CostLine(**line)
        assert (row["A"], row["B"]) == (amount(expected, line["a"]), amount(expected, line["b"]))
        assert (row["B / A"], row["95% CI"]) == ratio_cells(expected)
        assert row["cases"] == line["n"]
    assert float(table.iloc[1]["B / A"].rstrip("x")) < 1  # the terse model generates less
    assert table.iloc[2]["B / A"] == "not divided"
    warnings = " ".join(str(w.value) for w in at.warning).replace("\\", "")
    assert "different engines (pool float32 vs pool bfloat16)" in warnings
    captions = " ".join(str(c.value) for c in at.caption).replace("\\", "")
    assert "A answered by pool · B answered by pool" in captions  # as `runs show` names it


def test_a_run_that_names_no_engine_compares_by_backend() -> None:
    """Runs stored before tuneval noted the engine (or all from the cache) fall back to the
    backend they recorded; two named engines compare as themselves."""
    from harness.comparison.cost import engine_caveat

    def run(**settings: str) -> dict:
        return {"settings": {"backend": "hf", "dtype": "float32", **settings}}

    assert engine_caveat(run(), run(engine="pool")) == ""
    assert engine_caveat(run(engine="cache"), run(engine="hf")) == ""
    assert "(pool float32 vs hf float32)" in engine_caveat(run(engine="pool"), run(engine="hf"))


def test_overview_names_the_cost_beside_the_verdict(costly: tuple[Path, str, str]) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(str(c.value) for c in at.caption).replace("\\", "")
    assert "the generated tokens" in captions and "per case of" in captions
    assert "the seconds" not in captions  # not divided across engines
    assert "different engines" in captions
