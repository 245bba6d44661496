"""tuneval trainers list | tuneval train SUITE | tuneval loop SUITE"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli import DbOption, JsonOption, TrustOption, err, open_store, out, print_json
from harness.cli.pairs import TieBreakOption
from harness.cli.track import DestOption, LogToOption, ProjectOption
from harness.errors import UserError
from harness.generation.models import DEFAULT_MODEL

trainers_app = typer.Typer(help="List trainer plugins and their settings.", no_args_is_help=True)

SuiteArg = Annotated[Path, typer.Argument(help="suite folder (with data.train)")]
BaseOption = Annotated[str, typer.Option("--base", "-b", help="model to start from")]
TrainerOption = Annotated[
    str, typer.Option("--trainer", "-t", help="trainer plugin (see `tuneval trainers list`)")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="KEY=VALUE: a hyperparameter or trainer setting (repeatable)"),
]
EvalCheckpointsOption = Annotated[
    int,
    typer.Option(
        "--eval-checkpoints",
        min=0,
        help="evaluate each checkpoint on the suite's first N test cases (0: off)",
    ),
]


def _settings(config: Any) -> dict[str, Any]:
    """Each setting's default; a required one (dpo's pairs) has none: REQUIRED."""
    return {k: REQUIRED if f.is_required() else f.default for k, f in config.model_fields.items()}


REQUIRED = "(required)"


@trainers_app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Built-in trainers and those installed through the `tuneval.trainers` entry point."""
    from harness.plugin import Hyperparameters
    from trainers import registry

    rows = []
    for name, info in registry.available().items():
        row: dict[str, Any] = {"name": name, "source": info.source, "target": info.target}
        try:
            t = registry.get(name)
            row.update(description=t.description, settings=_settings(t.Config))
        except UserError as e:
            row["error"] = str(e)
        rows.append(row)
    if as_json:
        print_json({"trainers": rows, "hyperparameters": _settings(Hyperparameters)})
        return
    table = Table("trainer", "source", "description", "settings (--set key=value)")
    for r in rows:
        settings = ", ".join(f"{k}={v}" for k, v in r.get("settings", {}).items())
        table.add_row(
            r["name"],
            r["source"],
            escape(r.get("description", r.get("error", ""))),
            escape(settings),
        )
    out.print(table)
    common = ", ".join(f"{k}={v}" for k, v in _settings(Hyperparameters).items())
    out.print(f"common hyperparameters (--set key=value): {escape(common)}")


NprocOption = Annotated[
    int,
    typer.Option(
        "--nproc",
        min=1,
        help="train on N processes under torchrun (one per GPU; gloo on CPUs): DDP, or FSDP "
        "with --set fsdp=true",
    ),
]
TorchrunOption = Annotated[
    list[str] | None,
    typer.Option(
        "--torchrun",
        help="an option passed to torchrun as is, e.g. --torchrun=--nnodes=2 "
        "--torchrun=--rdzv-endpoint=host:29500 (repeatable)",
    ),
]


def _prepare(
    suite: Path, trainer: str, sets: list[str] | None, pairs_later: bool = False
) -> tuple[Any, Any, Any, Any]:
    """Everything that can be wrong with the command, checked before the store is touched.
    With `pairs_later` (the loop makes the pairs file), a trainer's `pairs` setting is checked
    for everything but the file."""
    from harness.plugin import PAIRS_PENDING
    from harness.suite.loader import load_suite
    from harness.training.job import examples, parse_sets
    from trainers import registry

    s = load_suite(suite)
    t = registry.get(trainer)
    items = list(sets or [])
    if pairs_later:
        items.append("pairs=(made by this loop)")
    hp, cfg = parse_sets(t, items, {PAIRS_PENDING: True} if pairs_later else None)
    examples(s)
    return s, t, hp, cfg


def _check_against_base(t: Any, base: str, hp: Any, cfg: Any, db: Path | None) -> None:
    """The settings checked against the base model before the store is opened for writing: a
    base named in an existing store is looked up there read-only."""
    from harness.generation.models import resolve
    from harness.store import Store, default_path
    from harness.training.job import check_settings

    path = db or default_path()
    if not path.is_file():
        check_settings(t, resolve(base, None), hp, cfg)
        return
    with Store(path, readonly=True) as peek:
        check_settings(t, resolve(base, peek), hp, cfg)


