"""tuneval data prepare | check | synth (and pairs, in harness/cli/pairs.py)"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli import DbOption, JsonOption, err, out, print_json
from harness.generation.models import DEFAULT_MODEL

data_app = typer.Typer(
    help="Prepare training data, check it for leakage, make pairs from text.", no_args_is_help=True
)


def _tokenizer(model: str, db: Path | None) -> Any:
    from harness.generation import models
    from harness.store import Store, default_path

    # Only a registered (trained) model needs the store; never create one just to read a name.
    path = db or default_path()
    if path.exists():
        with Store(path, readonly=True) as store:
            ref = models.resolve(model, store)
    else:
        ref = models.resolve(model, None)
    return models.load_tokenizer(ref)


@data_app.command("prepare")
def prepare(
    suite: Annotated[Path, typer.Argument(help="suite folder")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="model spec (its tokenizer)")
    ] = DEFAULT_MODEL,
    max_length: Annotated[int, typer.Option(help="truncate examples to this many tokens")] = 512,
    batch_size: Annotated[int, typer.Option(help="examples per optimizer step")] = 8,
    epochs: Annotated[int, typer.Option(help="passes over the train split")] = 1,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply the prompt and chat template, tokenize, and report tokens, truncation and steps."""
    from harness.generation.tokenize import render_parts
    from harness.suite.loader import load_suite
    from harness.training.data import chat_examples, prepare_report

    s = load_suite(suite)
    for name, value in (("--max-length", max_length), ("--batch-size", batch_size)):
        if value < (2 if name == "--max-length" else 1):
            raise typer.BadParameter("too small", param_hint=name)
    if epochs < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--epochs")
    chat_examples(s, "train")  # fails fast on a suite without training data
    tok = _tokenizer(model, db)
    report = prepare_report(s, tok, max_length, batch_size, epochs)
    report["model"] = model
    if as_json:
        print_json(report)
        return
    table = Table(title=f"{s.name} · tokenized with {model} · max length {max_length}")
    for col in ("split", "examples", "prompt tok", "answer tok", "mean p/a", "longest"):
        table.add_column(col, justify="right" if col != "split" else "left")
    table.add_column("truncated", justify="right")
    for split, r in report["splits"].items():
        table.add_row(
            split,
            str(r["examples"]),
            f"{r['prompt_tokens']:,}",
            f"{r['answer_tokens']:,}",
            f"{r['mean_prompt_tokens']:.0f}/{r['mean_answer_tokens']:.0f}",
            str(r["longest"]),
            f"{r['truncated']} ({r['truncated_share']:.1%})",
        )
    out.print(table)
    train = report["splits"]["train"]
    out.print(
        f"{report['steps']} steps ({report['steps_per_epoch']} per epoch × {epochs} epochs, "
        f"batch size {batch_size}); {train['trained_tokens']:,} answer tokens trained per epoch"
    )
    if train["no_answer_left"]:
        err.print(f"[yellow]warning:[/yellow] {train['no_answer_left']} examples have no answer "
                  f"left after truncation to {max_length} tokens: raise --max-length")  # fmt: skip
    prompt, answer = render_parts(tok, chat_examples(s, "train")[0])
    out.print("[dim]first example (prompt masked from the loss, answer trained):[/dim]")
    out.print(f"[dim]{_escape(prompt)}[/dim][bold]{_escape(answer)}[/bold]")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@data_app.command("check")
def check(
    suite: Annotated[Path, typer.Argument(help="suite folder")],
    as_json: JsonOption = False,
) -> None:
    """Train/test leakage (exact and near-duplicate prompts), duplicates, empty answers.

    Exits 1 when a test prompt also appears in the training data.
    """
    from harness.suite.loader import load_suite
    from harness.training.data import check_report

    report = check_report(load_suite(suite))
    if as_json:
        print_json(report)
    else:
        _print_check(report)
    if report["exact_overlap"]:
        raise typer.Exit(1)


