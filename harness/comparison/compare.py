"""Paired comparison of two runs on one suite: transitions, deltas with intervals, tests, verdict.

Cases are paired by id. A case *passes* when its grade is good or better.

The verdict rule, at significance level alpha (default 0.05):

1. The exact McNemar test on pass/fail decides. If p < alpha the verdict is `improved` when more
   cases went fail -> pass than pass -> fail (b01 > b10), else `regressed`.
2. Otherwise, if no case changed grade at all, the verdict is `no significant change`: the sample
   shows no change, whatever its size; the MDE beside it says how large a change the sample could
   have missed.
3. Otherwise, if the minimum detectable effect (MDE: the smallest pass-rate change the exact
   McNemar test would find with 80% power at this n, alpha and observed churn, see
   `harness.comparison.stats.mde`) is larger than a meaningful effect (default 10 points), the
   verdict is `insufficient evidence`: cases moved, and too few of them to tell a real change from
   noise.
4. Otherwise `no significant change`.

The sign test on ordinal grades (which also sees good <-> better moves) is reported and, when it
is significant while McNemar is not, named in the explanation, but it does not change the verdict:
one pre-chosen test keeps the false-alarm rate at alpha. Over simulated A/A comparisons at
alpha=0.05 (n=300-1000, 30-60% of cases re-drawn), calling a change when either test is significant
raised false alarms to 5.5-6.7%; a Holm correction over both fell to 2.8-3.4% and lost power
against pass-rate drops; McNemar alone gave 3.6-4.3% (exact tests are conservative, never above
alpha). Grade-only regressions are what the gate's `--max-regressed` is for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.comparison import stats
from harness.comparison.cost import CostLine, cost_lines, engine_caveat
from harness.comparison.rates import compare_rates, has_samples, sample_fields
from harness.errors import Problem, UserError
from harness.grading.grader import GRADES, RANK

MEANINGFUL = 0.10  # a pass-rate change smaller than this is not worth a finetuning decision


def passed(grade: str) -> bool:
    return grade != "bad"


@dataclass
class Delta:
    a: float
    b: float
    delta: float
    low: float
    high: float

    def to_json(self) -> dict[str, float]:
        return dict(vars(self))


@dataclass
class Pair:
    case_id: str
    a: dict[str, Any]
    b: dict[str, Any]
    change: str  # improved | regressed | unchanged (by grade)

    def to_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "change": self.change,
            "grade_a": self.a["grade"],
            "grade_b": self.b["grade"],
            "output_a": self.a["output"],
            "output_b": self.b["output"],
            "failed_a": failed_checks(self.a),
            "failed_b": failed_checks(self.b),
            **sample_fields(self),
        }


@dataclass
class Comparison:
    run_a: dict[str, Any]
    run_b: dict[str, Any]
    pairs: list[Pair]
    transitions: dict[str, dict[str, int]]
    pass_rate: Delta
    better_rate: Delta
    criteria: dict[str, Delta]
    mcnemar: dict[str, Any]
    sign_test: dict[str, Any]
    verdict: str
    mde: float
    must_pass_broken: list[str]
    unpaired: dict[str, list[str]]
    alpha: float = 0.05
    power: float = stats.POWER
    meaningful: float = MEANINGFUL
    explanation: str = ""
    sections: dict[str, str] = field(default_factory=dict)  # criterion id -> bad | good | better
    warnings: list[str] = field(default_factory=list)
    preference: dict[str, Any] | None = None  # a judge's pairwise preference, when asked
    cost: list[CostLine] = field(default_factory=list)  # per-case cost of each side
    sampling: dict[str, Any] | None = None  # k samples per case: see harness.comparison.rates

    @property
    def n(self) -> int:
        return len(self.pairs)

    def changed(self, change: str) -> list[Pair]:
        return [p for p in self.pairs if p.change == change]

    def mde_text(self) -> str:
        if math.isinf(self.mde):
            return f"at n={self.n} no pass-rate change is detectable at alpha={self.alpha:g}"
        return (
            f"smallest detectable pass-rate change at n={self.n}: {self.mde * 100:.1f} points "
            f"({self.power:.0%} power, alpha={self.alpha:g})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "n": self.n,
            "verdict": self.verdict,
            "explanation": self.explanation,
            "alpha": self.alpha,
            "mde": None if math.isinf(self.mde) else self.mde,
            "mde_power": self.power,
            "meaningful_effect": self.meaningful,
            "pass_rate": self.pass_rate.to_json(),
            "better_rate": self.better_rate.to_json(),
            "criteria": {k: v.to_json() for k, v in self.criteria.items()},
            "sections": self.sections,
            "transitions": self.transitions,
            "mcnemar": self.mcnemar,
            "sign_test": self.sign_test,
            "counts": {c: len(self.changed(c)) for c in ("improved", "regressed", "unchanged")},
            "must_pass_broken": self.must_pass_broken,
            "unpaired": self.unpaired,
            "warnings": self.warnings,
            "cost": {line.figure: line.to_json() for line in self.cost},
            "pairs": [p.to_json() for p in self.pairs],
            **({"preference": self.preference} if self.preference is not None else {}),
            **({"sampling": self.sampling} if self.sampling is not None else {}),
        }


def failed_checks(row: dict[str, Any]) -> list[str]:
    """'criterion: detail' for each criterion that did not pass (a fired detector, a miss)."""
    return [
        f"{cid}: {c.get('detail', '')}" for cid, c in row["criteria"].items() if not c["passed"]
    ]


# --- finding runs ------------------------------------------------------------------------------


def resolve_run(store: Any, ref: str, suite: str | None = None, prompt: str | None = None) -> str:
    """A run id (or a unique prefix of one), or a model name -> its latest complete run with the
    given prompt variant (None or '': the base prompt). A run id must have that variant when one
    is given."""
    run_id = _run_id(store, ref)
    if run_id is not None:
        variant = store.run(run_id)["prompt_variant"]
        if prompt is not None and variant != prompt:
            raise UserError(
                f"run {run_id} used {_prompt_name(variant)}, not {_prompt_name(prompt)}"
            )
        return run_id
    complete = [r for r in store.runs(suite, ref) if r["status"] == "complete"]
    runs = [r for r in complete if r["prompt_variant"] == (prompt or "")]
    if not runs:
        where = f" on suite '{suite}'" if suite else ""
        if complete:  # the model has runs, with other prompts
            others = ", ".join(sorted({_prompt_name(r["prompt_variant"]) for r in complete}))
            raise UserError(
                f"model '{ref}' has no complete run{where} with {_prompt_name(prompt or '')} "
                f"(it has runs with: {others})"
            )
        raise UserError(
            f"'{ref}' is neither a run id nor a model with a complete run{where} "
            "(see `tuneval runs list`)"
        )
    suites = sorted({r["suite"] for r in runs})
    if suite is None and len(suites) > 1:
        raise UserError(
            f"model '{ref}' has runs on several suites ({', '.join(suites)}): pass --suite"
        )
    return str(runs[-1]["id"])


def _run_id(store: Any, ref: str) -> str | None:
    """A run id, or the one run whose id starts with ref."""
    if store.run(ref):
        return ref
    if len(ref) >= 6:
        ids = store.run_ids_starting(ref)
        if len(ids) == 1:
            return str(ids[0])
        if len(ids) > 1:
            raise UserError(f"'{ref}' matches {len(ids)} runs; give more of the run id")
    return None


def _prompt_name(variant: str) -> str:
    return f"prompt variant '{variant}'" if variant else "the base prompt"


def suite_changes(run_a: dict[str, Any], run_b: dict[str, Any]) -> list[str]:
    """What differs between the suites two runs were evaluated on, one line per difference."""
    if run_a["suite_fingerprint"] == run_b["suite_fingerprint"]:
        return []
    lines = []
    if run_a["suite"] != run_b["suite"]:
        lines.append(f"suite name '{run_a['suite']}' -> '{run_b['suite']}'")
    if run_a["suite_version"] != run_b["suite_version"]:
        lines.append(f"suite version {run_a['suite_version']} -> {run_b['suite_version']}")
    files_a, files_b = run_a["suite_files"], run_b["suite_files"]
    for name in sorted(set(files_a) | set(files_b)):
        if name not in files_b:
            lines.append(f"{name} only in run A's suite")
        elif name not in files_a:
            lines.append(f"{name} only in run B's suite")
        elif files_a[name] != files_b[name]:
            lines.append(f"{name} changed")
    return lines or ["suite fingerprints differ"]


def must_pass_ids(rows: list[dict[str, Any]]) -> set[str]:
    """Case ids marked must_pass when their run evaluated them (the store records the flag)."""
    return {str(r["case_id"]) for r in rows if r.get("must_pass")}


# --- comparing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How a comparison decides: significance level, bootstrap, the smallest change that
    matters."""

    alpha: float = 0.05
    n_boot: int = 2000
    seed: int = 0
    meaningful: float = MEANINGFUL