def _loop_makes_pairs(trainer: str, sets: list[str] | None) -> bool:
    """A trainer with a `pairs` setting the user left out learns from pairs this loop makes."""
    from trainers import registry

    t = registry.get(trainer)
    given = {item.partition("=")[0].strip() for item in sets or []}
    return "pairs" in t.Config.model_fields and "pairs" not in given


def _train(job: Any, store: Any, eval_checkpoints: int, quiet: bool, trust_code: bool) -> Any:
    from harness.training.job import train as run_training

    if not quiet:
        err.print(
            f"training [bold]{job.trainer.name}[/] on {job.suite.name} ({len(job.train)} "
            f"examples) from {escape(job.base.name)}"
        )
    return run_training(
        job,
        store,
        eval_checkpoints=eval_checkpoints,
        progress=not quiet,
        on_plan=None if quiet else _show_plan,
        trust_code=trust_code,
    )


def _show_plan(p: dict[str, Any]) -> None:
    budget = " (a token budget per micro-batch: the step count is an estimate)"
    err.print(
        f"plan: {p['steps']} steps, {p['examples_seen']} examples ({p['epochs']:g} epochs of "
        f"{p['examples']}), about {p['tokens']:,} tokens" + (budget if p["token_budget"] else "")
    )
    if p["leaked_exact"] or p["leaked_near"]:
        leaked = p["leaked_exact"] + p["leaked_near"]
        err.print(
            f"[yellow]warning:[/] {leaked} of {p['test_prompts']} test prompts appear in the "
            f"training data ({p['leaked_exact']} exactly, {p['leaked_near']} nearly): their "
            "grades overstate the candidate; see `tuneval data check`"
        )


def _describe(result: Any) -> str:
    r = result.to_json()
    if r["reused"]:
        return f"model [bold]{r['model']}[/] already trained: reused ({r['path']})"
    note = f", resumed from step {r['resumed_from']}" if r["resumed_from"] else ""
    loss = f"loss {r['final_loss']:.3f}" if r["final_loss"] is not None else ""
    val = f", validation loss {r['val_loss']:.3f}" if r["val_loss"] is not None else ""
    return (
        f"model [bold]{r['model']}[/] ({r['kind']}): {r['steps']} steps, {r['tokens']} tokens, "
        f"{r['tokens_per_s']} tok/s, {loss}{val}{note}\n  {r['path']}"
    )


