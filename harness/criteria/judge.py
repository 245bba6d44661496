"""`judge`: a model grades the output against a rubric prompt, by constrained choice.

```yaml
- id: correct
  type: judge
  model: smollm2-135m-instruct        # any model spec: packaged, a folder, a served endpoint
  prompt: |
    Question: {question}
    Reference answer: {reference}
    Submitted answer: {output}
    Does the submitted answer say what the reference says?
  reference: "{answer}"
  choices: {yes: 1.0, no: 0.0}        # the allowed answers and what each is worth
  min: 0.5                            # passes when the expected worth reaches this
```

`{output}` is the model's answer, `{reference}` the filled `reference` template, any other
`{field}` comes from the case. A line naming the choices is appended to the prompt. The score is
the expected worth under the judge's distribution over the choices (see `harness.grading.judges`);
the result's `info` keeps the judge, its choice and the distribution, which the report compares with
human labels. The model is resolved and loaded on the first score, never when a suite loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from harness.criteria import Case, Result, Scorer, context, criterion
from harness.safe.templating import fill, placeholders


def instruction(choices: Sequence[str]) -> str:
    return "Answer with exactly one of: " + ", ".join(choices) + "."


def judge_messages(
    prompt: str, output: str, case: Case, reference: str | None, system: str | None,
    choices: Sequence[str],
) -> list[dict[str, str]]:  # fmt: skip
    values = {**case, "output": output}
    if reference is not None:
        values["reference"] = fill(reference, case)
    text = fill(prompt, values).rstrip() + "\n\n" + instruction(choices)
    messages = [{"role": "system", "content": fill(system, case)}] if system else []
    return [*messages, {"role": "user", "content": text}]


@criterion("judge", provides=("output", "reference"))
def judge(
    model: Annotated[str, Field(min_length=1)],
    prompt: Annotated[str, Field(min_length=1)],
    reference: str | None = None,
    system: str | None = None,
    choices: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = {"yes": 1.0, "no": 0.0},  # noqa: B006
    min: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5,
) -> Scorer:
    """A judge model grades the output against a rubric prompt (constrained choice)."""
    if "output" not in placeholders(prompt):
        raise ValueError("prompt must show the answer to judge: put {output} in it")
    if "reference" in placeholders(prompt) and reference is None:
        raise ValueError("prompt uses {reference}: set reference, such as reference: '{answer}'")
    if len(choices) < 2 or any(not c.strip() for c in choices):
        raise ValueError("choices needs at least two non-empty answers")
    names = list(choices)
    threshold = min

    def scorer(outputs: Sequence[str], cases: Sequence[Case]) -> list[Result]:
        ctx = context()
        if ctx.judges is None:
            raise RuntimeError("a judge criterion scores inside a grader (harness.grading.grader)")
        j = ctx.judges(model)
        prompts = [
            judge_messages(prompt, o, c, reference, system, names)
            for o, c in zip(outputs, cases, strict=True)
        ]
        results = []
        for v in j.choose(prompts, names):
            info: dict[str, Any]
            if v.probs is None:
                info = {"judge": model, "choice": None, "probs": None}
                results.append(Result(False, None, f"judge failed: {v.error}", info))
                continue
            score = sum(p * choices[c] for c, p in v.probs.items())
            top = v.choice or ""
            op = ">=" if score >= threshold else "<"
            detail = f"judge: {top} (p={v.probs[top]:.2f}), worth {score:.2f} {op} {threshold:g}"
            info = {"judge": model, "choice": top, "probs": v.probs}
            results.append(Result(score >= threshold, round(score, 4), detail, info))
        return results

    return scorer
