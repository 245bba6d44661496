"""Where trainers come from: built-ins named in code, third-party plugins through the entry-point
group `tuneval.trainers` (each entry point names a trainer object or a zero-argument factory).

Built-ins are listed as "module:attribute" strings and imported only when asked for, so
`tuneval trainers list` never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from harness.plugin import Trainer, UserError

GROUP = "tuneval.trainers"

BUILTINS: dict[str, str] = {
    "sft": "trainers.sft:trainer",
    "dpo": "trainers.dpo:trainer",
}


@dataclass(frozen=True)
class TrainerInfo:
    name: str
    source: str  # "built-in" or the distribution that provides it
    target: str  # module:attribute


def _plugins() -> dict[str, TrainerInfo]:
    found: dict[str, TrainerInfo] = {}
    for ep in entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        found.setdefault(ep.name, TrainerInfo(ep.name, dist, ep.value))
    return found


def available() -> dict[str, TrainerInfo]:
    """Every trainer by name; a built-in wins over a plugin of the same name."""
    out = {n: TrainerInfo(n, "built-in", t) for n, t in BUILTINS.items()}
    for name, info in _plugins().items():
        out.setdefault(name, info)
    return dict(sorted(out.items()))


def get(name: str) -> Trainer:
    infos = available()
    if name not in infos:
        raise UserError(f"unknown trainer '{name}'; available: {', '.join(infos) or 'none'}")
    target = infos[name].target
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise UserError(f"trainer '{name}' ({target}) does not load: {e}") from None
    if isinstance(obj, type) or (not isinstance(obj, Trainer) and callable(obj)):
        obj = obj()  # a class or factory
    if not isinstance(obj, Trainer):
        raise UserError(f"trainer '{name}' ({target}) lacks name, description, Config or train()")
    return obj