def train_cmd(
    suite: SuiteArg,
    trainer: TrainerOption = "sft",
    base: BaseOption = DEFAULT_MODEL,
    sets: SetOption = None,
    eval_checkpoints: EvalCheckpointsOption = 0,
    nproc: NprocOption = 1,
    torchrun: TorchrunOption = None,
    trust_code: TrustOption = False,
    log_to: LogToOption = None,
    project: ProjectOption = "tuneval",
    dest: DestOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Finetune a candidate on the suite's train split and register it as a model.
    Run the same command again after an interruption to resume from the last checkpoint."""
    from harness.cli import track
    from harness.plugin import distributed
    from harness.training.job import make_job

    track.check(log_to)
    s, t, hp, cfg = _prepare(suite, trainer, sets)
    if eval_checkpoints:  # refused now, not at a checkpoint
        s.check_use(trust_code)
    _check_against_base(t, base, hp, cfg, db)
    if (nproc > 1 or torchrun) and distributed().world_size == 1:
        from harness.training.launch import check_launch, relaunch

        check_launch(nproc, torchrun or [])

        with open_store(db) as store:  # the launcher prepares the store and the base once
            job = make_job(s, t, base, hp, cfg, store)
            from harness.training.job import training_base

            training_base(job.base, store)
        relaunch(nproc, torchrun or [])  # does not return
    with open_store(db, readonly=not distributed().is_main) as store:
        job = make_job(s, t, base, hp, cfg, store)
        quiet = as_json or not distributed().is_main
        result = _train(job, store, eval_checkpoints, quiet, trust_code)
    if not distributed().is_main:
        return
    track.send(db, [], log_to, project, dest, quiet=as_json, train_run=result.train_run)
    if as_json:
        print_json(result.to_json())
    else:
        out.print(_describe(result))


PromptBaselineOption = Annotated[
    str | None,
    typer.Option(
        "--prompt-baseline",
        help="a prompt variant of the suite: also evaluate the base with it (a third arm) and "
        "compare the candidate with that too",
    ),
]


def loop_cmd(
    suite: SuiteArg,
    base: BaseOption = DEFAULT_MODEL,
    trainer: TrainerOption = "sft",
    sets: SetOption = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="evaluate only the first N test cases")
    ] = None,
    eval_checkpoints: EvalCheckpointsOption = 0,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, max=65_536, help="rows decoded together (default: the engine's)"),
    ] = None,
    trust_code: TrustOption = False,
    prompt_baseline: PromptBaselineOption = None,
    samples: Annotated[
        int | None,
        typer.Option(
            "--samples",
            min=1,
            max=1000,
            help="answers drawn per test case in both evals, so the verdict is on per-case pass "
            "shares (default: the suite's generation.samples; needs a temperature > 0)",
        ),
    ] = None,
    pair_samples: Annotated[
        int,
        typer.Option(
            "--pair-samples",
            min=2,
            help="with a pairs trainer (dpo): answers sampled per train prompt",
        ),
    ] = 4,
    tie_break: TieBreakOption = "none",
    log_to: LogToOption = None,
    project: ProjectOption = "tuneval",
    dest: DestOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The whole loop: evaluate the base (cached), train a candidate, evaluate it, compare; with
    --prompt-baseline, the base with a prompt variant too, and a second verdict against it.
    With --trainer dpo (and no pairs= setting), the pairs come from the base's own answers to
    the train prompts, graded by the rubric, before training."""
    from dataclasses import replace

    from harness.cli import track
    from harness.comparison.compare import compare_runs
    from harness.evaluation.runner import EvalOptions, evaluate_suite
    from harness.generation import models
    from harness.training.job import make_job

    makes_pairs = _loop_makes_pairs(trainer, sets)
    s, t, hp, cfg = _prepare(suite, trainer, sets, pairs_later=makes_pairs)
    s.check_use(trust_code)  # before the store is touched
    if samples is not None:
        from harness.evaluation.sampled import samples_for

        samples_for(s, samples)  # several samples of a greedy suite: located, nothing written
    track.check(log_to)
    pair_opts = None
    pairs: dict[str, Any] | None = None
    if makes_pairs:
        from harness.training.pairs import PairOptions

        pair_opts = PairOptions(
            samples=pair_samples, tie_break=tie_break,  # type: ignore[arg-type]  # checked next
            batch_size=batch_size, progress=not as_json, trust_code=trust_code,
        )  # fmt: skip
        pair_opts.check()
    if not s.cases:
        raise UserError(f"suite '{s.name}' has no test cases (data.test) to compare on")
    if prompt_baseline is not None:
        if not prompt_baseline.strip():
            raise UserError("--prompt-baseline needs a variant's name (see `tuneval suites show`)")
        s.check_use(trust_code, prompt_baseline)  # an unknown variant stops here, before the store
    _check_against_base(t, base, hp, cfg, db)
    opts = EvalOptions(
        limit=limit, batch_size=batch_size, progress=not as_json, trust_code=trust_code,
        samples=samples,
    )  # fmt: skip
    stages = 4 + (prompt_baseline is not None) + (pair_opts is not None)
    step = iter(range(1, stages + 1))

    def say(text: str) -> None:
        if not as_json:
            err.print(f"{next(step)}/{stages} {text}")

    with open_store(db) as store:
        base_ref = models.resolve(base, store)
        say(f"evaluating the base {escape(base_ref.name)}")
        run_a = evaluate_suite(s, base_ref, store, opts)
        run_p = None
        if prompt_baseline is not None:
            say(f"evaluating the base with prompt variant {escape(prompt_baseline)}")
            run_p = evaluate_suite(s, base_ref, store, replace(opts, prompt=prompt_baseline))
        if pair_opts is not None:
            say(f"preference pairs from the base's answers to the {s.name} train prompts")
            hp, cfg, pairs = _loop_pairs(s, t, base_ref, store, pair_opts, sets, as_json)
        job = make_job(s, t, base, hp, cfg, store)
        say("training")
        trained = _train(job, store, eval_checkpoints, as_json, trust_code)
        if not as_json:
            out.print(_describe(trained))
        say(f"evaluating the candidate {trained.model}")
        run_b = evaluate_suite(s, models.resolve(trained.model, store), store, opts)
        say("comparing")
        comparisons = [compare_runs(store, run_a.run_id, run_b.run_id)]
        if run_p is not None:
            comparisons.append(compare_runs(store, run_p.run_id, run_b.run_id))
    logged = [(run_a.run_id, None), (run_b.run_id, run_a.run_id)]
    track.send(db, logged, log_to, project, dest, quiet=as_json, train_run=trained.train_run)
    if as_json:
        data = _loop_json(trained, run_a.run_id, run_b.run_id, comparisons, prompt_baseline)
        print_json(data if pairs is None else {**data, "pairs": pairs})
    else:
        _show_loop(comparisons)


def _loop_pairs(
    s: Any, t: Any, base: Any, store: Any, opts: Any, sets: list[str] | None, quiet: bool
) -> tuple[Any, Any, dict[str, Any]]:
    """Pairs from the base on the train split, written beside the store (named by what made
    them), and the trainer's settings with that file."""
    import hashlib
    import json

    from harness.cli.pairs import show
    from harness.training.job import parse_sets, workspace_models
    from harness.training.pairs import build_pairs, write_pairs

    result = build_pairs(s, base, store, opts)
    blob = json.dumps([s.fingerprint, base.fingerprint, result.settings], sort_keys=True)
    tag = hashlib.sha256(blob.encode()).hexdigest()[:8]
    path = workspace_models(store).parent / "pairs" / f"{s.name}-{tag}.jsonl"
    write_pairs(path, result.rows)
    if not quiet:
        show(result, path)
    if not result.rows:
        raise UserError(
            f"no preference pairs from the base's answers ({result.dropped}): nothing for "
            f"'{t.name}' to learn; try --pair-samples, --tie-break failed|score, or --trainer sft"
        )
    hp, cfg = parse_sets(t, [*(sets or []), f"pairs={path}"])
    return hp, cfg, {"out": str(path), **result.to_json()}


def _loop_json(
    trained: Any, base_run: str, candidate_run: str, comparisons: list[Any], variant: str | None
) -> dict[str, Any]:
    def brief(c: Any) -> dict[str, Any]:
        data: dict[str, Any] = c.to_json()
        data.pop("pairs", None)
        return data

    out: dict[str, Any] = {
        "verdict": comparisons[0].verdict,
        "model": trained.model,
        "base_run": base_run,
        "candidate_run": candidate_run,
        "train": trained.to_json(),
        "comparison": brief(comparisons[0]),
    }
    if variant is not None:
        c = comparisons[1]
        out["prompt_baseline"] = {
            "prompt": variant,
            "run": c.run_a["id"],
            "verdict": c.verdict,
            "comparison": brief(c),
        }
    return out


def _show_loop(comparisons: list[Any]) -> None:
    """Each comparison in full, then the verdicts side by side when there are two."""
    from harness.cli.compare import VERDICT_STYLE, show
    from harness.comparison.cost import summary
    from harness.suite.prompts import arm

    for i, c in enumerate(comparisons):
        if len(comparisons) > 1:
            out.rule(f"candidate vs {escape(arm(c.run_a['model'], c.run_a['prompt_variant']))}")
        show(c, cases=False)
        if i < len(comparisons) - 1:
            out.print()
    if len(comparisons) < 2:
        return
    out.rule("verdicts")
    for c in comparisons:
        against = arm(c.run_a["model"], c.run_a["prompt_variant"])
        style = VERDICT_STYLE[c.verdict]
        d = c.pass_rate
        figure = "pass share" if c.sampling is not None else "pass rate"
        rates = f"{figure} {d.a:.1%} → {d.b:.1%}"
        out.print(f"candidate vs {escape(against)}: [{style}]{c.verdict}[/] ({rates})")
        out.print(f"  {escape(summary(c.cost, against, 'the candidate'))}")


def register(app: typer.Typer) -> None:
    app.add_typer(trainers_app, name="trainers")
    app.command("train")(train_cmd)
    app.command("loop")(loop_cmd)
