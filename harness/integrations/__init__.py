"""tuneval inside training that runs elsewhere.

- `TunevalCallback` (`harness.integrations.hf`): a `transformers.TrainerCallback` for any
  Trainer (TRL's SFTTrainer and DPOTrainer, axolotl, unsloth): the base at train begin, the live
  model at each evaluation, save or N steps, stored as checkpoint runs of one training run.
- `TunevalPlugin` (`harness.integrations.axolotl`): the same for an axolotl YAML
  (`plugins: [harness.integrations.axolotl.TunevalPlugin]`).

Imported lazily: `import harness.integrations` loads neither torch nor transformers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TunevalCallback", "TunevalPlugin"]


def __getattr__(name: str) -> Any:
    if name == "TunevalCallback":
        from harness.integrations.hf import TunevalCallback

        return TunevalCallback
    if name == "TunevalPlugin":
        from harness.integrations.axolotl import TunevalPlugin

        return TunevalPlugin
    raise AttributeError(name)