def compare_runs(
    store: Any, run_a: str, run_b: str, *, force: bool = False, alpha: float = 0.05
) -> Comparison:
    """Pair two stored runs case by case; reads nothing but the store."""
    if not 0.0 < alpha < 1.0:
        raise UserError(f"alpha must be between 0 and 1, got {alpha}")
    info_a, info_b = store.run(run_a), store.run(run_b)
    missing = [r for r, info in ((run_a, info_a), (run_b, info_b)) if info is None]
    if missing:
        raise UserError([Problem("", "", f"no run '{r}' in {store.path}") for r in missing])
    assert info_a is not None and info_b is not None
    changes = suite_changes(info_a, info_b)
    warnings = []
    if changes and not force:
        head = (
            f"runs were evaluated on different suites ({info_a['suite']} v{info_a['suite_version']}"
            f" -> {info_b['suite']} v{info_b['suite_version']}); pass --force to compare anyway"
        )
        raise UserError([Problem("", "", head)] + [Problem("", "", f"  {c}") for c in changes])
    if changes:
        warnings.append("different suites, compared with --force: " + "; ".join(changes))
    for info in (info_a, info_b):
        if info["status"] != "complete":
            warnings.append(f"run {info['id']} is {info['status']}: only its finished cases count")
        if info["settings"].get("must_pass") != "recorded":
            warnings.append(
                f"run {info['id']} was stored before tuneval recorded must_pass flags: "
                "its must-pass cases are not checked"
            )
        if info.get("model_kind") == "served":
            warnings.append(
                f"run {info['id']}: model '{info['model']}' is served by an endpoint; its "
                "fingerprint (served id and revision) is not verified"
            )
    warnings += judge_changes(info_a, info_b)
    rows_a, rows_b = store.results(run_a), store.results(run_b)
    return compare_rows(info_a, info_b, rows_a, rows_b, Settings(alpha=alpha), warnings)


