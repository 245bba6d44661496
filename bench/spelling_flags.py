"""What the `spelling` criterion flags in a suite's stored answers, with and without a vocabulary.

Regrades every stored answer (each sample of a sampled run too) of every run of the suite in the
store with `spelling` twice: its default vocabularies, and the same without the one named by
--without (default: `science`). Prints, per side, how many answers are flagged, then every
flagged word with how often and one case it came from, so each flag can be read.

    .venv/bin/python -m harness.cli eval suites/python-docs --db /tmp/s/tuneval.db
    .venv/bin/python bench/spelling_flags.py --db /tmp/s/tuneval.db [--suite suites/python-docs]
"""

from __future__ import annotations

import argparse
import inspect
from collections import Counter
from pathlib import Path
from typing import Any

from harness import criteria
from harness.criteria.spelling import spelling
from harness.store import Store
from harness.suite.loader import load_suite

ROOT = Path(__file__).resolve().parent.parent


def answers(store: Store, suite_name: str) -> list[tuple[str, str, str]]:
    """(run id, case id, answer) for every stored answer of the suite's runs."""
    out = []
    for run in store.runs(suite=suite_name):
        for row in store.results(run["id"]):
            samples = row.get("samples") or [{"output": row["output"]}]
            out += [(run["id"], row["case_id"], str(s["output"])) for s in samples]
    return out


def flags(texts: list[str], cases: list[dict[str, Any]], vocabulary: list[str]) -> list[str]:
    """Per answer, its flag detail ('' when it passed)."""
    results = criteria.get("spelling")(vocabulary=vocabulary)(texts, cases)
    return ["" if r.passed else r.detail for r in results]


def words(detail: str) -> list[str]:
    return [w.strip("'") for w in detail.removeprefix("misspelled: ").split(", ") if w != "…"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--suite", type=Path, default=ROOT / "suites" / "python-docs")
    ap.add_argument("--without", default="science", help="the vocabulary left out for 'before'")
    args = ap.parse_args()
    suite = load_suite(args.suite)
    by_id = {c["id"]: c for c in suite.cases}
    with Store(args.db) as store:
        rows = [r for r in answers(store, suite.name) if r[1] in by_id]
    default = inspect.signature(spelling).parameters["vocabulary"].default
    sides = {
        f"without {args.without}": [v for v in default if v != args.without],
        f"default {'+'.join(default)}": list(default),
    }
    texts, cases = [r[2] for r in rows], [by_id[r[1]] for r in rows]
    print(f"{len(rows)} answers of {suite.name} in {args.db}")
    with criteria.using(criteria.Context(suite_path=suite.path, suite=suite)):
        for label, vocab in sides.items():
            details = flags(texts, cases, vocab)
            flagged = Counter[str]()
            where: dict[str, str] = {}
            for (_, case_id, _), d in zip(rows, details, strict=True):
                for w in words(d) if d else []:
                    flagged[w] += 1
                    where.setdefault(w, case_id)
            n = sum(1 for d in details if d)
            print(f"\n{label}: {n} of {len(rows)} answers flagged, {len(flagged)} distinct words")
            for w, count in flagged.most_common():
                print(f"  {w:24} x{count:<3} e.g. {where[w]}")


if __name__ == "__main__":
    main()
