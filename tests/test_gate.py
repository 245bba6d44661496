"""`tuneval gate` and `tuneval compare` from the command line: exit codes, JUnit, Markdown."""

from __future__ import annotations

import json
import shutil
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.comparison.compare import compare_runs
from tests.compare_helpers import answers, fake_run
from tests.conftest import CASES, SUITE_YAML, write_suite


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def tuneval(capsys, monkeypatch):
    """Run the real entry point, `harness.cli.main`, in this process (a subprocess per call
    costs seconds of imports): its exit code and what it printed."""
    from harness.cli import main

    def run(db: Path, *args: str) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["tuneval", *args, "--db", str(db)])
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def runs(store, mini_suite):
    """A baseline, the same model again, an all-broken candidate, one that breaks the must-pass
    case only, and one that loses `better` on two cases."""
    return {
        "base": fake_run(store, mini_suite, "base", answers()),
        "broken": fake_run(store, mini_suite, "broken", lambda prompt: "no idea"),
        "must": fake_run(store, mini_suite, "must", answers({"f": "no idea"})),
        "wordy": fake_run(
            store, mini_suite, "wordy", answers({"a": "the textwrap module", "b": "json, I think"})
        ),
    }


def test_gate_exit_codes(tuneval, store, runs):
    db = store.path
    same = tuneval(db, "gate", runs["base"], runs["base"])
    assert same.returncode == 0, same.stderr
    assert "no significant change" in same.stdout and "gate passed" in same.stdout
    by_name = tuneval(db, "gate", "base", "base", "--suite", "mini")  # model names
    assert by_name.returncode == 0, by_name.stderr

    broken = tuneval(db, "gate", "base", "broken")
    assert broken.returncode == 1
    assert "verdict: regressed" in broken.stdout and "significant regression" in broken.stdout

    must = tuneval(db, "gate", "base", "must")
    assert must.returncode == 1
    assert "must-pass cases stopped passing: f" in must.stdout

    wordy = tuneval(db, "gate", "base", "wordy")
    assert wordy.returncode == 0, wordy.stdout  # two better -> good moves are no evidence
    strict = tuneval(db, "gate", "base", "wordy", "--max-regressed", "1")
    assert strict.returncode == 1 and "2 cases dropped a grade" in strict.stdout
    assert tuneval(db, "gate", "base", "wordy", "--max-regressed", "2").returncode == 0


