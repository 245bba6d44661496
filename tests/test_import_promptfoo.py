"""promptfoo specimens: every imported check gives promptfoo's verdict on the same output.

The expected verdicts follow promptfoo's source (src/assertions/*.ts, assertionsResult.ts,
evaluator.ts, csv.ts); each row notes the rule it pins.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.import_helpers import SPECIMENS, assert_verdicts, eval_and_compare, import_suite

PF = SPECIMENS / "promptfoo"


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness.importers import ImportOptions, read
    from harness.importers.writer import write

    out = tmp_path_factory.mktemp("pf") / "capitals"
    write(read("promptfoo", PF / "promptfooconfig.yaml", ImportOptions()), out, None, "test")
    return out


VERDICTS = [
    # equals: the whole output, no trimming, case-sensitive
    ("t0001", "Paris", True), ("t0001", " Paris", False), ("t0001", "Paris\n", False),
    ("t0001", "paris", False),
    # contains is case-sensitive; not-contains negates; defaultTest's not-icontains applies
    ("t0002", "Rome", True), ("t0002", "Rome, not Milan", False), ("t0002", "rome", False),
    ("t0002", "As an AI, I say Rome", False),
    # icontains lower-cases (JavaScript toLowerCase): "ß" does not become "ss"
    ("t0003", "Straße", False), ("t0003", "Strasse", True),
    # contains-any splits 'Lima, "Lima, Peru", Cusco'; icontains-all [li, MA]
    ("t0004", "Cusco", False), ("t0004", "LIMA", False), ("t0004", "Lima", True),
    # starts-with does not trim
    ("t0005", " Madrid", False), ("t0005", "Madrid.", True),
    # JavaScript regex: $ is the very end; \d is ASCII only
    ("t0006", "Tokyo 12", True), ("t0006", "Tokyo 12\n", False), ("t0006", "Tokyo ١٢", False),
    # values are rendered with the case's variables ({{city}})
    ("t0007", "Santiago", True), ("t0007", "santiago", False),
    # is-json: JSON.parse of the whole output (white space allowed) and the schema
    ("t0008", '{"city": "Nairobi"}', True), ("t0008", ' {"city":"Nairobi"}\n', True),
    ("t0008", '{"city": "Nai robi"}', False), ("t0008", '{"city": "Nairobi"} ok', False),
    ("t0008", '{"city": "Naïrobi"}', False),  # Ajv's \w is ASCII
    ("t0008", "NaN", False),
    # contains-json: objects found in prose, also YAML-style ones, not a lone brace
    ("t0009", 'The answer: {"city": "Cairo"}.', True), ("t0009", "Cairo", False),
    ("t0009", "{city: Cairo}", True), ("t0009", "no json {", False),
    # equals with an object: parsed JSON, deep strict equality (1 == 1.0, true != 1)
    ("t0010", '{"rank": 1.0, "city": "Havana"}', True),
    ("t0010", '{"city": "Havana", "rank": true}', False),
    ("t0010", '{"city": "Havana", "rank": "1"}', False),
    # weights 2, 1, 0 and threshold 0.6 replace all-must-pass
    ("t0011", "Ottawa", True), ("t0011", "Ontario", False), ("t0011", "Ottawa, Ontario", True),
    # a weight-0 assertion never fails the test
    ("t0012", "N'Djamena", True), ("t0012", "Chad", False),
    # assert-set with threshold 0.5
    ("t0013", "Oslo", True), ("t0013", "Trondheim", False),
    # a string list expands into one test per value
    ("t0014-1", "Vienna, Austria", True), ("t0014-2", "Canberra, Australia", True),
    ("t0014-2", "Austria", False),
    # disableDefaultAsserts drops defaultTest's not-icontains
    ("t0015", "As an AI: Bamako", True),
    # CSV: contains / not-icontains columns
    ("t0016", "Accra", True), ("t0016", "Accra or KUMASI", False),
    # CSV: plain text means equals
    ("t0017", "Suva", True), ("t0017", "Suva.", False),
    # CSV: __threshold 0.5 over three checks (with the default one)
    ("t0018", "Luang Prabang", True), ("t0018", "nothing", False),
    # CSV: values trimmed; __threshold 0 is dropped, so every check must pass
    ("t0019", "Tehran", True), ("t0019", "tehran", False),
    # JSONL and YAML test files
    ("t0020", "HAVANA", True), ("t0021", "Muscat", True), ("t0021", "muscat", False),
    ("t0022", "5", True), ("t0022", "5.0", False),
    # a number variable prints as JavaScript prints it (1.50 -> "1.5")
    ("t0023", "since 1.5", True), ("t0023", "1,5", False),
]  # fmt: skip


def test_verdicts_are_promptfoos(suite: Path) -> None:
    assert_verdicts(suite, VERDICTS)


def test_cases_keep_their_identity(suite: Path) -> None:
    from harness.evaluation.runner import conversation
    from harness.suite.loader import load_suite

    s = load_suite(suite)
    by_id = {c["id"]: c for c in s.cases}
    assert len(s.cases) == 24
    assert by_id["t0001"]["source"]["description"].startswith("equals compares")
    assert by_id["t0016"]["source"]["where"] == "tests.csv:line 2"
    assert by_id["t0016"]["metadata"] == {"suite": "capitals", "region": "africa"}
    assert by_id["t0021"]["metadata"] == {"suite": "capitals", "note": "no description"}
    assert conversation(s, by_id["t0001"]) == [
        {"role": "user", "content": "What is the capital of France? Answer with the city only."}
    ]
    readme = (suite / "README.md").read_text()
    assert "promptfooconfig.yaml" in readme and "sha256" in readme


def test_chat_prompt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.evaluation.runner import conversation
    from harness.suite.loader import load_suite

    import_suite(capsys, "promptfoo", PF / "promptfooconfig.yaml", tmp_path / "c", "--prompt", "1")
    s = load_suite(tmp_path / "c")
    assert conversation(s, s.cases[0]) == [
        {"role": "system", "content": "You name capital cities. {Answer} briefly."},
        {"role": "user", "content": "Capital of France?"},
    ]


def test_refused_checks_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = PF / "refused.yaml"
    code, _, err = run_cli(
        "suites", "import", "promptfoo", str(source), "--out", str(tmp_path / "r"), capsys=capsys
    )
    assert code == 2 and not (tmp_path / "r").exists()
    for expected in (
        "refused.yaml:tests[0]:assert[1]: llm-rubric needs a model",
        "refused.yaml:tests[0]:assert[2]: javascript runs code",
        "refused.yaml:tests[1]:assert[0]: similar needs a model",
        "refused.yaml:tests[1]:assert[1]: contains: 'transform' runs JavaScript",
        "refused.yaml:tests[2]:assert[0]: equals: the value comes from running check.py",
        "refused.yaml:tests[2]:assert[1]: regex /(?i)paris/: JavaScript rejects",
        "tests[3]:assert[0]: is-json",  # unknown schema keyword: Ajv's strict mode
    ):
        assert expected in err, err
    summary = import_suite(capsys, "promptfoo", source, tmp_path / "r", "--skip-refused")
    # tests[1] and tests[2] have every assertion refused: dropped, else they would pass anything
    assert len(summary["refused"]) == 7 and summary["cases"] == 2
    assert summary["mapped"]["contains -> contains"] == 2
    assert "refused" in (tmp_path / "r" / "README.md").read_text()


def test_import_eval_compare(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "e2e"
    import_suite(capsys, "promptfoo", PF / "promptfooconfig.yaml", folder)
    capitals = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid.", "Mali": "Bamako"}

    def answer(prompt: str) -> str:
        return next((city for country, city in capitals.items() if country in prompt), "?")

    result = eval_and_compare(folder, tiny_model_dir, tmp_path / "db.db", answer, capsys)
    assert result["n"] == 24
    assert result["pass_rate"]["b"] > result["pass_rate"]["a"]
    improved = {p["case_id"] for p in result["pairs"] if p["change"] == "improved"}
    assert {"t0001", "t0002", "t0005", "t0015"} <= improved
    json.dumps(result)


@pytest.mark.parametrize(
    ("tests", "expected"),
    [
        ("  - vars: [1, 2]\n    assert: [{type: contains, value: a}]\n",
         "pf.yaml:tests[0]:vars: must be a mapping, not [1, 2]"),
        ("  - vars: {x: a}\n    assert: {type: contains, value: a}\n",
         "pf.yaml:tests[0]:assert: must be a list"),
        ("  - vars: {x: a}\n    threshold: high\n", "pf.yaml:tests[0]:threshold: must be a number"),
    ],
)  # fmt: skip
def test_a_test_of_the_wrong_shape_is_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tests: str, expected: str
) -> None:
    config = tmp_path / "pf.yaml"
    config.write_text('prompts: ["Say {{x}}"]\ntests:\n' + tests)
    code, _, err = run_cli("suites", "import", "promptfoo", str(config), "--out",
                           str(tmp_path / "out"), capsys=capsys)  # fmt: skip
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_broken_tests_file_is_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "pf.yaml"
    config.write_text('prompts: ["Say {{x}}"]\ntests: file://tests.jsonl\n')
    (tmp_path / "tests.jsonl").write_text('{"vars": {"x": "a"}}\n{"vars": \n')
    code, _, err = run_cli("suites", "import", "promptfoo", str(config), "--out",
                           str(tmp_path / "out"), capsys=capsys)  # fmt: skip
    assert code == 2 and "tests.jsonl:line 2: cannot parse" in err and "Traceback" not in err
