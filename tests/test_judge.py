"""The judge: log-likelihood choices on a real (tiny) model, the served parse, the cache, and the
`judge` criterion inside a suite."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import pytest

from harness import criteria
from harness.errors import UserError
from harness.generation.models import ModelRef, resolve
from harness.grading.judges import (
    _JUDGES,
    Judge,
    LocalChooser,
    ServedChooser,
    Verdict,
    choice_probs,
    judge_for,
    parse_choice,
)
from harness.suite.loader import load_suite
from tests.compare_helpers import answers, fake_run
from tests.conftest import SUITE_YAML, write_suite

JUDGED = SUITE_YAML.replace(
    "  better:\n",
    "    - id: judged\n      type: judge\n      model: MODEL\n"
    "      prompt: 'Where is {function}? Expected: {reference}. Answer: {output}. Right?'\n"
    "      reference: '{module}'\n  better:\n",
)


@pytest.fixture
def asked(monkeypatch) -> list[int]:
    """How many prompts each call of a local judge was asked."""
    calls: list[int] = []
    real = LocalChooser.choose

    def spy(self, prompts, choices):
        calls.append(len(prompts))
        return real(self, prompts, choices)

    monkeypatch.setattr(LocalChooser, "choose", spy)
    return calls


@pytest.fixture(autouse=True)
def fresh_judges():
    _JUDGES.clear()
    yield
    _JUDGES.clear()


def test_local_loglikelihoods_match_unpadded_forward(tiny_model_dir: Path, store) -> None:
    """Left padding and the kept last positions give exactly the plain per-sequence sums."""
    import torch

    chooser = LocalChooser(resolve(str(tiny_model_dir), store), "float32")
    chooser._load()
    model, tok = chooser._model, chooser._tok
    contexts = [tok(t)["input_ids"] for t in ("Which module holds dedent?", "Is it json")]
    conts = [tok(t)["input_ids"] for t in (" yes", " no thanks")]
    batched = chooser.loglikelihoods(contexts, conts)
    for c, x, got in zip(contexts, conts, batched, strict=True):
        with torch.inference_mode():
            logp = torch.log_softmax(model(torch.tensor([c + x])).logits[0].float(), -1)
        want = sum(float(logp[len(c) - 1 + k, t]) for k, t in enumerate(x))
        assert got == pytest.approx(want, abs=1e-4)


def test_local_choose_is_a_distribution_over_choices(tiny_model_dir: Path, store) -> None:
    chooser = LocalChooser(resolve(str(tiny_model_dir), store), "float32", batch_size=3)
    prompts = [[{"role": "user", "content": f"Is {m} a module?"}] for m in ("os", "json", "x")]
    verdicts = chooser.choose(prompts, ["yes", "no", "maybe"])
    for v in verdicts:
        assert v.probs is not None and set(v.probs) == {"yes", "no", "maybe"}
        assert sum(v.probs.values()) == pytest.approx(1.0)
    # batching does not change a verdict
    single = LocalChooser(chooser.ref, "float32", batch_size=1).choose(
        prompts[:1], ["yes", "no", "maybe"]
    )
    assert single[0].probs == pytest.approx(verdicts[0].probs)


def test_served_logprobs_and_strict_parse() -> None:
    top = [
        {"token": " Yes", "logprob": -0.2},
        {"token": "yes", "logprob": -2.0},
        {"token": "No", "logprob": -1.5},
        {"token": "Maybe", "logprob": -0.1},  # not a choice
    ]
    probs = choice_probs(top, ["yes", "no"])
    assert probs is not None and probs["yes"] > probs["no"] and sum(probs.values()) == 1.0
    assert choice_probs([{"token": "Hmm", "logprob": 0.0}], ["yes", "no"]) is None
    assert parse_choice(' "Yes." ', ["yes", "no"]) == "yes"
    assert parse_choice("Yes, because it is", ["yes", "no"]) is None


class FakeClient:
    """Answers chat completions from a list of (content, top_logprobs) replies."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.bodies: list[dict] = []

    def post(self, url, json, headers):  # noqa: A002 - httpx's own keyword
        self.bodies.append(json)
        content, top = self.replies.pop(0)
        choice = {"message": {"content": content}}
        if top is not None:
            choice["logprobs"] = {"content": [{"token": content, "top_logprobs": top}]}
        return httpx.Response(200, json={"choices": [choice]}, request=httpx.Request("POST", url))

    @contextlib.contextmanager
    def stream(self, method, url, json, headers, timeout):  # noqa: A002 - httpx's keywords
        yield self.post(url, json, headers)


