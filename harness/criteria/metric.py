"""`metric`: any Hugging Face `evaluate` metric, with its arguments and a threshold.

```yaml
- {id: overlap, type: metric, metric: ./metrics/word_overlap, reference: "{answer}",
   key: overlap, min: 0.5, args: {lowercase: true}}
```

`metric` is what `evaluate.load()` takes: a local module (a `.py` file, or a folder holding
`<name>/<name>.py`, named by its path inside the suite folder) or a metric name. Named metrics
are scripts on the Hugging Face Hub, and tuneval never reaches a hub: a name loads only from
evaluate's cache, warmed beforehand with network access; the error says so.

Either way the metric is Python code that runs when it loads, and suites are data: a suite that
uses `metric` (in its rubric, inside `weighted`, or in a case's own checks) is refused unless the
user passes `--trust-suite-code`. A local module's files (the folder, or the `.py` file and the
`.py` files beside it, which it may import) are part of the suite fingerprint.

Each case gets its own figure: the batch is computed at once when the metric returns one value
per prediction (`key` then names a list), else one case at a time. The figure is stored as the
result's score on the metric's own scale; `min`/`max` decide the pass.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.criteria import Case, Result, Scorer, context, criterion
from harness.errors import UserError
from harness.safe.templating import fill

_lock = threading.Lock()
_loaded: dict[tuple[str, str | None], Any] = {}


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or spec.startswith((".", "/", "~")) or "/" in spec


def _check_spec(spec: str) -> None:
    """A local module is named by a relative path that stays inside the suite folder."""
    if not _is_path(spec):
        return
    path = Path(spec)
    if spec.startswith(("/", "~")) or path.is_absolute() or ".." in path.parts:
        raise ValueError(
            f"metric '{spec}': a local module is a path inside the suite folder "
            "(no absolute paths, '~' or '..')"
        )


def module_files(params: Mapping[str, Any], folder: Path) -> list[Path]:
    """The files of the local module a `metric` names (none for a metric name): what it runs."""
    spec = params.get("metric")
    if not isinstance(spec, str) or not _is_path(spec):
        return []
    path = folder / spec
    if path.is_dir():
        inside = (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        return sorted(inside)
    if path.is_file():  # evaluate copies the local modules it imports from beside it
        return [path, *sorted(p for p in path.parent.glob("*.py") if p != path)]
    return [path]  # the loader says it is missing


def load_metric(spec: str, config: str | None, suite_path: Path | None) -> Any:
    """The evaluate module a spec names, loaded once per process."""
    target = spec
    if _is_path(spec):
        _check_spec(spec)
        if suite_path is None:
            raise UserError(f"metric '{spec}': a local module is read from a suite folder")
        path = suite_path / spec
        if not path.resolve().is_relative_to(suite_path.resolve()):
            raise UserError(f"metric '{spec}': the module is outside the suite folder")
        if not path.exists():
            raise UserError(f"metric module {path} not found (metric: {spec})")
        target = str(path.resolve())
    with _lock:
        key = (target, config)
        if key not in _loaded:
            os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")  # read when evaluate imports
            import evaluate

            try:
                _loaded[key] = evaluate.load(target, config)
            except Exception as e:  # evaluate raises FileNotFoundError, ConnectionError, ...
                hint = (
                    ""
                    if _is_path(spec)
                    else "; evaluate's metric scripts live on the Hugging Face Hub and tuneval "
                    "works offline: give a local module path, or warm evaluate's cache by "
                    f"loading '{spec}' once where the hub is reachable"
                )
                raise UserError(
                    f"metric '{spec}' does not load ({type(e).__name__}: {e}){hint}"
                ) from None
        return _loaded[key]


def _figure(result: Any, key: str | None, spec: str) -> Any:
    if not isinstance(result, dict):
        raise UserError(f"metric '{spec}' returned {type(result).__name__}, not a dict of figures")
    if key is None:
        figures = [k for k, v in result.items() if isinstance(v, int | float | list)]
        if len(figures) != 1:
            raise UserError(
                f"metric '{spec}' returns several figures ({', '.join(result)}): choose one "
                "with key:"
            )
        key = figures[0]
    if key not in result:
        raise UserError(f"metric '{spec}' has no figure '{key}' (it returns {', '.join(result)})")
    return result[key]


@criterion("metric", runs_code="runs an `evaluate` metric module", reads=module_files)
def metric(
    metric: str,
    min: float | None = None,
    max: float | None = None,
    key: str | None = None,
    reference: str | list[str] | None = None,
    args: dict[str, Any] = {},  # noqa: B006
    config: str | None = None,
) -> Scorer:
    """A Hugging Face `evaluate` metric per case (local module or cached name), with a threshold."""
    if min is None and max is None:
        raise ValueError("set min or max: the figure a passing output reaches")
    _check_spec(metric)
    lo, hi = min, max

    def refs(case: Case) -> Any:
        if isinstance(reference, list):
            return [fill(r, case) for r in reference]
        return fill(reference or "", case)

    def compute(module: Any, outputs: Sequence[str], cases: Sequence[Case]) -> Any:
        kw: dict[str, Any] = {"predictions": list(outputs), **args}
        if reference is not None:
            kw["references"] = [refs(c) for c in cases]
        try:
            return _figure(module.compute(**kw), key, metric)
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"metric '{metric}' failed: {type(e).__name__}: {e}") from None

    def scorer(outputs: Sequence[str], cases: Sequence[Case]) -> list[Result]:
        module = load_metric(metric, config, context().suite_path)
        batch = compute(module, outputs, cases)
        if isinstance(batch, list | tuple) and len(batch) == len(outputs):
            values = list(batch)
        else:  # an aggregate figure: one case at a time gives each its own
            values = []
            for o, c in zip(outputs, cases, strict=True):
                v = compute(module, [o], [c])
                values.append(v[0] if isinstance(v, list | tuple) and len(v) == 1 else v)
        results = []
        for v in values:
            if not isinstance(v, int | float) or math.isnan(float(v)):
                results.append(Result(False, None, f"{metric}: no figure ({v!r})"))
                continue
            value = float(v)
            ok = (lo is None or value >= lo) and (hi is None or value <= hi)
            bound = f"< {lo:g}" if lo is not None and value < lo else ""
            bound = bound or (f"> {hi:g}" if hi is not None and value > hi else "within bounds")
            results.append(Result(ok, round(value, 6), f"{key or metric} {value:.4g} {bound}"))
        return results

    return scorer
