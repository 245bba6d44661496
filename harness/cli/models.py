"""tuneval models list"""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from harness.cli import DbOption, JsonOption, open_store, out, print_json

models_app = typer.Typer(
    help="Models: the packaged default and the candidates you trained.", no_args_is_help=True
)


def lineage(name: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    """The model, its base, the base's base, ... (stops at unregistered names and cycles)."""
    chain = [name]
    while (row := rows.get(chain[-1])) and row["base"] and row["base"] not in chain:
        chain.append(row["base"])
    return chain


@models_app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every known model with its lineage: packaged default first, then candidates, oldest first."""
    from harness.models import DEFAULT_MODEL

    with open_store(db) as store:
        rows = {r["name"]: r for r in store.models()}
    listed: list[dict[str, Any]] = []
    if DEFAULT_MODEL not in rows:
        listed.append(
            {
                "name": DEFAULT_MODEL,
                "kind": "packaged",
                "base": None,
                "lineage": [DEFAULT_MODEL],
                "path": None,
                "fingerprint": None,
                "produced_by": None,
                "created_at": None,
                "suite": None,
                "trainer": None,
                "steps": None,
            }
        )
    for r in sorted(rows.values(), key=lambda r: (r["kind"] != "packaged", r["created_at"])):
        info = r["info"]
        suite = info.get("suite")
        listed.append(
            {
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
            }
        )
    if as_json:
        print_json(listed)
        return
    table = Table("model", "kind", "lineage", "trained on", "train run", "created")
    for m in listed:
        when = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(m["created_at"]))
            if m["created_at"]
            else ""
        )
        trained = f"{m['suite']} · {m['trainer']} · {m['steps']} steps" if m["trainer"] else ""
        table.add_row(
            escape(m["name"]),
            m["kind"],
            escape(" ← ".join(m["lineage"])),
            escape(trained),
            m["produced_by"] or "",
            when,
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
