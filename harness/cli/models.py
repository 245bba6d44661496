"""tuneval models list | add | remove"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli import DbOption, JsonOption, err, open_store, out, print_json
from harness.errors import UserError
from harness.generation.served import redact

models_app = typer.Typer(
    help="Models: the packaged default, the candidates you trained, served endpoints.",
    no_args_is_help=True,
)


def lineage(name: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    """The model, its base, the base's base, ... (stops at unregistered names and cycles)."""
    chain = [name]
    while (row := rows.get(chain[-1])) and row["base"] and row["base"] not in chain:
        chain.append(row["base"])
    return chain


@models_app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every known model with its lineage: packaged default first, then candidates, oldest first,
    then models named by Hub id that have runs (with the commit their newest run resolved to)."""
    from harness.generation.models import DEFAULT_MODEL
    from harness.store import default_path

    rows: dict[str, Any] = {}
    hub_rows: list[dict[str, Any]] = []
    if (db or default_path()).exists():  # no store yet: only the packaged default exists
        with open_store(db, readonly=True) as store:
            rows = {r["name"]: r for r in store.models()}
            hub_rows = [h for h in store.hub_models() if h["name"] not in rows]
    listed = [] if DEFAULT_MODEL in rows else [_packaged_entry(DEFAULT_MODEL)]
    for r in sorted(rows.values(), key=lambda r: (r["kind"] != "packaged", r["created_at"])):
        listed.append(_entry(r, rows))
    listed += [_hub_entry(h) for h in hub_rows]
    if as_json:
        print_json(listed)
    else:
        out.print(_models_table(listed))


def _models_table(listed: list[dict[str, Any]]) -> Table:
    table = Table("model", "kind", "lineage", "trained on", "train run", "created")
    for m in listed:
        when = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(m["created_at"]))
            if m["created_at"]
            else ""
        )
        trained = f"{m['suite']} · {m['trainer']} · {m['steps']} steps" if m["trainer"] else ""
        if m["kind"] == "served":
            trained = f"{redact(m['url'] or '')} · {m['served_id']} (fingerprint not verified)"
        if m.get("hub"):
            trained = "Hub: " + ", ".join(f"{h['id']}@{h['commit'][:12]}" for h in m["hub"])
        table.add_row(
            escape(m["name"]),
            m["kind"],
            escape(" ← ".join(m["lineage"])),
            escape(trained),
            m["produced_by"] or "",
            when,
        )
    return table


def _packaged_entry(name: str) -> dict[str, Any]:
    """The packaged default before anything registered it: it exists in every workspace."""
    return {
        "name": name,
        "kind": "packaged",
        "base": None,
        "lineage": [name],
        "path": None,
        "fingerprint": None,
        "produced_by": None,
        "created_at": None,
        "suite": None,
        "trainer": None,
        "steps": None,
    }


def _entry(r: dict[str, Any], rows: dict[str, Any]) -> dict[str, Any]:
    """A registered model (packaged, trained or served) as `models list` shows it."""
    info = r["info"]
    suite = info.get("suite")
    return {
        "name": r["name"],
        "kind": r["kind"],
        "base": r["base"],
        "lineage": lineage(r["name"], rows),
        "path": r["path"],
        "fingerprint": (r["fingerprint"] or "")[:16] or None,
        "produced_by": r["produced_by"],
        "created_at": r["created_at"],
        "suite": suite.get("name") if isinstance(suite, dict) else suite,
        "trainer": info.get("trainer"),
        "steps": info.get("steps"),
        **_served_fields(r),
    }


def _hub_entry(h: dict[str, Any]) -> dict[str, Any]:
    """A model named by Hub id (or an adapter on a Hub base) known from its runs: it is never
    registered, so its newest run says what it resolved to."""
    own = [s["id"] for s in h["hub"]]
    lineage = [h["name"]] + [i for i in own if i != h["name"].split("@")[0]][-1:]
    return {
        "name": h["name"],
        "kind": h["kind"],
        "base": lineage[1] if len(lineage) > 1 else None,
        "lineage": lineage,
        "path": None,
        "fingerprint": h["fingerprint"][:16],
        "produced_by": None,
        "created_at": h["first_run"],
        "suite": None,
        "trainer": None,
        "steps": None,
        "hub": h["hub"],
        "runs": h["runs"],
    }


def _served_fields(row: dict[str, Any]) -> dict[str, Any]:
    if row["kind"] != "served":
        return {}
    info = row["info"]
    return {
        "url": redact(str(info.get("url") or "")),  # a URL stored before credentials were refused
        "served_id": info.get("model"),
        "revision": info.get("revision"),
        "api_key_env": info.get("api_key_env"),
        "fingerprint_verified": False,
    }


@models_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="the name to use as a model spec")],
    url: Annotated[str, typer.Option("--url", help="API base, e.g. http://host:8000/v1")],
    model: Annotated[str, typer.Option("--model", help="the id the server serves it under")],
    api_key_env: Annotated[
        str | None,
        typer.Option("--api-key-env", help="environment variable holding the API key"),
    ] = None,
    revision: Annotated[
        str | None, typer.Option("--revision", help="weights revision (part of its identity)")
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=1024, help="requests in flight")
    ] = 16,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="seconds per request before a retry")
    ] = 300.0,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="ask the server for its models first")
    ] = True,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an OpenAI-compatible endpoint (vLLM, SGLang, TGI, llama.cpp, `transformers
    serve`) as a model. The API key is read from --api-key-env when requests are made; it is
    never stored."""
    from harness.evaluation.names import check_name
    from harness.generation.served import Endpoint, check_reachable, fingerprint, normalize_url

    check_name(name, "NAME", None)
    endpoint = Endpoint(normalize_url(url), model, api_key_env, revision, concurrency, timeout)
    listed = check_reachable(endpoint, name) if check else []
    if check and listed and model not in listed:
        err.print(
            f"[yellow]warning:[/] {escape(endpoint.url)} lists {', '.join(map(escape, listed))}, "
            f"not '{escape(model)}'"
        )
    with open_store(db) as store:
        existing = store.model(name)
        if existing and existing["kind"] != "served":
            raise UserError(f"'{name}' is already a {existing['kind']} model; pick another name")
        store.register_model(
            {
                "name": name,
                "spec": name,
                "path": None,
                "fingerprint": fingerprint(model, revision),
                "kind": "served",
                "base": None,
                "produced_by": None,
                "info": endpoint.info(),
                "created_at": time.time(),
            }
        )
    if as_json:
        print_json({"name": name, **endpoint.info(), "fingerprint_verified": False})
        return
    out.print(f"added [bold]{escape(name)}[/]: {escape(model)} at {escape(endpoint.url)}")


@models_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="a served model's name")],
    db: DbOption = None,
) -> None:
    """Forget a served model (its runs stay in the store)."""
    with open_store(db) as store:
        row = store.model(name)
        if row is None or row["kind"] != "served":
            raise UserError(f"no served model '{name}' (see `tuneval models list`)")
        store.remove_model(name)
    out.print(f"removed {escape(name)}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
