"""An axolotl plugin: `plugins: [harness.integrations.axolotl.TunevalPlugin]` in the YAML.

axolotl reads the plugin's own keys through the pydantic model `get_input_args` names, adds the
callbacks `add_callbacks_post_trainer(cfg, trainer)` returns once the trainer exists, and calls
`post_train(cfg, model)` when training is done (the hooks of `axolotl.integrations.base.
BasePlugin`, which the lm-eval plugin shipped with axolotl uses the same way). The plugin adds a
`TunevalCallback` and, after training, prints the paired comparison of the last point with the
base. axolotl is optional: without it the plugin is a plain class with the same hooks.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel


def _base_plugin() -> Any:
    """axolotl's BasePlugin where axolotl is installed (it pins its own torch, so tuneval does
    not depend on it, and imports it by name only here), else a plain base."""
    try:
        return importlib.import_module("axolotl.integrations.base").BasePlugin
    except ImportError:
        return object


BasePlugin = _base_plugin()


class TunevalArgs(BaseModel):
    """The plugin's keys in the axolotl YAML."""

    tuneval_suite: str | None = None
    tuneval_every: str | int = "save"
    tuneval_limit: int | None = None
    tuneval_prompt: str = ""
    tuneval_db: str | None = None
    tuneval_gate: bool = False
    tuneval_stop_on_regression: bool = False


class TunevalPlugin(BasePlugin):  # type: ignore[misc, valid-type]
    def __init__(self) -> None:
        self.callback: Any = None

    def get_input_args(self) -> str:
        return "harness.integrations.axolotl.TunevalArgs"

    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list[Any]:
        args = _args(cfg)
        if not args.tuneval_suite:
            return []
        from harness.integrations.hf import TunevalCallback

        every: str | int = args.tuneval_every
        if isinstance(every, str) and every.isdigit():
            every = int(every)
        self.callback = TunevalCallback(
            args.tuneval_suite, every=every, limit=args.tuneval_limit,
            prompt=args.tuneval_prompt, db=args.tuneval_db, gate=args.tuneval_gate,
            stop_on_regression=args.tuneval_stop_on_regression, trainer=trainer,
        )  # fmt: skip
        return [self.callback]

    def post_train(self, cfg: Any, model: Any) -> None:
        """The last point against the base, as `tuneval compare` prints it."""
        cb = self.callback
        if cb is None or cb.train_run is None:
            return
        from harness.comparison.curve import build_curve
        from harness.store import Store

        with Store(cb.db, readonly=True) as store:
            curve = build_curve(store, cb.train_run, cb.alpha)
        from rich.console import Console

        from harness.comparison.curve import print_curve

        print_curve(curve, Console(highlight=False))

    def post_train_unload(self, cfg: Any) -> None:
        return None


def _args(cfg: Any) -> TunevalArgs:
    """The plugin's keys from axolotl's config (a dict with attribute access)."""
    keys = TunevalArgs.model_fields
    values = {k: cfg.get(k) for k in keys if cfg.get(k) is not None}
    return TunevalArgs.model_validate(values)
