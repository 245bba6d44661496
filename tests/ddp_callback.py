"""Run by `torchrun --nproc_per_node 2` in test_integrations: a real Trainer under DDP (gloo) with
the callback; each rank writes the step it stopped at to OUT/rank-N.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from harness.integrations import TunevalCallback
from tests import hf_helpers as H

model_dir, suite, out, db = (Path(a) for a in sys.argv[1:5])
cb = TunevalCallback(suite, every="eval", db=db, stop_on_regression=True)
t = H.trainer(model_dir, suite, out / "run", [cb], per_device_train_batch_size=3,
              eval_strategy="steps", eval_steps=2, max_steps=12, ddp_backend="gloo")  # fmt: skip
cb.trainer = t
t.train()
rank = os.environ.get("RANK", "0")
logged = [r["tuneval/pass_rate"] for r in t.state.log_history if "tuneval/pass_rate" in r]
(out / f"rank-{rank}.json").write_text(json.dumps({"step": t.state.global_step, "pass": logged}))
