"""Pairwise preference: a judge says which of two runs' answers to the same case is better.

Each pair is asked twice, once with A's answer first and once with B's first. A judge that
prefers whatever it reads first (position bias) contradicts itself across the two orders; such
an order-inconsistent pair counts as a tie, as does a pair with identical answers (not asked) or
a failed verdict. The share `(wins + ties / 2) / n` is B's preference rate, 0.5 meaning none, with
a bootstrap interval over cases; the exact sign test on wins against losses says whether B is
preferred more often than chance would allow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.comparison import stats
from harness.grading.judges import Verdict

CHOICES = ("1", "2")
PROMPT = """\
Two assistants answered the same request. Judge which answer is better: correct first, then
helpful and to the point.

Request:
{request}

Answer 1:
{first}

Answer 2:
{second}

Which answer is better? Answer with exactly one of: 1, 2."""


def request_text(prompt: str) -> str:
    """The user's side of a stored conversation (the `prompt` column holds its messages)."""
    try:
        messages = json.loads(prompt)
        return "\n".join(m["content"] for m in messages if m.get("role") == "user")
    except (ValueError, TypeError, KeyError, AttributeError):
        return str(prompt)


def judge_prompt(request: str, first: str, second: str) -> list[dict[str, str]]:
    text = PROMPT.format(request=request, first=first or "(empty)", second=second or "(empty)")
    return [{"role": "user", "content": text}]


def outcome(a_first: Verdict, b_first: Verdict) -> str:
    """'A', 'B' or 'tie' from the two orders' verdicts."""
    one, two = a_first.choice, b_first.choice
    if one is None or two is None:
        return "tie"
    pick_one = "A" if one == "1" else "B"
    pick_two = "B" if two == "1" else "A"
    return pick_one if pick_one == pick_two else "tie"


@dataclass
class Preference:
    judge: str
    wins: int  # B preferred in both orders
    ties: int
    losses: int  # A preferred in both orders
    inconsistent: int  # pairs whose two orders disagreed (counted in ties)
    share: float  # B's preference rate, ties counted half
    low: float
    high: float
    p_value: float
    cases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses

    def to_json(self) -> dict[str, Any]:
        return {
            "judge": self.judge,
            "n": self.n,
            "wins": self.wins,
            "ties": self.ties,
            "losses": self.losses,
            "inconsistent": self.inconsistent,
            "share": self.share,
            "low": self.low,
            "high": self.high,
            "p_value": self.p_value,
            "cases": self.cases,
        }


def prefer(judge: Any, pairs: Sequence[Any], *, n_boot: int = 2000, seed: int = 0) -> Preference:
    """Ask `judge` (a `harness.grading.judges.Judge`) about every pair
    (`harness.comparison.compare.Pair`)."""
    asked = [p for p in pairs if p.a["output"].strip() != p.b["output"].strip()]
    prompts = []
    for p in asked:
        request = request_text(p.a["prompt"])
        prompts.append(judge_prompt(request, p.a["output"], p.b["output"]))
        prompts.append(judge_prompt(request, p.b["output"], p.a["output"]))
    verdicts = judge.choose(prompts, CHOICES) if prompts else []
    by_case: dict[str, tuple[str, str | None, str | None]] = {}
    for k, p in enumerate(asked):
        v1, v2 = verdicts[2 * k], verdicts[2 * k + 1]
        by_case[p.case_id] = (outcome(v1, v2), v1.choice, v2.choice)
    cases, scores = [], []
    wins = ties = losses = inconsistent = 0
    for p in pairs:
        result, first, second = by_case.get(p.case_id, ("tie", None, None))
        wins += result == "B"
        losses += result == "A"
        ties += result == "tie"
        inconsistent += result == "tie" and first is not None and second is not None
        scores.append({"B": 1.0, "A": 0.0, "tie": 0.5}[result])
        cases.append({"case_id": p.case_id, "preferred": result, "a_first": first,
                      "b_first": second})  # fmt: skip
    share, low, high = stats.bootstrap_mean(scores, n_boot=n_boot, seed=seed)
    p_value = float(stats.sign_test(wins, losses))
    return Preference(
        judge.ref.name, wins, ties, losses, inconsistent, share, low, high, p_value, cases
    )
