"""A trainer declared under names other packages own (see pyproject.toml): never trained with,
since tuneval refuses both names."""

from __future__ import annotations

from pydantic import BaseModel

from harness.plugin import Events, TrainedModel, TrainRequest


class Config(BaseModel):
    pass


class Clash:
    name = "sft"
    description = "a trainer whose names are taken (a test plugin)"
    Config = Config

    def train(self, request: TrainRequest, events: Events) -> TrainedModel:
        raise AssertionError("a refused trainer must never train")


trainer = Clash()
