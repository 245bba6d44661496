"""Build the module-routing suite: from a function's name and docstring summary, name its module.

    python suites/module-routing/build.py       # rewrites test/train/validation.jsonl, build.json

Uses the python-docs extraction (same modules, same summaries) and the same split by function, so a
function held out of one suite is held out of both.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def python_docs_build() -> ModuleType:
    path = HERE.parent / "python-docs" / "build.py"
    spec = importlib.util.spec_from_file_location("python_docs_build", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it is executing
    spec.loader.exec_module(module)
    return module


def gives_it_away(module: str, summary: str) -> bool:
    """The summary names the module ("... the os.path module"): nothing left to route."""
    parts = {module, *module.split(".")}
    return any(re.search(rf"(?<![\w.]){re.escape(p)}(?![\w])", summary) for p in parts)


def main() -> None:
    pd = python_docs_build()
    entries = [e for e in pd.extract() if not gives_it_away(e.module, e.summary)]
    rows: dict[str, list[dict[str, str]]] = {"test": [], "train": [], "validation": []}
    for e in entries:
        rows[pd.split_of(e.function)].append(
            {
                "id": e.function,
                "module": e.module,
                "function": e.function,
                "name": e.name,
                "kind": e.kind,
                "summary": e.summary,
            }
        )
    for split, data in rows.items():
        pd.write_jsonl(HERE / f"{split}.jsonl", data)
    info = pd.build_info(entries, {k: len(v) for k, v in rows.items()})
    info["excluded"] = "summaries that name their own module"
    (HERE / "build.json").write_text(json.dumps(info, indent=2) + "\n", "utf-8")
    print(json.dumps({k: v for k, v in info.items() if k != "modules"}, indent=2))


if __name__ == "__main__":
    main()
