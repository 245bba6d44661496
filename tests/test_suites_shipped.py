"""Every shipped suite loads and validates; the docstring suites keep their promises."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.suite.loader import find_suites, load_suite
from tests.conftest import REPO

SUITES = REPO / "suites"
SHIPPED = find_suites(SUITES)


def test_there_are_shipped_suites() -> None:
    names = {p.name for p in SHIPPED}
    assert {"python-docs", "module-routing", "world-cities"} <= names


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_suite_validates_and_has_a_readme(folder: Path) -> None:
    suite = load_suite(folder)
    assert suite.cases or suite.spec.lm_eval
    readme = folder / "README.md"
    assert readme.is_file(), f"{folder.name} has no README.md"
    text = readme.read_text(encoding="utf-8").casefold()
    for topic in ("licen", "rebuild", "tuneval eval"):  # provenance, licence, how, measured
        assert topic in text, f"{folder.name}/README.md says nothing about {topic!r}"


@pytest.mark.parametrize("name", ["python-docs", "module-routing"])
def test_training_suites_have_an_answer_template(name: str) -> None:
    suite = load_suite(SUITES / name)
    assert suite.spec.prompt and suite.spec.prompt.assistant
    assert suite.train and len(suite.train) > len(suite.cases)


def test_python_docs_size_and_split_by_function() -> None:
    suite = load_suite(SUITES / "python-docs")
    rows = {"test": suite.cases, "train": suite.train or [], "validation": suite.validation or []}
    assert sum(len(r) for r in rows.values()) >= 1000
    assert 100 <= len(suite.cases) <= 300  # the demo must stay quick
    functions = {split: {r["function"] for r in data} for split, data in rows.items()}
    assert not functions["test"] & functions["train"]
    assert not functions["test"] & functions["validation"]
    assert not functions["train"] & functions["validation"]
    modules = {r["module"] for data in rows.values() for r in data}
    assert len(modules) >= 80
    for r in suite.cases:
        assert r["function"] == f"{r['module']}.{r['name']}"
        assert r["answer"].strip() and r["question"].strip()
    info = json.loads((SUITES / "python-docs" / "build.json").read_text())
    assert info["python"].count(".") == 2  # the CPython version the docstrings came from


def test_module_routing_shares_the_python_docs_split() -> None:
    docs = load_suite(SUITES / "python-docs")
    routing = load_suite(SUITES / "module-routing")
    docs_train = {r["function"] for r in docs.train or []}
    docs_test = {r["function"] for r in docs.cases}
    routing_test = {r["function"] for r in routing.cases}
    assert routing_test and not routing_test & docs_train
    assert routing_test <= docs_test
    for r in routing.cases:
        assert r["module"] not in r["summary"].split()  # the summary does not give it away


def test_world_cities_panel() -> None:
    folder = SUITES / "world-cities"
    suite = load_suite(folder)
    assert suite.spec.lm_eval == ["world_cities.yaml"] and not suite.cases
    rows = [json.loads(line) for line in (folder / "world_cities.jsonl").read_text().splitlines()]
    assert 200 <= len(rows) <= 300
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert len(r["choices"]) == 4 and len(set(r["choices"])) == 4
        assert r["choices"][r["gold"]] == r["answer"]
    # Gold positions are spread, so "always A" scores near chance.
    positions = [r["gold"] for r in rows]
    assert max(positions.count(i) for i in range(4)) < 0.4 * len(rows)


def test_build_scripts_reproduce_the_frozen_data(tmp_path: Path) -> None:
    """Rebuilding on the recorded Python version gives byte-identical files."""
    import platform
    import sys

    info = json.loads((SUITES / "python-docs" / "build.json").read_text())
    if platform.python_version() != info["python"]:
        pytest.skip(f"frozen with Python {info['python']}, running {platform.python_version()}")
    # A fresh interpreter: docstrings read in this process could carry other tests' imports.
    path = SUITES / "python-docs" / "build.py"
    code = (
        "import importlib.util, sys, pathlib\n"
        f"spec = importlib.util.spec_from_file_location('b', {str(path)!r})\n"
        "b = importlib.util.module_from_spec(spec); sys.modules['b'] = b\n"
        "spec.loader.exec_module(b)\n"
        "for split, data in b.qa_rows(b.extract()).items():\n"
        f"    b.write_jsonl(pathlib.Path({str(tmp_path)!r}) / f'{{split}}.jsonl', data)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)
    for split in ("test", "train", "validation"):
        frozen = (SUITES / "python-docs" / f"{split}.jsonl").read_bytes()
        assert (tmp_path / f"{split}.jsonl").read_bytes() == frozen, split
