"""The curve of one training run: every evaluated checkpoint against the base, case by case.

A training run's checkpoint evaluations (`train --eval-checkpoints`, the Trainer callback, a
checkpoint sweep) are runs with `train_run` and `step` set. The base is the run at step 0 when
the run holds one (the callback and the sweep evaluate it first), else the newest complete run
of the training run's base model on the same suite. Each point carries its pass and better rate
with Wilson intervals and the paired comparison with the base (the same `compare_rows` that
`tuneval compare` uses); the best step is the one with the highest pass rate (better rate, then
the earlier step, break ties). Per-case trajectories say which cases fell below their base
grade, at which step they first did, and which flip between pass and fail along the way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from harness.comparison.compare import Comparison, Settings, compare_rows, passed
from harness.errors import UserError
from harness.grading.grader import RANK

if TYPE_CHECKING:
    from rich.console import Console

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (0..1 when n is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Point:
    step: int
    run_id: str
    model: str
    n: int
    pass_rate: float
    pass_interval: tuple[float, float]
    better_rate: float
    better_interval: tuple[float, float]
    vs_base: Comparison | None = None

    def to_json(self) -> dict[str, Any]:
        c = self.vs_base
        return {
            "step": self.step,
            "run_id": self.run_id,
            "model": self.model,
            "n": self.n,
            "pass_rate": self.pass_rate,
            "pass_interval": list(self.pass_interval),
            "better_rate": self.better_rate,
            "better_interval": list(self.better_interval),
            "vs_base": None
            if c is None
            else {
                "pass_rate": c.pass_rate.to_json(),
                "better_rate": c.better_rate.to_json(),
                "verdict": c.verdict,
                "mde": None if math.isinf(c.mde) else c.mde,
                "regressed": len(c.changed("regressed")),
                "improved": len(c.changed("improved")),
            },
        }


@dataclass
class Trajectory:
    case_id: str
    base: str | None  # the base grade
    grades: list[str | None]  # one per point, None where the point lacks the case
    first_regressed: int | None  # the first step graded below the base
    flips: int  # pass/fail changes along base -> steps

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class Curve:
    train_run: dict[str, Any]
    base: Point | None
    points: list[Point]
    trajectories: list[Trajectory] = field(default_factory=list)

    @property
    def best(self) -> Point | None:
        if not self.points:
            return None
        return max(self.points, key=lambda p: (p.pass_rate, p.better_rate, -p.step))

    def regressed(self) -> list[Trajectory]:
        return [t for t in self.trajectories if t.first_regressed is not None]

    def flipping(self) -> list[Trajectory]:
        return [t for t in self.trajectories if t.flips >= 2]

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {
            "train_run": self.train_run["id"],
            "suite": self.train_run["suite"],
            "base": None if self.base is None else self.base.to_json(),
            "points": [p.to_json() for p in self.points],
            "best_step": None if best is None else best.step,
            "best": None if best is None else best.to_json(),
            "regressed": [t.to_json() for t in self.regressed()],
            "flipping": [t.to_json() for t in self.flipping()],
        }


def point(run: dict[str, Any], rows: list[dict[str, Any]]) -> Point:
    n = len(rows)
    k_pass = sum(1 for r in rows if passed(r["grade"]))
    k_better = sum(1 for r in rows if r["grade"] == "better")
    return Point(
        int(run["step"] or 0), run["id"], run["model"], n,
        k_pass / n if n else 0.0, wilson(k_pass, n),
        k_better / n if n else 0.0, wilson(k_better, n),
    )  # fmt: skip


def newest_train_run(store: Any) -> str:
    runs = store.train_runs()
    if not runs:
        raise UserError(f"no training runs in {store.path}")
    return str(runs[0]["id"])


def find_train_run(store: Any, ref: str | None) -> str:
    """A training run by id, by the output folder it trained into, or the newest one."""
    if ref is None:
        return newest_train_run(store)
    if store.train_run(ref) is not None:
        return ref
    from pathlib import Path

    folder = str(Path(ref).expanduser().resolve())
    for t in store.train_runs():
        if t["output_dir"] and str(Path(t["output_dir"]).resolve()) == folder:
            return str(t["id"])
    raise UserError(f"no training run '{ref}' in {store.path} (an id, or its output folder)")


def _base_run(store: Any, train: dict[str, Any], checkpoints: list[dict[str, Any]]) -> Any:
    at_zero = [r for r in checkpoints if (r["step"] or 0) == 0]
    if at_zero:
        return at_zero[-1]
    if not checkpoints:
        return None
    fingerprint = checkpoints[0]["suite_fingerprint"]
    for r in reversed(store.runs(suite=train["suite"], model=train["base"])):  # newest first
        done = r["status"] == "complete" and not r.get("train_run")
        if done and r["suite_fingerprint"] == fingerprint:
            return r
    return None


def build_curve(store: Any, train_run: str, alpha: float = 0.05) -> Curve:
    train = store.train_run(train_run)
    if train is None:
        raise UserError(f"no training run '{train_run}' in {store.path}")
    runs = [r for r in store.checkpoint_runs(train_run) if r["status"] == "complete"]
    by_step: dict[int, dict[str, Any]] = {}
    for r in runs:  # oldest first: a later evaluation of a step replaces an earlier one
        by_step[int(r["step"] or 0)] = r
    base_run = _base_run(store, train, runs)
    base_rows = store.results(base_run["id"]) if base_run else []
    base = point({**base_run, "step": 0}, base_rows) if base_run else None
    points: list[Point] = []
    rows_by_step: dict[int, list[dict[str, Any]]] = {}
    settings = Settings(alpha=alpha)
    for step in sorted(s for s in by_step if s > 0):
        run = by_step[step]
        rows = store.results(run["id"])
        rows_by_step[step] = rows
        p = point(run, rows)
        if base_run is not None:
            p.vs_base = compare_rows(base_run, run, base_rows, rows, settings, [])
        points.append(p)
    return Curve(train, base, points, trajectories(base_rows, points, rows_by_step))


def trajectories(
    base_rows: list[dict[str, Any]], points: list[Point], rows_by_step: dict[int, list[Any]]
) -> list[Trajectory]:
    base = {r["case_id"]: r["grade"] for r in base_rows}
    graded = [{r["case_id"]: r["grade"] for r in rows_by_step[p.step]} for p in points]
    order: dict[str, None] = dict.fromkeys(base)
    for g in graded:
        order.update(dict.fromkeys(g))
    out = []
    for cid in order:
        grades = [g.get(cid) for g in graded]
        first = None
        if cid in base:
            first = next(
                (
                    p.step
                    for p, g in zip(points, grades, strict=True)
                    if g is not None and RANK[g] < RANK[base[cid]]
                ),
                None,
            )
        seen = [passed(g) for g in [base.get(cid), *grades] if g is not None]
        flips = sum(1 for a, b in zip(seen, seen[1:], strict=False) if a != b)
        out.append(Trajectory(cid, base.get(cid), grades, first, flips))
    return out


# --- as the terminal shows it (tuneval curve, the axolotl plugin's last word) ---------------

SHOWN = 10  # cases listed per list in the terminal; --json lists them all


def _rate(rate: float, interval: tuple[float, float]) -> str:
    return f"{rate:.1%} [{interval[0]:.0%}, {interval[1]:.0%}]"


def _delta(p: Point) -> str:
    c = p.vs_base
    if c is None:
        return "—"
    d = c.pass_rate
    return f"{d.delta * 100:+.1f} [{d.low * 100:+.1f}, {d.high * 100:+.1f}]"


def print_curve(curve: Curve, out: Console) -> None:
    """The curve as `tuneval curve` prints it: a table per step, the best step against the base,
    and the cases that regressed or flip."""
    t = curve.train_run
    table = Table(title=f"{t['suite']} · training run {t['id']} · {t['output_dir']}")
    for col in ("step", "pass rate [95%]", "better rate [95%]", "Δ pass vs base (pts)", "verdict"):
        table.add_column(col, justify="left" if col == "verdict" else "right")
    if curve.base is not None:
        b = curve.base
        table.add_row(
            "base", _rate(b.pass_rate, b.pass_interval), _rate(b.better_rate, b.better_interval),
            "", escape(b.model),
        )  # fmt: skip
    best = curve.best
    for p in curve.points:
        mark = " ★" if best is not None and p.step == best.step else ""
        table.add_row(
            f"{p.step}{mark}", _rate(p.pass_rate, p.pass_interval),
            _rate(p.better_rate, p.better_interval), _delta(p),
            p.vs_base.verdict if p.vs_base else "",
        )  # fmt: skip
    out.print(table)
    if best is None:
        out.print("no checkpoint evaluated yet")
        return
    line = f"best step [bold]{best.step}[/bold]: pass rate {best.pass_rate:.1%}"
    if best.vs_base is not None:
        line += f", {_delta(best)} points vs base ({best.vs_base.verdict}); "
        line += best.vs_base.mde_text()
    else:
        line += " (no base run to pair with: pass --base for full checkpoints)"
    out.print(line)
    out.print(f"compare it: tuneval compare {curve.base.run_id if curve.base else 'BASE'} "
              f"{best.run_id}")  # fmt: skip
    regressed = curve.regressed()
    if regressed:
        out.print(f"[red]{len(regressed)} cases fell below their base grade[/red] (first step):")
        for tr in regressed[:SHOWN]:
            out.print(f"  {escape(tr.case_id)}: {tr.base} → {tr.grades[-1]} at the last step, "
                      f"first at step {tr.first_regressed}")  # fmt: skip
    flipping = curve.flipping()
    if flipping:
        names = ", ".join(f"{escape(tr.case_id)} ({tr.flips})" for tr in flipping[:SHOWN])
        out.print(f"{len(flipping)} cases flip between pass and fail (flips): {names}")
