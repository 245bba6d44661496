"""Hostile importer input: one located line and exit 2, no traceback, no hang, no `--out` left.

Each source below once hung, ran out of memory or crashed with a traceback; each now fails in
one line naming the source. `tests/fuzz_imports.py` mutates the specimens at random on top.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cli

BOMB = "".join(f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9) if i else 'x'}]\n" for i in range(9))
TASK = """task: t
dataset_path: json
dataset_kwargs: {{data_files: {{test: d.jsonl}}}}
test_split: test
output_type: generate_until
doc_to_text: {text}
{extra}
"""


def _promptfoo(config: str, **files: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / "promptfooconfig.yaml").write_text(config)
        for name, text in files.items():
            (folder / name.replace("_", ".")).write_text(text)
        return folder / "promptfooconfig.yaml"

    return make


def _lmeval(text: str = "q", extra: str = "", doc: str = '{"q": "x", "a": "y"}') -> Callable:
    def make(folder: Path) -> Path:
        target = "" if "doc_to_target" in extra else "\ndoc_to_target: a"
        (folder / "t.yaml").write_text(TASK.format(text=text, extra=extra + target))
        (folder / "d.jsonl").write_text(doc + "\n")
        return folder / "t.yaml"

    return make


def _evals(args: str, samples: bytes = b'{"input": "q", "ideal": "a"}\n') -> Callable:
    def make(folder: Path) -> Path:
        (folder / "e.yaml").write_text(
            f"e:\n  id: e.v0\ne.v0:\n  class: evals.elsuite.basic.match:Match\n  args: {args}\n"
        )
        (folder / "s.jsonl").write_bytes(samples)
        return folder / "e.yaml"

    return make


def _inspect(name: str, text: str) -> Callable:
    def make(folder: Path) -> Path:
        (folder / name).write_text(text)
        return folder / name

    return make


def _fifo(name: str, config: str = "") -> Callable:
    def make(folder: Path) -> Path:
        if config:
            (folder / "promptfooconfig.yaml").write_text(config)
        os.mkfifo(folder / name)
        return folder / "promptfooconfig.yaml"

    return make


def _link(name: str, target: str, config: str) -> Callable:
    def make(folder: Path) -> Path:
        (folder / "promptfooconfig.yaml").write_text(config)
        (folder / name).symlink_to(target)
        return folder / "promptfooconfig.yaml"

    return make


CASES: list[tuple[str, str, Callable[[Path], Path], str]] = [
    # hangs and memory
    ("promptfoo", "alias-bomb", _promptfoo(BOMB + "tests: []\n"), "aliases expand"),
    ("promptfoo", "vars-1e8", _promptfoo(
        "tests:\n  - vars:\n" + "".join(f"      v{i}: [{', '.join('abcdefghij')}]\n"
                                         for i in range(8))), "more than 100000 cases"),
    ("promptfoo", "fifo-config", _fifo("promptfooconfig.yaml"), "not a regular file"),
    ("promptfoo", "fifo-prompt", _fifo("p.txt", "prompts: [file://p.txt]\ntests: []\n"),
     "not a regular file"),
    ("lm-eval", "jinja-loop", _lmeval(
        '"{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"'),
     "took more than"),
    ("lm-eval", "jinja-huge-string", _lmeval("'{{ \"x\" * 3000000000 }}'"), "over 1048576"),
    ("lm-eval", "jinja-huge-list", _lmeval(
        "q", 'doc_to_choice: "{{ [1]*100000000 }}"\ndoc_to_target: 0'), "over 1048576"),
    # tracebacks on malformed input
    ("promptfoo", "deep-nesting", _promptfoo("tests: " + "[" * 100000), "broken YAML"),
    ("promptfoo", "csv-cell-128k", _promptfoo(
        "tests: file://t.csv\n", t_csv="a,__expected\n" + "x" * 200_000 + ",b\n"), "CSV"),
    ("promptfoo", "csv-ragged", _promptfoo(
        "tests: file://t.csv\n", t_csv="a,__expected\n1,2,3\n"), "more cells"),
    ("promptfoo", "csv-duplicate-columns", _promptfoo(
        "tests: file://t.csv\n", t_csv="a,a\n1,2\n"), "appears twice"),
    ("promptfoo", "prompt-folder", _promptfoo("prompts: [file://d.txt]\n"), "d.txt"),
    ("promptfoo", "prompt-dev-zero", _link(
        "p.txt", "/dev/zero", "prompts: [file://p.txt]\ntests: []\n"), "outside"),
    ("promptfoo", "file-outside", _promptfoo("tests: file://../../../etc/passwd.yaml\n"),
     "outside"),
    ("openai-evals", "max-tokens-abc", _evals("{samples_jsonl: s.jsonl, max_tokens: abc}"),
     "max_tokens"),
    ("openai-evals", "max-tokens-1e400", _evals("{samples_jsonl: s.jsonl, max_tokens: 1e400}"),
     "max_tokens"),
    ("openai-evals", "few-shot-lots", _evals(
        "{samples_jsonl: s.jsonl, num_few_shot: lots, few_shot_jsonl: s.jsonl}"), "num_few_shot"),
    ("openai-evals", "args-list", _evals("[1, 2, 3]"), "args must be a mapping"),
    ("openai-evals", "samples-not-utf8", _evals("{samples_jsonl: s.jsonl}", b"\xff\xfe{}\n"),
     "not UTF-8"),
    ("inspect", "json-list-of-numbers", _inspect("s.json", "[1, 2, 3]"), "JSON object"),
    ("inspect", "jsonl-number", _inspect("s.jsonl", "5\n"), "JSON object"),
    ("inspect", "broken-json", _inspect("s.json", '{"input": '), "invalid JSON"),
    ("inspect", "metadata-not-json", _inspect(
        "s.jsonl", '{"input": "q", "target": "a", "metadata": "{nope"}\n'), "metadata"),
    ("inspect", "csv-cell-200k", _inspect("s.csv", "input,target\n" + "x" * 200_000 + ",a\n"),
     "CSV"),
    ("lm-eval", "num-fewshot-lots", _lmeval("q", "num_fewshot: lots"), "num_fewshot"),
    ("lm-eval", "max-gen-toks-abc", _lmeval("q", "generation_kwargs: {max_gen_toks: abc}"),
     "max_gen_toks"),
    ("lm-eval", "temperature-hot", _lmeval("q", "generation_kwargs: {temperature: hot}"),
     "temperature"),
    ("lm-eval", "until-5", _lmeval("q", "generation_kwargs: {until: 5}"), "until"),
    ("lm-eval", "metric-list-5", _lmeval("q", "metric_list: [5]"), "metric_list"),
    ("lm-eval", "filter-without-name", _lmeval(
        "q", "filter_list: [{filter: [{function: take_first}]}]"), "filter_list"),
    ("lm-eval", "filter-list-text", _lmeval("q", 'filter_list: ["abc"]'), "filter_list"),
]  # fmt: skip


@pytest.mark.parametrize(
    "fmt,make,expect", [pytest.param(f, m, e, id=i) for f, i, m, e in CASES]
)  # fmt: skip
def test_hostile_import_is_one_line(
    fmt: str, make: Callable[[Path], Path], expect: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TUNEVAL_TEMPLATE_SECONDS", "1")
    src = tmp_path / "src"
    src.mkdir()
    (src / "d.txt").mkdir()
    source = make(src)
    out = tmp_path / "out"
    extra = ["--scorer", "match"] if fmt == "inspect" else []
    code, _, err = run_cli("suites", "import", fmt, str(source), "--out", str(out), *extra,
                           capsys=capsys)  # fmt: skip
    assert code == 2, err
    assert "Traceback" not in err and expect in err, err
    assert len(err.strip().splitlines()) <= 3, err
    assert not out.exists() and not list(tmp_path.glob(".out.*")), "a partial --out was left"


@pytest.mark.parametrize("out_name", ["dangling", "proc", "X.db"])
def test_out_that_cannot_be_created(
    out_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.import_helpers import SPECIMENS

    out = tmp_path / "gone"
    if out_name == "dangling":
        out.symlink_to(tmp_path / "nowhere")
    elif out_name == "proc":
        out = Path("/proc/self/tuneval-suite")
    else:
        out = tmp_path / out_name
    source = SPECIMENS / "inspect" / "samples.jsonl"
    code, _, err = run_cli("suites", "import", "inspect", str(source), "--out", str(out),
                           "--scorer", "match", capsys=capsys)  # fmt: skip
    assert code == 2 and "Traceback" not in err and str(out) in err, err


def test_interrupted_import_leaves_no_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite is written into a temporary folder and renamed into place: stopped at any point
    before the rename (here: while the written suite is validated), `--out` does not exist, so a
    rerun is not refused as 'already exists'."""
    import harness.suite.loader
    from tests.import_helpers import SPECIMENS

    out = tmp_path / "out"
    seen = []

    def interrupted(folder: Path) -> None:
        seen.append((folder.exists(), out.exists()))
        raise KeyboardInterrupt

    monkeypatch.setattr(harness.suite.loader, "load_suite", interrupted)
    source = SPECIMENS / "inspect" / "samples.jsonl"
    args = ("suites", "import", "inspect", str(source), "--out", str(out), "--scorer", "match")
    run_cli(*args, capsys=capsys)
    assert seen == [(True, False)] and not out.exists() and not list(tmp_path.iterdir())
    monkeypatch.undo()
    code, _, err = run_cli(*args, capsys=capsys)
    assert code == 0 and (out / "suite.yaml").is_file(), err


def test_skip_refused_drops_a_test_whose_checks_were_all_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kept without checks, such a case would pass any answer ("totally wrong" graded better)."""
    import json

    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(
        "tests:\n"
        "  - vars: {q: a}\n    assert: [{type: llm-rubric, value: is kind}]\n"
        "  - vars: {q: b}\n    assert: [{type: equals, value: b}]\n"
    )
    out = tmp_path / "out"
    code, stdout, err = run_cli("suites", "import", "promptfoo", str(config), "--out", str(out),
                                "--skip-refused", "--json", capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert json.loads(stdout)["cases"] == 1
    lines = (out / "test.jsonl").read_text().splitlines()
    assert [json.loads(line)["q"] for line in lines] == ["b"]