def test_served_chooser_uses_logprobs_else_parses_strictly() -> None:
    from harness.generation.served import Endpoint, Stats

    ref = ModelRef(
        "remote", "remote", Path("."), "served", "fp", served={"url": "http://x/v1", "model": "m"}
    )
    chooser = ServedChooser(ref)
    ep = Endpoint("http://x/v1", "m")
    msgs = [{"role": "user", "content": "ok?"}]
    client = FakeClient(
        [
            ("no", [{"token": "no", "logprob": -0.1}, {"token": "yes", "logprob": -2.5}]),
            ("Yes.", None),
            ("I think so", None),
        ]
    )
    first = chooser._one(client, ep, Stats(), msgs, ["yes", "no"], 3)
    assert first.choice == "no" and 0.5 < first.probs["no"] < 1.0
    assert client.bodies[0]["logprobs"] is True and client.bodies[0]["temperature"] == 0.0
    assert chooser._one(client, ep, Stats(), msgs, ["yes", "no"], 3).probs == {
        "yes": 1.0,
        "no": 0.0,
    }
    failed = chooser._one(client, ep, Stats(), msgs, ["yes", "no"], 3)
    assert failed.probs is None and "answered 'I think so', not one of yes, no" in failed.error


class CountingChooser:
    def __init__(self) -> None:
        self.asked = 0

    def choose(self, prompts, choices):
        self.asked += len(prompts)
        return [Verdict({c: 1.0 / len(choices) for c in choices}) for _ in prompts]


def test_verdicts_are_cached_by_judge_fingerprint(store) -> None:
    chooser = CountingChooser()
    ref = ModelRef("j", "j", Path("."), "local", "fp-judge")
    judge = Judge(ref, chooser, store, "float32")
    prompts = [[{"role": "user", "content": str(i)}] for i in range(40)]
    first = judge.choose(prompts, ["yes", "no"])
    assert chooser.asked == 40
    assert judge.choose(prompts, ["yes", "no"]) == first and chooser.asked == 40
    judge.choose(prompts, ["no", "yes"])  # other choices: other verdicts
    assert chooser.asked == 80
    other = Judge(ModelRef("k", "k", Path("."), "local", "fp-other"), chooser, store, "float32")
    other.choose(prompts[:1], ["yes", "no"])
    assert chooser.asked == 81
    with pytest.raises(UserError, match="two different choices"):
        judge.choose(prompts, ["yes", "yes"])


def test_suite_with_a_judge_validates_its_own_placeholders(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path / "j", JUDGED.replace("MODEL", "some-judge")))
    assert [c.type for _, c in suite.criteria()][-2] == "judge"
    broken = JUDGED.replace("MODEL", "some-judge").replace("{output}", "{nowhere}")
    with pytest.raises(UserError) as e:
        load_suite(write_suite(tmp_path / "k", broken))
    assert "put {output} in it" in str(e.value)


def test_judge_criterion_grades_caches_and_records_its_choice(
    tmp_path: Path, store, tiny_model_dir: Path, asked: list[int]
) -> None:
    suite_dir = write_suite(tmp_path / "j", JUDGED.replace("MODEL", str(tiny_model_dir)))
    run = fake_run(store, suite_dir, "model-a", answers())
    rows = store.results(run)
    for r in rows:
        c = r["criteria"]["judged"]
        assert c["info"]["judge"] == str(tiny_model_dir) and c["info"]["choice"] in ("yes", "no")
        assert 0.0 <= c["score"] <= 1.0 and c["detail"].startswith("judge: ")
    assert sum(asked) == 6
    # a second model that answers alike: the same judge prompts, all from the cache
    fake_run(store, suite_dir, "model-b", answers())
    assert sum(asked) == 6
    # one changed answer: one new judge prompt
    fake_run(store, suite_dir, "model-c", answers({"a": "textwrap, I think"}))
    assert sum(asked) == 7
    assert judge_for(str(tiny_model_dir), store).store is store


def test_judge_without_output_placeholder_is_refused() -> None:
    with pytest.raises(ValueError, match=r"put \{output\} in it"):
        criteria.get("judge")(model="m", prompt="Is it good?")
    with pytest.raises(ValueError, match="set reference"):
        criteria.get("judge")(model="m", prompt="{output} vs {reference}")


