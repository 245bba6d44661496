"""The `echo` trainer, the worked example of a trainer plugin: it "trains" for a few steps by
copying the base model's files. No torch, no base class: a name, a description, a pydantic Config
and a train() method make a trainer. It imports one module of tuneval, `harness.plugin`.

Its pyproject.toml declares it under the entry-point group `tuneval.trainers`:

    [project.entry-points."tuneval.trainers"]
    echo = "tuneval_echo_trainer:trainer"
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from harness.plugin import Events, Stopped, TrainedModel, TrainRequest


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=3, ge=1)
    note: str = "echo"


class Echo:
    name = "echo"
    description = "copies the base model (a test plugin)"
    Config = Config

    def train(self, request: TrainRequest, events: Events) -> TrainedModel:
        cfg = request.config
        assert isinstance(cfg, Config)
        out = Path(request.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        curve = []
        for step in range(1, cfg.steps + 1):
            loss = 1.0 / step
            curve.append([step, loss])
            events.log(step, loss=loss, lr=request.hyperparameters.learning_rate)
            if step == 1:
                ckpt = out / "checkpoints" / "step-1"
                _copy(request.base.path, ckpt)
                events.checkpoint(step, ckpt)
            if events.should_stop():  # asked to stop: nothing to checkpoint in a copy
                raise Stopped(f"at step {step}")
        _copy(request.base.path, out)
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        facts = {"steps": cfg.steps, "note": cfg.note, "loss_curve": curve}
        return TrainedModel(out, "full", facts)


def _copy(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in Path(src).iterdir():
        if f.is_file():
            shutil.copy2(f, dst / f.name)


trainer = Echo()
