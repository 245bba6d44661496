"""Where trainers come from: built-ins named in code, third-party plugins through the entry-point
group `tuneval.trainers` (each entry point names a trainer object or a zero-argument factory).
A trainer name that two packages declare (a plugin reusing a built-in's) is refused, as
`harness.extensions` rules for every extension point: `tuneval trainers list` shows why and
`--trainer NAME` exits 2 with that line.

Built-ins are listed as "module:attribute" strings and imported only when asked for, so
`tuneval trainers list` never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from harness.extensions import BUILTIN, TRAINERS, Entry, Names, entries
from harness.plugin import Trainer, UserError

BUILTINS: dict[str, str] = {
    "sft": "trainers.sft:trainer",
    "dpo": "trainers.dpo:trainer",
}


@dataclass(frozen=True)
class TrainerInfo:
    name: str
    source: str  # "built-in" or the distribution that provides it
    target: str  # module:attribute
    refused: str = ""  # why the name may not be used (two packages declare it), "" if it may


def available() -> dict[str, TrainerInfo]:
    """Every trainer by name, a refused one with the reason."""
    names: Names[TrainerInfo] = Names(TRAINERS)
    for name, target in BUILTINS.items():
        names.claim(name, BUILTIN, TrainerInfo(name, "built-in", target))
    for e in entries(TRAINERS):
        names.claim(e.name, e.source, TrainerInfo(e.name, e.source, e.target))
    return {n: replace(info, refused=names.refused(n)) for n, info in names.all().items()}


def get(name: str) -> Trainer:
    infos = available()
    if name not in infos:
        raise UserError(f"unknown trainer '{name}'; available: {', '.join(infos) or 'none'}")
    if infos[name].refused:
        raise UserError(infos[name].refused)
    target = infos[name].target
    try:
        obj: Any = Entry(name, target, infos[name].source).load()
    except (ImportError, AttributeError) as e:
        raise UserError(f"trainer '{name}' ({target}) does not load: {e}") from None
    if isinstance(obj, type) or (not isinstance(obj, Trainer) and callable(obj)):
        obj = obj()  # a class or factory
    if not isinstance(obj, Trainer):
        raise UserError(f"trainer '{name}' ({target}) lacks name, description, Config or train()")
    return obj
