"""tuneval data pairs SUITE --out FILE: preference pairs graded by the suite's rubric."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from harness.cli import DbOption, JsonOption, TrustOption, err, open_store, out, print_json
from harness.generation.models import DEFAULT_MODEL

SamplesOption = Annotated[
    int, typer.Option("--samples", "-k", help="answers sampled per prompt (at least 2)")
]
TemperatureOption = Annotated[float, typer.Option("--temperature", help="sampling temperature")]
TopPOption = Annotated[float, typer.Option("--top-p", help="nucleus sampling share")]
TieBreakOption = Annotated[
    str,
    typer.Option(
        "--tie-break",
        help="within one grade: none (no pair), failed (fewer failed criteria wins) or score "
        "(higher mean criterion score wins)",
    ),
]


def pairs_cmd(
    suite: Annotated[Path, typer.Argument(help="suite folder (with data.train)")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="pairs file to write (JSONL)")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="model whose answers are sampled")
    ] = DEFAULT_MODEL,
    split: Annotated[str, typer.Option(help="train or validation (never test)")] = "train",
    samples: SamplesOption = 4,
    limit: Annotated[int | None, typer.Option(min=1, help="only the first N prompts")] = None,
    temperature: TemperatureOption = 1.0,
    top_p: TopPOption = 0.95,
    tie_break: TieBreakOption = "none",
    batch_size: Annotated[
        int | None, typer.Option(min=1, max=65_536, help="rows decoded together")
    ] = None,
    trust_code: TrustOption = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sample answers to the train prompts, grade them with the rubric, and write the best and
    the worst answer of each prompt as a pair (TRL's conversational preference format), with
    the grades and criteria that decided it. Test prompts, and train prompts near one, are left
    out. Samples are cached: a rerun costs nothing, a killed run resumes."""
    from harness.generation import models
    from harness.suite.loader import load_suite
    from harness.training.data import split_rows
    from harness.training.pairs import PairOptions, build_pairs, write_pairs

    s = load_suite(suite)  # everything is checked before the store is touched
    opts = PairOptions(
        split=split,  # type: ignore[arg-type]  # checked by opts.check()
        samples=samples, limit=limit, temperature=temperature, top_p=top_p,
        tie_break=tie_break,  # type: ignore[arg-type]
        batch_size=batch_size, progress=not as_json, trust_code=trust_code,
    )  # fmt: skip
    opts.check()
    s.check_use(trust_code)
    split_rows(s, split)
    with open_store(db) as store:
        ref = models.resolve(model, store)
        result = build_pairs(s, ref, store, opts)
    write_pairs(out_file, result.rows)
    if as_json:
        print_json({"out": str(out_file), "model": ref.name, **result.to_json()})
        return
    show(result, out_file)


def show(result: Any, out_file: Path) -> None:
    kept = len(result.rows)
    out.print(
        f"{kept} pairs from {result.prompts} {result.settings['split']} prompts "
        f"({result.settings['samples']} samples each; {result.generated} generated, "
        f"{result.cached} from cache) -> {escape(str(out_file))}"
    )
    for reason, n in sorted(result.dropped.items(), key=lambda kv: -kv[1]):
        out.print(f"  dropped {n}: {escape(reason)}")
    for leak in result.leaked[:3]:
        out.print(
            f"    {escape(str(leak['row']))} is {leak['kind']} test case "
            f"{escape(str(leak['test_id']))} (Jaccard {leak['jaccard']})"
        )
    if not kept:
        err.print(
            "[yellow]no pairs:[/] the rubric told no two answers to one prompt apart; more "
            "--samples, a higher --temperature or --tie-break failed|score may"
        )


def label_pairs_cmd(
    run_a: Annotated[str, typer.Argument(help="one run of the suite")],
    run_b: Annotated[str, typer.Argument(help="another run of the same suite")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="pairs file to write (JSONL)")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pairs from the grading queue's labels on two runs' answers (the human grade overrides
    the automatic one). They are test cases: the dpo trainer refuses them unless
    `--set allow_test_pairs=true`."""
    from harness.training.pairs import label_pairs, warning_for_test_cases, write_pairs

    with open_store(db, readonly=True) as store:
        rows, dropped = label_pairs(store, run_a, run_b)
    write_pairs(out_file, rows)
    suites = sorted({r["tuneval"]["suite"] for r in rows})
    if as_json:
        print_json({"out": str(out_file), "pairs": len(rows), "dropped": dict(dropped)})
    else:
        out.print(f"{len(rows)} pairs from human labels -> {escape(str(out_file))}")
        for reason, n in sorted(dropped.items(), key=lambda kv: -kv[1]):
            out.print(f"  dropped {n}: {escape(reason)}")
    if rows:
        err.print(f"[yellow]warning:[/] {escape(warning_for_test_cases(suites))}")


def register(data_app: typer.Typer) -> None:
    data_app.command("pairs")(pairs_cmd)
    data_app.command("label-pairs")(label_pairs_cmd)
