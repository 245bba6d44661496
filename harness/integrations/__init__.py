"""tuneval inside training that runs elsewhere.

- `TunevalCallback` (`harness.integrations.hf`): a `transformers.TrainerCallback` for any
  Trainer (TRL's SFTTrainer and DPOTrainer, axolotl, unsloth): the base at train begin, the live
  model at each evaluation, save or N steps, stored as checkpoint runs of one training run;
  `gate=True` gates the model training ends with against the base (`GateResult`, and
  `GateFailed` raised when it fails).
- `TunevalPlugin` (`harness.integrations.axolotl`): the same for an axolotl YAML
  (`plugins: [harness.integrations.axolotl.TunevalPlugin]`).

Imported lazily: `import harness.integrations` loads neither torch nor transformers.

May import: harness.errors, harness.progress, harness.store, harness.suite, harness.generation,
harness.grading, harness.comparison, harness.evaluation, harness.training (never harness.cli).
"""

from __future__ import annotations

from typing import Any

__all__ = ["GateFailed", "GateResult", "TunevalCallback", "TunevalPlugin"]


def __getattr__(name: str) -> Any:
    if name in ("TunevalCallback", "GateFailed", "GateResult"):
        from harness.integrations import hf

        return getattr(hf, name)
    if name == "TunevalPlugin":
        from harness.integrations.axolotl import TunevalPlugin

        return TunevalPlugin
    raise AttributeError(name)
