"""A promptfoo CSV test row as promptfoo reads it (src/csv.ts): columns are variables, except
`__expected*` (assertion strings), `__threshold`, `__description`, `__metric`, `__prefix`,
`__suffix`, `__metadata:key` (and `key[]` lists) and `__config:__expectedN:threshold`."""

from __future__ import annotations

import re
from typing import Any

# promptfoo matches "type:value" against every assertion type it knows; these are the ones whose
# value parsing differs. Any other known type keeps its trimmed value.
_ARRAY = {"contains-all", "contains-any", "icontains-all", "icontains-any"}
_RAW = {"contains-json", "is-json"}
_TYPES = sorted(
    {
        "equals", "contains", "icontains", "contains-all", "contains-any", "icontains-all",
        "icontains-any", "starts-with", "regex", "is-json", "contains-json", "javascript",
        "python", "ruby", "webhook", "llm-rubric", "model-graded-closedqa", "factuality",
        "model-graded-factuality", "similar", "levenshtein", "rouge-n", "bleu", "classifier",
        "moderation", "answer-relevance", "context-recall", "context-relevance",
        "context-faithfulness", "latency", "cost", "perplexity", "perplexity-score",
        "is-valid-openai-function-call", "is-valid-openai-tools-call", "is-xml", "contains-xml",
        "is-sql", "contains-sql", "is-html", "contains-html", "word-count", "finish-reason",
        "g-eval", "is-refusal", "meteor", "gleu", "pi", "guardrails", "select-best",
    },
    key=len,
    reverse=True,
)  # fmt: skip
_ASSERTION = re.compile(
    rf"^(not-)?({'|'.join(map(re.escape, _TYPES))})(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$"
)


def assertion_from_string(expected: str) -> dict[str, Any]:
    """promptfoo's assertionFromString: "contains:Paris", "not-regex:^A", or plain equals."""
    for prefix, kind in (("javascript:", "javascript"), ("fn:", "javascript"),
                         ("eval:", "javascript"), ("python:", "python")):  # fmt: skip
        if expected.startswith(prefix):
            return {"type": kind, "value": expected[len(prefix) :].strip()}
    for prefix in ("grade:", "llm-rubric:"):
        if expected.startswith(prefix):
            return {"type": "llm-rubric", "value": expected[len(prefix) :]}
    if expected.startswith("file://") and (".py" in expected or expected.endswith((".js", ".ts"))):
        return {"type": "python" if ".py" in expected else "javascript", "value": expected}
    m = _ASSERTION.match(expected)
    if not m:
        return {"type": "equals", "value": expected}
    negate, kind, _threshold, value = m.groups()
    full = f"not-{kind}" if negate else kind
    if kind in _ARRAY:
        return {"type": full, "value": [v.strip() for v in value.split(",")] if value else value}
    if kind in _RAW:
        return {"type": full, "value": value}
    return {"type": full, "value": value.strip() if value is not None else None}


_FLOAT_PREFIX = re.compile(r"^[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


def js_parse_float(text: str) -> float:
    """JavaScript's parseFloat: the longest number at the start ("0.5x" is 0.5), else NaN."""
    m = _FLOAT_PREFIX.match(text.lstrip())
    return float(m.group(0).replace("Infinity", "inf")) if m else float("nan")


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    asserts: list[dict[str, Any]] = []
    options: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    test: dict[str, Any] = {}
    for key, value in row.items():
        key, value = (key or "").strip(), value or ""
        if key.startswith("__expected"):
            if value.strip():
                asserts.append(assertion_from_string(value.strip()))
        elif key in ("__prefix", "__suffix"):
            options[key[2:]] = value
        elif key == "__description":
            test["description"] = value
        elif key == "__threshold":
            threshold = js_parse_float(value)
            if threshold == threshold and threshold:  # promptfoo drops 0 and NaN here
                test["threshold"] = threshold
        elif key.startswith("__metadata:"):
            name = key[len("__metadata:") :]
            if name.endswith("[]") and value.strip():
                parts = re.split(r"(?<!\\),", value)
                metadata[name[:-2]] = [p.strip().replace("\\,", ",", 1) for p in parts]
            elif value.strip():
                metadata[name] = value
        elif key in ("__metric", "__providerOutput", "__metadata") or key.startswith("__config:"):
            continue  # names a score, or supplies an output: no effect on pass/fail here
        else:
            variables[key] = value
    return {"vars": variables, "assert": asserts, "options": options, "metadata": metadata,
            **test}  # fmt: skip