def test_grade_resolves_a_registered_judge_and_caches_its_verdicts(
    tmp_path: Path, tiny_model_dir: Path, asked: list[int], capsys
) -> None:
    """`tuneval grade` grades with the store, as a run does: a judge may be a registered name."""
    import json

    from harness.store import Store
    from tests.conftest import CASES, run_cli

    db = tmp_path / "ws.db"
    with Store(db) as s:
        register(s, "myjudge", tiny_model_dir)
    suite_dir = write_suite(tmp_path / "j", JUDGED.replace("MODEL", "myjudge"))
    outputs = tmp_path / "out.jsonl"
    outputs.write_text("".join(json.dumps({"id": c["id"], "output": c["module"]}) + "\n"
                               for c in CASES))  # fmt: skip
    for name in ("api-1", "api-2"):
        code, out, err = run_cli(
            "grade", str(suite_dir), "--outputs", str(outputs), "--name", name, "--db", str(db),
            "--json", capsys=capsys,
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["n"] == len(CASES)
    assert sum(asked) == len(CASES), "the second grading takes every verdict from the cache"


def register(store, name: str, folder: Path) -> None:
    """A model name pointing at a folder, as `tuneval train` registers its candidates."""
    import time

    store.register_model({
        "name": name, "spec": name, "path": str(folder), "fingerprint": None, "kind": "trained",
        "base": None, "produced_by": None, "info": {}, "created_at": time.time(),
    })  # fmt: skip


def test_the_judge_is_part_of_a_runs_identity(
    tmp_path: Path, store, tiny_model_dir: Path, varied_model_dir: Path
) -> None:
    """Re-pointing a judge name makes another run (never a resumed mix of two judges), and
    compare says the verdicts came from different judges."""
    from harness.comparison.compare import compare_runs

    suite_dir = write_suite(tmp_path / "j", JUDGED.replace("MODEL", "myjudge"))
    register(store, "myjudge", tiny_model_dir)
    first = fake_run(store, suite_dir, "model-a", answers())
    again = fake_run(store, suite_dir, "model-b", answers())
    register(store, "myjudge", varied_model_dir)
    moved = fake_run(store, suite_dir, "model-b", answers())

    judges = [store.run(r)["settings"]["judges"] for r in (first, again, moved)]
    tiny, varied = resolve(str(tiny_model_dir)), resolve(str(varied_model_dir))
    assert judges == [{"judged": tiny.fingerprint}] * 2 + [{"judged": varied.fingerprint}]
    assert store.run(again)["run_key"] != store.run(moved)["run_key"]
    assert not any("judge" in w for w in compare_runs(store, first, again).warnings)
    warned = [w for w in compare_runs(store, first, moved).warnings if "judge" in w]
    assert len(warned) == 1 and "criterion 'judged' was graded by different judges" in warned[0]


def test_human_agreement_counts_only_cases_the_judge_decided() -> None:
    """A judge's pass/fail is compared with the human grade only where it decided the grade."""
    from harness.comparison.agreement import human_agreement

    def row(human: str, judged: bool, other: bool, section: str = "good") -> dict:
        info = {"judge": "j", "choice": "yes" if judged else "no", "probs": {}}
        return {
            "human": human,
            "criteria": {
                "judged": {"section": section, "passed": judged, "info": info},
                "names-module": {"section": "good", "passed": other},
                "bare": {"section": "better", "passed": False},
            },
        }

    rows = [
        row("good", True, True),  # the judge decided: agrees
        row("bad", False, True),  # decided: agrees
        row("bad", True, False),  # names-module failed: the case was bad whatever the judge said
        row("bad", True, False),
    ]
    (good,) = human_agreement(rows)
    assert good["labelled"] == 2 and good["left_out"] == 2 and good["agreement"] == 1.0
    # a better criterion decides only when every other criterion, better ones too, passed
    (better,) = human_agreement([row("better", True, True, "better")])
    assert better["labelled"] == 0 and better["left_out"] == 1 and better["agreement"] is None


def test_a_judge_nested_in_weighted_fills_its_own_placeholders(tmp_path: Path) -> None:
    nested = SUITE_YAML.replace(
        "  better:\n",
        "    - id: checked\n      type: weighted\n      checks:\n        - {type: empty}\n"
        "        - type: judge\n          model: some-judge\n"
        "          prompt: 'Is {output} the module holding {function}? ({reference})'\n"
        "          reference: '{module}'\n  better:\n",
    )
    suite = load_suite(write_suite(tmp_path / "n", nested))
    assert [c.id for _, c in suite.criteria()][-2] == "checked"
    with pytest.raises(UserError, match=r"placeholder \{nowhere\} has no field"):
        load_suite(write_suite(tmp_path / "m", nested.replace("{function}", "{nowhere}")))