def _print_check(r: dict[str, Any]) -> None:
    def mark(n: int, bad: str = "red") -> str:
        return f"[green]{n}[/green]" if n == 0 else f"[{bad}]{n}[/{bad}]"

    out.print(f"[bold]{r['suite']}[/bold]: {r['test']} test, {r['train']} train, "
              f"{r['validation']} validation rows")  # fmt: skip
    of = f" of {r['test']}"
    out.print(f"  test prompts also in train/validation (exact): {mark(r['exact_overlap'])}{of}")
    out.print(
        f"  test prompts near-duplicating one (character 5-gram Jaccard >= {r['near_threshold']}): "
        f"{mark(r['near_overlap'], 'yellow')}{of}"
    )
    out.print(f"  duplicate pairs inside train: {mark(r['train_duplicates'], 'yellow')}")
    out.print(f"  same prompt, different answers in train: {mark(r['train_conflicts'], 'yellow')}")
    out.print(f"  duplicate test prompts: {mark(r['test_duplicates'], 'yellow')}")
    for split, n in r["empty_answers"].items():
        out.print(f"  empty answers in {split}: {mark(n, 'yellow')}")
    div = r["train_diversity"]
    out.print(
        f'  generated rows in train ("source": "generated"): {div["generated"]} '
        f"({div['generated_share']:.1%})"
    )
    groups = [("train", div["all"])] + [
        (f"  {name}", d) for name, d in div.get("by_source", {}).items()
    ]
    for label, d in groups:
        if d["rows"]:
            w = d["answer_words"]
            out.print(
                f"  {label}: distinct 1-grams {_share(d['distinct_1'])}, 2-grams "
                f"{_share(d['distinct_2'])}; answers {w['mean']:.0f} ± {w['std']:.0f} words "
                f"(10–90%: {w['p10']:.0f}–{w['p90']:.0f})"
            )
    for ex in r["exact_examples"] + r["near_examples"]:
        how = f"jaccard {ex['jaccard']}" if "jaccard" in ex else "exact"
        out.print(f"  [dim]{ex['test_id']} ({how}):[/dim] {_escape(ex['test'][:100])}")


@data_app.command("synth")
def synth(
    sources: Annotated[
        list[Path], typer.Argument(help="text files or folders: .md, .rst, .txt, .py docstrings")
    ],
    suite: Annotated[Path, typer.Option("--suite", help="suite folder the pairs are for")],
    out_file: Annotated[Path, typer.Option("--out", help="JSONL file to write")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="write pairs with this model (default: a template)"),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Turn plain text into question/answer pairs (template or model), dedupe them, drop those
    that leak into the suite's test split, mark them generated, and say what each step kept."""
    from harness import outfile
    from harness.store import default_path
    from harness.suite.loader import load_suite
    from harness.training.synth import synthesize, write_jsonl

    outfile.check(out_file, db or default_path())  # before the work, not after
    s = load_suite(suite)
    if model is None:
        rows, counts = synthesize(s, sources)
    else:
        from harness.cli import open_store

        with open_store(db) as store:  # model answers are cached like generations
            rows, counts = synthesize(s, sources, model=model, store=store)
    write_jsonl(out_file, rows, db or default_path())
    if as_json:
        print_json({"out": str(out_file), "counts": counts})
        return
    made = "by template" if model is None else f"by {model}"
    out.print(f"[bold]{s.name}[/bold]: question/answer pairs {made} → {_escape(str(out_file))}")
    steps = [
        ("passages read", counts["passages"]),
        ("untitled, skipped" if model is None else "answers that did not parse",
         counts.get("untitled", counts.get("unparsed", 0))),
        ("pairs made", counts["pairs"]),
        ("duplicates dropped", counts["duplicates"]),
        ("leaking into the test split, dropped", counts["leaked"]),
        ("written (\"source\": \"generated\")", counts["written"]),
    ]  # fmt: skip
    for label, n in steps:
        out.print(f"  {label}: {n}")


def _share(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def register(app: typer.Typer) -> None:
    from harness.cli import pairs

    pairs.register(data_app)
    app.add_typer(data_app, name="data")
