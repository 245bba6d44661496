"""What an answer costs, beside how good it is: mean prompt tokens, generated tokens and seconds
per case for both sides of a comparison, and B's cost as a share of A's with an interval.

Prompt tokens are counted by the model's tokenizer with its chat template (a served model: the
usage its endpoint reports); generated tokens include the end-of-sequence token; seconds are each
answer's share of its batch's decoding time, so compare runs made on the same machine and engine:
between runs on different engines (a served model's seconds are request latency under concurrency,
vLLM's its own scheduler's) the seconds are shown but not divided.
A cached answer keeps the figures of the generation it came from. Cases without a figure on either
side (lm-eval tasks, runs stored before these figures existed) are left out of that line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.comparison import stats

FIGURES = {
    "prompt_tokens": "prompt tokens",
    "output_tokens": "generated tokens",
    "seconds": "seconds",
}


@dataclass
class CostLine:
    figure: str  # a key of FIGURES
    n: int  # paired cases with the figure on both sides
    a: float  # mean per case
    b: float
    ratio: float | None  # mean(b) / mean(a); None when A's mean is 0
    low: float | None  # paired bootstrap 95% interval of the ratio
    high: float | None
    apart: str = ""  # why the ratio is not given although both sides have the figure

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))

    @property
    def label(self) -> str:
        return FIGURES[self.figure]


def cost_lines(
    rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]], *, n_boot: int = 2000,
    seed: int = 0, engines_differ: bool = False,
) -> list[CostLine]:  # fmt: skip
    """One line per figure over the paired rows (rows_a[i] pairs with rows_b[i]). When the two
    runs ran on different engines the seconds line has no ratio: its seconds mean different
    things (token counts still compare)."""
    lines = []
    for figure in FIGURES:
        both = [
            (float(x[figure]), float(y[figure]))
            for x, y in zip(rows_a, rows_b, strict=True)
            if x.get(figure) is not None and y.get(figure) is not None
        ]
        if not both:
            continue
        a, b = [x for x, _ in both], [y for _, y in both]
        mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
        if figure == "seconds" and engines_differ:
            lines.append(CostLine(figure, len(both), mean_a, mean_b, None, None, None, ENGINES))
            continue
        ratio = stats.ratio_bootstrap(a, b, n_boot=n_boot, seed=seed)
        r, low, high = ratio if ratio is not None else (None, None, None)
        lines.append(CostLine(figure, len(both), mean_a, mean_b, r, low, high))
    return lines


def amount(line: CostLine, value: float) -> str:
    return f"{value:.3g}" if line.figure == "seconds" else f"{value:.1f}"


ENGINES = "engines differ"


def ratio_cells(line: CostLine) -> tuple[str, str]:
    """The B / A cell and its interval: ('0.31x', '[0.29, 0.33]'); ('not divided', 'engines
    differ') for seconds from different engines; ('—', '—') when A's figure is 0."""
    if line.apart:
        return "not divided", line.apart
    if line.ratio is None or line.low is None or line.high is None:
        return "—", "—"
    return f"{line.ratio:.2f}x", f"[{line.low:.2f}, {line.high:.2f}]"


def ratio_text(line: CostLine) -> str:
    """'0.31x [0.29, 0.33]', 'not divided: engines differ', or '—' when A's figure is 0."""
    ratio, ci = ratio_cells(line)
    if line.apart:
        return f"{ratio}: {ci}"
    return ratio if ci == "—" else f"{ratio} {ci}"


def summary(lines: Sequence[CostLine], a: str = "A", b: str = "B") -> str:
    """One sentence: 'B spends 0.31x the prompt tokens, 1.05x the generated tokens, ... per case
    of A'; empty when no figure has a ratio."""
    parts = [f"{x.ratio:.2f}x the {x.label}" for x in lines if x.ratio is not None]
    return f"{b} spends " + ", ".join(parts) + f" per case of {a}" if parts else ""


def engine_of(run: Mapping[str, Any]) -> str | None:
    """The engine that answered a run's cases (pool, static, hf, served, vllm; `cache` when the
    cache held every answer), None for a run stored before tuneval noted it."""
    engine = (run.get("settings") or {}).get("engine")
    return str(engine) if engine else None


def engine_caveat(run_a: dict[str, Any], run_b: dict[str, Any]) -> str:
    """Why the seconds of two runs do not compare: a sentence when their engines (and dtype)
    differ, else empty. Token counts still compare. Where either run does not name the engine
    that answered it (stored before tuneval noted it, or all from the cache), its backend
    stands in."""
    known = all(engine_of(r) not in (None, "cache") for r in (run_a, run_b))  # dispatch.CACHE
    keys = ("engine" if known else "backend", "dtype")

    def engine(run: dict[str, Any]) -> str:
        settings = run.get("settings") or {}
        return " ".join(str(settings[k]) for k in keys if settings.get(k))

    a, b = engine(run_a), engine(run_b)
    if a == b:
        return ""
    return (
        f"A and B ran on different engines ({a or 'not recorded'} vs {b or 'not recorded'}): "
        "their seconds do not compare, their token counts do"
    )