def judge_changes(run_a: dict[str, Any], run_b: dict[str, Any]) -> list[str]:
    """A warning per judge criterion whose two runs were graded by different judge models (or
    one run does not record its judge: stored before tuneval recorded them)."""
    judges_a = run_a["settings"].get("judges") or {}
    judges_b = run_b["settings"].get("judges") or {}
    return [
        f"criterion '{cid}' was graded by different judges in the two runs "
        f"({judges_a.get(cid, 'not recorded')[:12]} -> {judges_b.get(cid, 'not recorded')[:12]}): "
        "its verdicts are not comparable"
        for cid in sorted(set(judges_a) | set(judges_b))
        if judges_a.get(cid) != judges_b.get(cid)
    ]


def pair_rows(
    run_a: dict[str, Any],
    run_b: dict[str, Any],
    rows_a: list[dict[str, Any]],
    rows_b: list[dict[str, Any]],
) -> tuple[list[Pair], dict[str, list[str]]]:
    """The cases both runs hold, paired in run A's order, and the ids only one of them holds."""
    by_b = {r["case_id"]: r for r in rows_b}
    ids_a = {r["case_id"] for r in rows_a}
    pairs = [_pair(r, by_b[r["case_id"]]) for r in rows_a if r["case_id"] in by_b]
    unpaired = {
        "only_a": [r["case_id"] for r in rows_a if r["case_id"] not in by_b],
        "only_b": [r["case_id"] for r in rows_b if r["case_id"] not in ids_a],
    }
    if not pairs:
        raise UserError(f"runs {run_a['id']} and {run_b['id']} have no case in common to compare")
    return pairs, unpaired