def test_usage_errors_exit_2_without_traceback(tuneval, store, runs):
    db = store.path
    for args in (
        ("gate", runs["base"], "nobody"),
        ("compare", "nobody", runs["base"]),
        ("gate", runs["base"], runs["base"], "--alpha", "2"),
        ("gate", runs["base"], runs["base"], "--max-regressed", "-1"),
    ):
        r = tuneval(db, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr


def test_differing_suites_refused_then_forced(tuneval, store, tmp_path):
    one = write_suite(tmp_path / "one")
    changed = [dict(c, module="os.path") if c["id"] == "c" else c for c in CASES]
    two = write_suite(tmp_path / "two", SUITE_YAML.replace("version: 1", "version: 2"), changed)
    a = fake_run(store, one, "base", answers())
    b = fake_run(store, two, "cand", answers())
    refused = tuneval(store.path, "gate", a, b)
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert "v1 -> mini v2" in lines[0] and "--force" in lines[0]
    assert any("test.jsonl changed" in line for line in lines)
    assert any("suite.yaml changed" in line for line in lines)
    forced = tuneval(store.path, "gate", a, b, "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "different suites, compared with --force" in forced.stdout


def test_junit_and_markdown_files(tuneval, store, runs, tmp_path):
    junit, md = tmp_path / "ci" / "gate.xml", tmp_path / "ci" / "gate.md"
    junit.parent.mkdir()  # output folders are not created: a typo would make a tree
    r = tuneval(store.path, "gate", "base", "must", "--junit", str(junit), "--markdown", str(md))
    assert r.returncode == 1
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(CASES) + 1 == int(suite.get("tests", "0"))
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == {"verdict", "f"} and suite.get("failures") == "2"
    assert failed["f"].get("type") == "must_pass"
    assert "must-pass" in failed["verdict"].get("message", "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["run_a"] and props["verdict"] == "insufficient evidence"  # 1 case of 6 moved
    text = md.read_text()
    assert text.startswith("## tuneval compare: insufficient evidence")
    assert "**Must-pass cases that stopped passing:** `f`" in text


def test_junit_survives_control_characters(tuneval, store, mini_suite, tmp_path):
    a = fake_run(store, mini_suite, "base", answers())
    b = fake_run(store, mini_suite, "odd", answers({"c": "\x00\x1b[31mred\x07 & <tag>"}))
    out = tmp_path / "j.xml"
    r = tuneval(store.path, "compare", a, b, "--junit", str(out))
    assert r.returncode == 0, r.stderr
    failure = next(c for c in ET.parse(out).getroot().iter("testcase") if c.get("name") == "c")
    assert "& <tag>" in (failure.find("failure").text or "")


def test_compare_json(tuneval, store, runs):
    r = tuneval(store.path, "compare", "base", "broken", "--json")
    assert r.returncode == 0, r.stderr  # compare reports; only the gate fails
    data = json.loads(r.stdout)
    assert data["verdict"] == "regressed" and data["mcnemar"]["b10"] == 6
    assert data["transitions"]["better"]["bad"] == 6


# --- a real planted regression -----------------------------------------------------------------

CAPITALS = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Germany", "Berlin"), ("Russia", "Moscow"),
    ("China", "Beijing"), ("Egypt", "Cairo"), ("Greece", "Athens"), ("Ireland", "Dublin"),
    ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Kenya", "Nairobi"), ("Cuba", "Havana"),
]  # fmt: skip
CAPITALS_YAML = """\
name: capitals
version: 1
description: Capital cities, which the packaged model mostly gets right.
prompt:
  system: Answer with the city name only.
  user: "What is the capital of {country}?"
generation: {max_new_tokens: 10, stop: ["\\n"]}
data:
  test: test.jsonl
rubric:
  bad:
    - {id: empty, type: empty}
  good:
    - {id: names-city, type: contains, value: "{city}"}
  better:
    - {id: short, type: length, max_words: 6}
"""


def broken_copy(source: Path, target: Path) -> Path:
    """The packaged model with every attention output and MLP down projection zeroed: the
    residual stream carries only the token embeddings, so the model can no longer answer."""
    from safetensors.torch import load_file, save_file

    target.mkdir(parents=True)
    for f in source.iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            shutil.copy(f, target / f.name)
    weights = load_file(source / "model.safetensors")
    for name, tensor in weights.items():
        if name.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")):
            tensor.zero_()
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    return target


@pytest.mark.slow
def test_gate_on_a_real_broken_model(tuneval, store, tmp_path, packaged_model_dir):
    from harness.evaluation.runner import EvalOptions, evaluate_suite
    from harness.generation import models
    from harness.suite.loader import load_suite

    rows = [
        {"id": f"cap-{i:02d}", "country": c, "city": city, "must_pass": c == "France"}
        for i, (c, city) in enumerate(CAPITALS)
    ]
    folder = tmp_path / "capitals"
    folder.mkdir()
    (folder / "suite.yaml").write_text(CAPITALS_YAML)
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = load_suite(folder)
    broken = broken_copy(packaged_model_dir, tmp_path / "broken-model")

    base = models.resolve(models.DEFAULT_MODEL, store)
    opts = EvalOptions(batch_size=12, progress=False)
    run_a = evaluate_suite(suite, base, store, opts).run_id
    run_again = evaluate_suite(suite, base, store, opts).run_id  # from cache
    run_b = evaluate_suite(suite, models.resolve(str(broken), store), store, opts).run_id
    assert run_again != run_a

    c = compare_runs(store, run_a, run_b)
    assert c.pass_rate.a >= 0.5, [p.a["output"] for p in c.pairs]  # the base model can do this
    assert c.pass_rate.b == 0.0, [p.b["output"] for p in c.pairs]
    assert c.verdict == "regressed"
    assert c.must_pass_broken == ["cap-00"]
    assert compare_runs(store, run_a, run_again).verdict == "no significant change"

    assert tuneval(store.path, "gate", run_a, run_again).returncode == 0
    assert tuneval(store.path, "gate", run_a, run_b).returncode == 1
    assert tuneval(store.path, "gate", models.DEFAULT_MODEL, str(broken)).returncode == 1
