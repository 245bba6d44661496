"""How long the report takes to load on a store with 2 runs x 2,000 cases.

Builds the store through the store's own functions (a suite folder included, with a train split
that leaks a few test prompts, so references and leakage flags load), then times each page
through Streamlit's AppTest: the first load from empty caches (queries, the comparison with its
bootstrap, the leakage check) and a warm rerun (what a reviewer waits for after clicking a
filter). With --browser it also times the Compare page in headless Chromium under
`streamlit run`.

    .venv/bin/python bench/report_load.py [--cases 2000] [--browser]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness.store import Store

SUITE_YAML = """\
name: synthetic
version: 1
description: Synthetic cases for the report's load benchmark.
prompt:
  system: Answer briefly.
  user: "{question}"
  assistant: "{answer}"
data: {test: test.jsonl, train: train.jsonl}
rubric:
  bad:
    - {id: empty, type: empty}
  good:
    - {id: names-answer, type: contains, value: "{answer}"}
  better:
    - {id: exact, type: exact, value: "{answer}"}
    - {id: short, type: length, max_words: 20}
"""
WORDS = "module function returns value list string file path number json time os sys".split()


def _criteria(rng: random.Random, grade: str) -> dict[str, dict[str, object]]:
    good = grade != "bad"
    better = grade == "better"
    return {
        "empty": {"section": "bad", "passed": True, "score": None, "detail": "not empty"},
        "names-answer": {
            "section": "good",
            "passed": good,
            "score": None,
            "detail": "contains it" if good else "missing the answer",
        },
        "exact": {
            "section": "better",
            "passed": better,
            "score": float(better),
            "detail": "exact match" if better else "expected the answer",
        },
        "short": {
            "section": "better",
            "passed": better or rng.random() < 0.5,
            "score": None,
            "detail": f"{rng.randint(3, 40)} words",
        },
    }


def _model(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    row = {"name": name, "spec": name, "path": None, "fingerprint": f"fp-{name}", "kind": kind,
           "base": None, "produced_by": None, "info": {}, "created_at": time.time()}  # fmt: skip
    return row | extra


def _run(run_id: str, model: str, suite: Path, n: int, now: float) -> dict[str, Any]:
    return {
        "id": run_id, "suite": "synthetic", "suite_version": 1, "suite_fingerprint": "fp-suite",
        "suite_path": str(suite), "suite_files": {}, "model": model,
        "model_fingerprint": f"fp-{model}", "model_kind": "", "prompt_variant": "",
        "settings": {"must_pass": "recorded"}, "run_key": run_id, "status": "complete",
        "n_cases": n, "train_run": None, "step": None, "created_at": now, "finished_at": now,
        "timings": {},
    }  # fmt: skip


def build(folder: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    suite = folder / "synthetic"
    suite.mkdir(parents=True)
    cases = [
        {
            "id": f"case-{i:05d}",
            "question": f"What does {rng.choice(WORDS)} {i} do?",
            "answer": f"{rng.choice(WORDS)}-{i}",
        }
        for i in range(n)
    ]
    # A train split as large as the test split, one prompt in fifty copied from the test split.
    train = [
        dict(cases[i], id=f"train-{i}") if i % 50 == 0 else
        {"id": f"train-{i}", "question": f"Explain {rng.choice(WORDS)} {i + n}.", "answer": "x"}
        for i in range(n)
    ]  # fmt: skip
    (suite / "suite.yaml").write_text(SUITE_YAML)
    for name, rows in (("test.jsonl", cases), ("train.jsonl", train)):
        (suite / name).write_text("".join(json.dumps(c) + "\n" for c in rows))
    db = folder / "tuneval.db"
    with Store(db) as store:
        store.register_model(_model("base", "packaged"))
        cand = _model("cand", "trained", base="base", produced_by="train-1")
        store.register_model(cand)
        for k, model in enumerate(("base", "cand")):
            run_id = f"run-{model}"
            store.insert_run(_run(run_id, model, suite, n, time.time() + k))
            rows = []
            for i, case in enumerate(cases):
                grade = rng.choices(("bad", "good", "better"), (3, 4, 3 + 2 * k))[0]
                words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 60)))
                prompt = [
                    {"role": "system", "content": "Answer briefly."},
                    {"role": "user", "content": case["question"]},
                ]
                rows.append(
                    {
                        "run_id": run_id,
                        "case_id": case["id"],
                        "position": i,
                        "prompt": json.dumps(prompt),
                        "output": f"{case['answer']} {words}",
                        "grade": grade,
                        "criteria": _criteria(rng, grade),
                        "cached": False,
                        "must_pass": False,
                        "prompt_tokens": None,
                        "output_tokens": None,
                        "seconds": None,
                    }  # fmt: skip
                )
            store.save_results(rows)
    return db


def time_apptest(db: Path) -> None:
    from streamlit.testing.v1 import AppTest

    os.environ["TUNEVAL_DB"] = str(db)
    app = Path(__file__).resolve().parents[1] / "reports" / "app.py"
    import streamlit as st

    at = AppTest.from_file(str(app), default_timeout=300)
    t0 = time.perf_counter()
    at.run()  # the default page: imports included
    print(f"  default page, first load with imports {time.perf_counter() - t0:5.2f}s")
    pages = ("overview", "runs", "compare", "cases", "training", "suite", "grading")
    for page in pages:
        if not (app.parent / "views" / f"{page}.py").exists():
            continue  # an older report without this page
        at.switch_page(f"views/{page}.py")
        # Every first load starts from empty caches: whichever page came before, each one here
        # pays for its own queries and, on Compare, for the comparison.
        st.cache_data.clear()
        st.cache_resource.clear()
        t0 = time.perf_counter()
        at.run()
        first = time.perf_counter() - t0
        assert not at.exception, [e.value for e in at.exception]
        t0 = time.perf_counter()
        at.run()
        warm = time.perf_counter() - t0
        print(f"  {page:<9} first load {first:6.2f}s   rerun {warm:5.2f}s")
    at.switch_page("views/compare.py").run()
    t0 = time.perf_counter()
    at.pills(key="compare-changes").set_value(["regressed"]).run()
    print(f"  compare: filter to regressed {time.perf_counter() - t0:5.2f}s")


def time_browser(db: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from harness.cli.report import app_file, streamlit_command

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        streamlit_command(app_file(), db, port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for label in ("cold", "warm"):
                t0 = time.perf_counter()
                page.goto(f"{url}/compare")
                # the first case: a compact row (an expander), or a card heading in older reports
                first_case = page.locator('[data-testid="stExpander"], h4').first
                expect(first_case).to_be_visible(timeout=300_000)
                print(
                    f"  browser: Compare to first card ({label}) {time.perf_counter() - t0:5.2f}s"
                )
            # the same wait on a nearly empty page: what Streamlit's own front end costs
            t0 = time.perf_counter()
            page.goto(f"{url}/suite")
            expect(page.locator("h1").first).to_be_visible(timeout=300_000)
            print(f"  browser: Suite page (baseline) {time.perf_counter() - t0:5.2f}s")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--browser", action="store_true", help="also time Compare in Chromium")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        db = build(Path(tmp), args.cases)
        print(f"store: 2 runs x {args.cases} cases built in {time.perf_counter() - t0:.1f}s")
        time_apptest(db)
        if args.browser:
            time_browser(db)


if __name__ == "__main__":
    main()
