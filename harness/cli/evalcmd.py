"""tuneval eval SUITE --model SPEC"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from harness.cli import DbOption, JsonOption, TrustOption, open_store, out, print_json
from harness.cli.track import DestOption, LogToOption, ProjectOption
from harness.errors import UserError


def summary_table(result: dict[str, Any], sections: dict[str, str]) -> Table:
    from harness.suite.prompts import arm

    n = result["n"]
    title = f"{result['suite']} · {arm(result['model'], result.get('prompt'))} · {n} cases graded"
    table = Table(title=title, show_lines=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for g, colour in (("bad", "red"), ("good", "yellow"), ("better", "green")):
        count = result["grades"][g]
        table.add_row(f"[{colour}]{g}[/{colour}]", f"{count} ({count / n:.0%})" if n else "0")
    table.add_row(
        "[bold]pass rate (good or better)[/bold]", f"[bold]{result['pass_rate']:.1%}[/bold]"
    )
    for cid, rate in result["criteria"].items():
        section = sections.get(cid, "")
        label = f"  {section}/{cid}" + (" (defect-free)" if section == "bad" else "")
        table.add_row(label, f"{rate:.1%}")
    return table


def eval_cmd(
    suite: Annotated[Path, typer.Argument(help="suite folder")],
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="model spec: a name, a folder, a Hub id org/name[@revision], or a glob of "
            "folders; repeat it for several (adapters of one base load it once)",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="evaluate only the first N cases (per part)")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65_536,
            help="rows decoded together (default: the engine's; for a served "
            "model, requests in flight)",
        ),
    ] = None,
    trust_code: TrustOption = False,
    prompt: Annotated[
        str,
        typer.Option(
            "--prompt", help="a prompt variant of the suite (prompt.variants; default: the base)"
        ),
    ] = "",
    samples: Annotated[
        int | None,
        typer.Option(
            "--samples",
            min=1,
            max=1000,
            help="answers drawn per case (default: the suite's generation.samples; needs a "
            "temperature > 0)",
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option("--base", help="for a checkpoint sweep: the base the checkpoints came from"),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="vllm: answer through vLLM started on the model (`make vllm`); local: "
            "tuneval's own; auto: vllm where installed and it pays for the answers to make "
            "(default: TUNEVAL_ENGINE, else auto)",
        ),
    ] = None,
    log_to: LogToOption = None,
    project: ProjectOption = "tuneval",
    dest: DestOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a model on a suite (its test cases and its lm-eval tasks): generate (cached),
    grade every case, store the run; one run per model. One glob of `checkpoint-N` folders or a
    training output folder sweeps the checkpoints in step order, with the base, as one curve."""
    from harness.cli import track
    from harness.evaluation.adapters import evaluate_models
    from harness.evaluation.runner import EvalOptions
    from harness.generation import models
    from harness.suite.loader import load_suite

    if engine not in (None, "local", "vllm", "auto"):
        raise UserError(f"--engine {engine!r}: use local, vllm or auto")
    s = load_suite(suite)  # before the store is touched: a bad suite writes nothing
    s.check_use(trust_code, prompt)  # code it runs, an unknown variant: nothing written
    if samples is not None:
        from harness.evaluation.sampled import samples_for

        samples_for(s, samples)  # several samples of a greedy suite: located, nothing written
    track.check(log_to)
    opts = EvalOptions(
        limit=limit, batch_size=batch_size, progress=not as_json, trust_code=trust_code,
        prompt=prompt, samples=samples, engine=engine,
    )  # fmt: skip
    from harness.evaluation.sweep import checkpoint_folders

    # one glob of checkpoint-N folders, or a training output folder: a sweep
    folders = checkpoint_folders(model[0]) if model and len(model) == 1 else None
    if folders is not None:
        from harness.cli.curve import sweep_cmd

        sweep_cmd(s, folders, opts, base, db, as_json, log_to, project, dest)
        return
    specs = models.expand_model_specs(model or [models.DEFAULT_MODEL])
    with open_store(db) as store:
        refs = [models.resolve(spec, store) for spec in specs]  # every spec known good first
        results = evaluate_models(s, refs, store, opts)
    track.send(db, [(r.run_id, None) for r in results], log_to, project, dest, quiet=as_json)
    if as_json:  # one model: its run's object, as before; several: a list of them
        data = [r.to_json() for r in results]
        print_json(data[0] if len(data) == 1 else data)
        return
    for result in results:
        shown = result.to_json()
        out.print(summary_table(shown, result.summary["sections"]))
        if "sampling" in shown:
            from harness.cli.runs import sampling_line

            out.print(sampling_line(shown["sampling"]))
        note = f"{result.cached} from cache, {result.generated} generated"
        if result.resumed:
            note += ", resumed an interrupted run"
        if result.extra.get("shared"):
            note = "computed meanwhile by another tuneval process on this store"
        out.print(f"run [bold]{result.run_id}[/bold]  ({note}, {result.seconds:.1f}s)")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