def compare_rows(
    run_a: dict[str, Any],
    run_b: dict[str, Any],
    rows_a: list[dict[str, Any]],
    rows_b: list[dict[str, Any]],
    settings: Settings = Settings(),  # noqa: B008 - frozen
    warnings: list[str] | None = None,
) -> Comparison:
    """The comparison itself, from result rows: no store, so it is easy to test and simulate.
    A case is must-pass when its row in run A says so."""
    warnings = list(warnings or [])
    alpha, meaningful = settings.alpha, settings.meaningful
    must_pass = must_pass_ids(rows_a) | must_pass_ids(rows_b)
    pairs, unpaired = pair_rows(run_a, run_b, rows_a, rows_b)
    for cid in sorted(must_pass & set(unpaired["only_a"])):
        warnings.append(f"must-pass case '{cid}' is missing from run B")

    rates = None
    if has_samples(pairs):  # k samples per case: decide on pass shares (harness.comparison.rates)
        boot0 = {"n_boot": settings.n_boot, "seed": settings.seed}
        rates = compare_rates(pairs, must_pass, alpha=alpha, meaningful=meaningful, boot=boot0)
        for p, change in zip(pairs, rates.changes, strict=True):
            p.change = change
    transitions = {g: {h: 0 for h in GRADES} for g in GRADES}
    for p in pairs:
        transitions[p.a["grade"]][p.b["grade"]] += 1
    pa = [passed(p.a["grade"]) for p in pairs]
    pb = [passed(p.b["grade"]) for p in pairs]
    b01 = sum(1 for x, y in zip(pa, pb, strict=True) if not x and y)
    b10 = sum(1 for x, y in zip(pa, pb, strict=True) if x and not y)
    n_up = sum(1 for p in pairs if p.change == "improved")
    n_down = sum(1 for p in pairs if p.change == "regressed")
    boot = {"n_boot": settings.n_boot, "seed": settings.seed}
    pass_rate = _delta(pa, pb, boot)
    better_rate = _delta(
        [p.a["grade"] == "better" for p in pairs], [p.b["grade"] == "better" for p in pairs], boot
    )
    criteria, sections = _criteria_deltas(pairs, boot)
    apart = bool(engine_caveat(run_a, run_b))  # seconds of different engines: not divided
    cost = cost_lines([p.a for p in pairs], [p.b for p in pairs], **boot, engines_differ=apart)
    p_mc = float(stats.mcnemar(b01, b10))
    p_sign = float(stats.sign_test(n_up, n_down))
    n = len(pairs)
    mde = stats.mde(n, (b01 + b10) / n, alpha)
    verdict, explanation = decide(
        p_mc, p_sign, b01, b10, n_up, n_down, mde, alpha=alpha, meaningful=meaningful
    )
    broken = [
        p.case_id
        for p in pairs
        if p.case_id in must_pass and passed(p.a["grade"]) and not passed(p.b["grade"])
    ]
    if rates is not None:
        pass_rate = Delta(*rates.pass_share)
        verdict, explanation, mde = rates.verdict, rates.explanation, rates.mde
        broken = rates.must_pass_broken
    return Comparison(
        run_a=run_a,
        run_b=run_b,
        pairs=pairs,
        transitions=transitions,
        pass_rate=pass_rate,
        better_rate=better_rate,
        criteria=criteria,
        mcnemar={"b01": b01, "b10": b10, "p_value": p_mc},
        sign_test={"improved": n_up, "regressed": n_down, "p_value": p_sign},
        verdict=verdict,
        mde=mde,
        must_pass_broken=broken,
        unpaired=unpaired,
        alpha=alpha,
        meaningful=meaningful,
        explanation=explanation,
        sections=sections,
        warnings=warnings,
        cost=cost,
        sampling=rates.to_json() if rates is not None else None,
    )


