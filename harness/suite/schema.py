"""suite.yaml's schema: the pydantic models a suite file is validated against (prompt, variants,
generation, data, rubric). Reading the file and checking it against its data is the loader's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.suite import splits as suite_datasets
from harness.suite.splits import Source


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_yes_no_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """`shots: true` is a slip, not 1: pydantic would read a YAML yes/no as a number."""
        field_name = info.field_name or ""
        if isinstance(v, bool) and _numeric(cls.model_fields[field_name].annotation):
            raise ValueError(f"{str(v).lower()} is a yes/no value; {field_name} is a number")
        return v


def _numeric(annotation: Any) -> bool:
    """An int or float field (or one of these or None) that takes no bool."""
    args = get_args(annotation) or (annotation,)
    return bool not in args and any(a in (int, float) for a in args)


class VariantSpec(_Strict):
    """Another prompt for the same cases: k worked examples and/or other system or user text."""

    shots: int = Field(default=0, ge=0, le=64, description="examples shown before each case")
    split: str = Field(default="train", description="where the examples come from")
    seed: int = Field(default=0, description="chooses the examples, once for every case")
    system: str | None = Field(default=None, description="replaces prompt.system ('' drops it)")
    user: str | None = Field(default=None, description="replaces prompt.user")


class PromptSpec(_Strict):
    system: str | None = None
    user: str | None = None
    messages: str | None = Field(
        default=None,
        description="a case field holding the whole conversation, a list of {role, content} "
        "ending with the user's turn: used instead of system and user",
    )
    assistant: str | None = Field(
        default=None, description="the target answer, used for training data and as the reference"
    )
    variants: dict[str, VariantSpec] = Field(
        default={}, description="prompt-engineering baselines, by name (`eval --prompt NAME`)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> PromptSpec:
        if self.messages is not None and (self.user is not None or self.system is not None):
            raise ValueError("give either messages (a case field) or system and user templates")
        if self.messages is None and self.user is None:
            raise ValueError("a prompt needs a user template (or messages, a case field)")
        return self


class GenerationSpec(_Strict):
    max_new_tokens: int = Field(default=128, ge=1, le=8192)
    stop: list[str] = []
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = 0
    samples: int = Field(default=1, ge=1, le=1000, description="answers drawn per case")

    @model_validator(mode="after")
    def _sampled(self) -> GenerationSpec:
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(
                f"samples: {self.samples} needs temperature > 0 (greedy answers all repeat)"
            )
        return self


class DataSpec(_Strict):
    """Each split: a JSONL file in the suite folder, another data file (Parquet, CSV, JSON, Arrow)
    or a mapping: {file: ..., columns: ..., id: ...} or {hf: org/name, config, split, revision,
    columns, id} (`harness.suite.splits`)."""

    test: Source | None = None
    train: Source | None = None
    validation: Source | None = None

    @field_validator("test", "train", "validation", mode="before")
    @classmethod
    def _source(cls, v: Any) -> Any:
        """One message per problem, not one per member of the union."""
        if v is None or isinstance(v, str):
            return v
        if not isinstance(v, dict):
            raise ValueError("a data file name, or a mapping {file: ...} or {hf: org/name, ...}")
        try:
            return suite_datasets.DatasetSplit.model_validate(v)
        except ValidationError as e:
            err = e.errors()[0]
            at = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "string_pattern_mismatch" and at == "hf":
                msg = f"'{err['input']}' is not a Hub dataset id (org/name)"
            raise ValueError(f"{at}: {msg}" if at else msg) from None

    def label(self, folder: Path, split: str) -> str:
        """How a problem with this split's rows names it ('' for a split not given)."""
        source = getattr(self, split)
        return "" if source is None else suite_datasets.label(folder, source, split)


class CriterionSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1)
    type: str = Field(min_length=1)

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RubricSpec(_Strict):
    bad: list[CriterionSpec] = []
    good: list[CriterionSpec] = []
    better: list[CriterionSpec] = []

    def sections(self) -> list[tuple[str, list[CriterionSpec]]]:
        return [("bad", self.bad), ("good", self.good), ("better", self.better)]


class SuiteSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: int = Field(ge=1, strict=True)  # `version: yes` is not 1
    description: str = ""
    prompt: PromptSpec | None = None
    generation: GenerationSpec = GenerationSpec()
    data: DataSpec = DataSpec()
    rubric: RubricSpec = RubricSpec()
    lm_eval: list[str] = Field(default=[], description="lm-eval task YAML files in this folder")
    slices: list[str] = Field(default=[], description="case fields the report offers first")

    @field_validator("lm_eval")
    @classmethod
    def _yaml_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not name.endswith((".yaml", ".yml")):
                raise ValueError(f"'{name}' is not a .yaml file")
        return v
