"""One notion of an arm for every page: a model, its prompt variant and its sampling settings.

"smollm2 + few-shot" is its own arm and never stands in for "smollm2": the few-shot run of a loop
is newer than the base run, so anything that keys runs by model name alone, or picks by time,
shows the wrong figure. Defaults pick arms by lineage instead: a candidate against its model's
base, under the same prompt (the base prompt first) and the same sampling settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.suite.prompts import arm as arm_name

# The settings that change what a model answers (dtype and batch size change only how fast).
SAMPLING = ("temperature", "top_p", "max_new_tokens", "seed")
Arm = tuple[str, str, tuple[Any, ...]]  # (model, prompt variant or "", sampling values)


def sampling(run: dict[str, Any]) -> tuple[Any, ...]:
    settings = run.get("settings") or {}
    greedy = not settings.get("temperature")  # greedy: top_p and seed change nothing
    return tuple(None if greedy and k in ("top_p", "seed") else settings.get(k) for k in SAMPLING)


def key(run: dict[str, Any]) -> Arm:
    return (str(run["model"]), run.get("prompt_variant") or "", sampling(run))


def sampling_text(values: tuple[Any, ...]) -> str:
    shown = [f"{k}={v}" for k, v in zip(SAMPLING, values, strict=True) if v is not None]
    return ", ".join(shown)


def label_all(runs: Iterable[dict[str, Any]]) -> None:
    """Set each run's `arm` (its key) and `arm_label`: the model with its prompt variant, and
    its sampling settings only where that model and prompt were run with more than one."""
    runs = list(runs)
    seen: dict[tuple[str, str], set[tuple[Any, ...]]] = {}
    for r in runs:
        r["arm"] = key(r)
        seen.setdefault(r["arm"][:2], set()).add(r["arm"][2])
    for r in runs:
        model, variant, values = r["arm"]
        name = arm_name(model, variant or None)
        if len(seen[(model, variant)]) > 1:
            name += f" ({sampling_text(values)})"
        r["arm_label"] = name


def _checkpoint(r: dict[str, Any]) -> bool:
    """A checkpoint evaluation: its model (`name@step`) was never registered."""
    return bool(r.get("train_run")) and not r.get("registered_kind")


def latest(runs: Iterable[dict[str, Any]]) -> dict[tuple[Arm, str], dict[str, Any]]:
    """(arm, suite) -> the newest complete run of that arm; checkpoint evaluations left out.
    Re-runs of one arm answer the same question, so here the newest is the right one."""
    out: dict[tuple[Arm, str], dict[str, Any]] = {}
    for r in runs:  # newest first
        if r["status"] == "complete" and r["n_results"] and not _checkpoint(r):
            out.setdefault((r["arm"], r["suite"]), r)
    return out


def _lineage_rank(r: dict[str, Any]) -> tuple[bool, bool, bool]:
    """Sort key for "which run is the baseline": a non-candidate, the base prompt, and (among
    candidates) a registered model before a checkpoint."""
    return (bool(r["is_candidate"]), bool(r.get("prompt_variant")), _checkpoint(r))


def order(first: dict[str, Any], second: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(A, B) for two runs by lineage: a model before the model trained from it, a
    non-candidate before a candidate, the base prompt before a variant; older first only when
    lineage says nothing."""
    if second["model"] == first.get("model_base"):
        return second, first
    if first["model"] == second.get("model_base"):
        return first, second
    a, b = sorted((first, second), key=lambda r: (_lineage_rank(r), r["created_at"]))
    return a, b


def default_pair(runs: list[dict[str, Any]], suite: str) -> tuple[str | None, str | None]:
    """(base run, candidate run) to compare first on a suite.

    The candidate is the newest run of a trained model under the base prompt (a registered
    model before a checkpoint evaluation); the base is the newest run of that model's base under
    the same prompt and sampling settings, else of the base under the base prompt, else the
    newest run that is no candidate. Without a candidate: the two newest runs by lineage.
    """
    on_suite = sorted(
        (r for r in runs if r["suite"] == suite and r["n_results"]),
        key=lambda r: r["created_at"],
        reverse=True,
    )
    if not on_suite:
        return None, None
    cands = sorted(
        (r for r in on_suite if r["is_candidate"]),
        key=lambda r: (bool(r.get("prompt_variant")), _checkpoint(r)),
    )  # stable: newest first inside each rank
    if cands:
        cand = cands[0]
        same = [r for r in on_suite if r["arm"] == (cand["model_base"], *cand["arm"][1:])]
        zero_shot = [
            r for r in on_suite if r["model"] == cand["model_base"] and not r.get("prompt_variant")
        ]
        others = sorted(
            (r for r in on_suite if not r["is_candidate"]),
            key=lambda r: bool(r.get("prompt_variant")),
        )
        base = (same or zero_shot or others or [None])[0]
        if base is not None:
            return base["id"], cand["id"]
    if len(on_suite) == 1:
        return on_suite[0]["id"], None
    plain = sorted(on_suite, key=lambda r: bool(r.get("prompt_variant")))  # base prompt first
    a, b = order(plain[0], plain[1])
    return a["id"], b["id"]