def decide(
    p_mcnemar: float,
    p_sign: float,
    b01: int,
    b10: int,
    improved: int,
    regressed: int,
    mde: float,
    *,
    alpha: float = 0.05,
    meaningful: float = MEANINGFUL,
) -> tuple[str, str]:
    """(verdict, one-sentence explanation), by the rule in the module docstring."""
    counts = f"{b01} fail→pass, {b10} pass→fail"
    if p_mcnemar < alpha:
        word = "improved" if b01 > b10 else "regressed"
        return word, f"pass rate {word}: {counts}, McNemar p={p_mcnemar:.3g} < {alpha:g}"
    if improved == 0 and regressed == 0:
        return "no significant change", "no case changed grade"
    grades = ""
    if p_sign < alpha:
        way = "up" if improved > regressed else "down"
        grades = (
            f"; but grades moved {way} ({improved} up, {regressed} down, sign test "
            f"p={p_sign:.3g}): see the better rate"
        )
    if mde > meaningful:
        return "insufficient evidence", (
            f"{counts} (McNemar p={p_mcnemar:.3g}); this sample cannot detect a "
            f"{meaningful * 100:.0f}-point pass-rate change{grades}"
        )
    return "no significant change", f"{counts}, McNemar p={p_mcnemar:.3g}{grades}"


def _pair(a: dict[str, Any], b: dict[str, Any]) -> Pair:
    ra, rb = RANK[a["grade"]], RANK[b["grade"]]
    change = "improved" if rb > ra else "regressed" if rb < ra else "unchanged"
    return Pair(a["case_id"], a, b, change)


def _delta(a: list[bool], b: list[bool], boot: dict[str, int]) -> Delta:
    delta, low, high = stats.paired_bootstrap(a, b, **boot)
    return Delta(sum(a) / len(a), sum(b) / len(b), delta, low, high)


def _criteria_deltas(
    pairs: list[Pair], boot: dict[str, int]
) -> tuple[dict[str, Delta], dict[str, str]]:
    """Per-criterion pass-rate deltas over the cases where both runs scored that criterion."""
    ids: list[str] = []
    sections: dict[str, str] = {}
    for p in pairs:
        for cid, c in p.a["criteria"].items():
            if cid not in sections:
                ids.append(cid)
                sections[cid] = c.get("section", "good")
    out = {}
    for cid in ids:
        both = [p for p in pairs if cid in p.a["criteria"] and cid in p.b["criteria"]]
        if both:
            a = [bool(p.a["criteria"][cid]["passed"]) for p in both]
            b = [bool(p.b["criteria"][cid]["passed"]) for p in both]
            out[cid] = _delta(a, b, boot)
    return out, {k: sections[k] for k in out}


def gate_failures(c: Comparison, max_regressed: int | None = None) -> list[str]:
    """Why B may not replace A, one reason per line; empty when the gate passes."""
    reasons = []
    if c.verdict == "regressed":
        reasons.append(f"significant regression: {c.explanation}")
    if c.must_pass_broken:
        reasons.append("must-pass cases stopped passing: " + ", ".join(c.must_pass_broken))
    n_down = len(c.changed("regressed"))
    if max_regressed is not None and n_down > max_regressed:
        reasons.append(f"{n_down} cases dropped a grade (--max-regressed {max_regressed})")
    return reasons
