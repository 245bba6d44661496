"""Training data from plain text: passages become question/answer pairs, by a template or a model.

`tuneval data synth SOURCE... --suite S --out FILE [--model SPEC]`, step by step:

1. read: Markdown, reStructuredText and plain text are cut into sections at headings (a section's
   prose paragraphs, code blocks left out); a Python file gives its docstrings (module, public
   classes, functions and methods), parsed with `ast`, never imported. Folders are read
   recursively.
2. make pairs. Template: a titled passage becomes "What does f() do?" (functions), "What is C?"
   (classes), "What is the m module for?" (modules) or "What does the documentation say about
   <heading>?" (sections), answered by its first sentences; untitled passages are skipped. Model:
   the model reads each passage and writes "Q: ... A: ..."; answers that do not parse are dropped.
   Model answers go through the generation cache, so a rerun costs nothing.
3. dedupe: a pair whose prompt (the suite's user template filled from it) repeats an earlier pair
   or a training row, after normalizing case and punctuation.
4. leakage: a pair whose prompt matches a test prompt exactly or nearly (`tuneval data check`'s
   rule, character 5-gram Jaccard >= 0.8) is dropped.
5. write JSONL rows `{"question", "answer", "source": "generated", "origin": "file:line"}`.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.safe.templating import placeholders
from harness.suite.leakage import NEAR_THRESHOLD, near_matches, normalize, prompt_texts
from harness.suite.loader import Suite

TEXT_SUFFIXES = (".md", ".markdown", ".rst", ".txt")
FIELDS = {"question", "answer"}
MAX_ANSWER_WORDS = 60
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`\"'(])")
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_RST_RULE = re.compile(r"^([=\-~^\"'`#*+])\1{2,}\s*$")
_QA = re.compile(r"Q:\s*(.+?)\s*\n\s*A:\s*(.+)", re.DOTALL)


@dataclass(frozen=True)
class Passage:
    title: str | None
    text: str
    origin: str  # file:line
    kind: str  # section | function | class | module


# --- reading ------------------------------------------------------------------------------------


def source_files(sources: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for s in sources:
        path = Path(s)
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix in (*TEXT_SUFFIXES, ".py")
            )
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    return files


def read_passages(sources: Sequence[str | Path]) -> list[Passage]:
    out: list[Passage] = []
    for f in source_files(sources):
        try:
            text = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as e:
            raise UserError(f"{f}: cannot read as UTF-8 text ({e})") from None
        out += docstrings(text, f) if f.suffix == ".py" else sections(text, f)
    return out


def sections(text: str, path: Path) -> list[Passage]:
    """Heading-led sections of Markdown, reStructuredText or plain text, prose only; text before
    any heading gives one untitled passage per paragraph."""
    lines = text.splitlines()
    out: list[Passage] = []
    title: str | None = None
    start, fence = 1, False
    body: list[str] = []

    def flush() -> None:
        if body:
            out.append(Passage(title, " ".join(body), f"{path}:{start}", "section"))
        body.clear()

    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith(("```", "~~~")):
            fence = not fence
            continue
        if fence or _RST_RULE.match(s):  # code, and the rules under and over rst headings
            continue
        below = lines[i + 1].strip() if i + 1 < len(lines) else ""
        md = _MD_HEADING.match(s)
        if md or (s and _RST_RULE.match(below) and len(below) >= len(s)):
            flush()
            title, start = (md.group(1) if md else s), i + 1
        elif line.startswith(("    ", "\t")) or s.startswith((">>>", "..")):
            continue  # indented code, doctests, rst directives
        elif not s:
            if title is None:
                flush()
        else:
            if not body and title is None:
                start = i + 1
            body.append(s)
    flush()
    return out


def docstrings(text: str, path: Path) -> list[Passage]:
    try:
        tree = ast.parse(text)
    except SyntaxError as e:
        raise UserError(f"{path}:{e.lineno}: not valid Python ({e.msg})") from None
    out: list[Passage] = []

    def add(node: Any, title: str, kind: str) -> None:
        doc = ast.get_docstring(node)
        if doc:
            first = inspect.cleandoc(doc).split("\n\n")[0]
            line = getattr(node, "lineno", 1)
            out.append(Passage(title, " ".join(first.split()), f"{path}:{line}", kind))

    def public(nodes: list[ast.stmt]) -> list[Any]:
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        return [n for n in nodes if isinstance(n, kinds) and not n.name.startswith("_")]

    add(tree, path.stem, "module")
    for node in public(tree.body):
        if isinstance(node, ast.ClassDef):
            add(node, node.name, "class")
            for sub in public(node.body):
                if not isinstance(sub, ast.ClassDef):
                    add(sub, f"{node.name}.{sub.name}", "function")
        else:
            add(node, node.name, "function")
    return out


# --- making pairs -------------------------------------------------------------------------------

QUESTIONS = {
    "function": "What does {title}() do?",
    "class": "What is {title}?",
    "module": "What is the {title} module for?",
    "section": "What does the documentation say about {title}?",
}


def first_sentences(text: str, max_words: int = MAX_ANSWER_WORDS) -> str:
    out: list[str] = []
    for sentence in _SENTENCE.split(text.strip()):
        if out and len(" ".join(out + [sentence]).split()) > max_words:
            break
        out.append(sentence)
    return " ".join(out)


def template_pair(p: Passage) -> dict[str, str] | None:
    if not p.title:
        return None
    return {"question": QUESTIONS[p.kind].format(title=p.title), "answer": first_sentences(p.text)}


def model_prompt(p: Passage) -> list[dict[str, str]]:
    heading = f" (from '{p.title}')" if p.title else ""
    return [
        {"role": "system", "content": "You write question and answer pairs for training data."},
        {
            "role": "user",
            "content": f"Passage{heading}:\n{p.text}\n\nWrite one question a user might ask that "
            "this passage answers, then the answer in one or two sentences, exactly as:\n"
            "Q: <question>\nA: <answer>",
        },
    ]


def parse_pair(text: str) -> dict[str, str] | None:
    m = _QA.search(text)
    if not m:
        return None
    question = " ".join(m.group(1).split())
    answer = " ".join(m.group(2).split("\n\n")[0].split())
    return {"question": question, "answer": answer} if question and answer else None


# --- the pipeline -------------------------------------------------------------------------------


def check_suite(suite: Suite) -> None:
    prompt = suite.spec.prompt
    if prompt is None or prompt.assistant is None:
        raise UserError(f"suite '{suite.name}' has no prompt.assistant to train on")
    used = {n for t in (prompt.system, prompt.user, prompt.assistant) if t for n in placeholders(t)}
    if not used <= FIELDS:
        raise UserError(
            f"suite '{suite.name}' builds its prompt from {', '.join(sorted(used - FIELDS))}: "
            "data synth writes only question and answer, so its prompt may use only {question} "
            "and {answer}"
        )


def filter_pairs(
    suite: Suite, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Drop duplicates (of each other and of the training data), then test-split leakage."""
    existing = list(suite.train or []) + list(suite.validation or [])
    seen = {normalize(t) for t in prompt_texts(suite, existing)}
    kept = []
    for row, text in zip(rows, prompt_texts(suite, rows), strict=True):
        key = normalize(text)
        if key not in seen and row["answer"].strip():
            seen.add(key)
            kept.append(row)
    duplicates = len(rows) - len(kept)
    test = prompt_texts(suite, suite.cases)
    test_norm = {normalize(t) for t in test}
    texts = prompt_texts(suite, kept)
    leaked = {i for i, t in enumerate(texts) if normalize(t) in test_norm}
    leaked |= {i for i, _, _ in near_matches(texts, test, NEAR_THRESHOLD)}
    clean = [r for i, r in enumerate(kept) if i not in leaked]
    return clean, {"duplicates": duplicates, "leaked": len(leaked)}


def model_answers(
    spec: str, conversations: list[list[dict[str, str]]], store: Any, progress: bool
) -> list[str]:
    """The model's answer to each conversation, through the generation cache."""
    from harness.generation.dispatch import backend_for
    from harness.generation.hardware import dtype_for_cache
    from harness.generation.models import resolve
    from harness.generation.types import GenSettings, cache_key

    ref = resolve(spec, store)
    settings = GenSettings(max_new_tokens=160, dtype=dtype_for_cache())
    keys = [cache_key(ref.fingerprint, c, settings) for c in conversations]
    answers = {k: h["output"] for k, h in store.cached_generations(keys).items()}
    misses = [i for i, k in enumerate(keys) if k not in answers]
    if misses:

        def keep(rows: list[int], gens: list[Any]) -> None:
            saved = []
            for j, g in zip(rows, gens, strict=True):
                i = misses[j]
                answers[keys[i]] = g.output
                saved.append(g.cache_row(keys[i], ref.fingerprint, conversations[i], settings))
            store.save_generations(saved)

        backend = backend_for(ref, settings, progress=progress)
        backend.generate([conversations[i] for i in misses], settings, keep)
    return [answers[k] for k in keys]


def synthesize(
    suite: Suite, sources: Sequence[str | Path], *, model: str | None = None, store: Any = None,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, int]]:  # fmt: skip
    """(rows to write, how many survived each step), by the steps in the module docstring."""
    check_suite(suite)
    passages = read_passages(sources)
    counts = {"passages": len(passages)}
    if model is None:
        made = [(p, template_pair(p)) for p in passages]
        counts["untitled"] = sum(1 for _, r in made if r is None)
    else:
        texts = model_answers(model, [model_prompt(p) for p in passages], store, progress)
        made = [(p, parse_pair(t)) for p, t in zip(passages, texts, strict=True)]
        counts["unparsed"] = sum(1 for _, r in made if r is None)
    rows = [{**r, "source": "generated", "origin": p.origin} for p, r in made if r is not None]
    counts["pairs"] = len(rows)
    clean, dropped = filter_pairs(suite, rows)
    counts |= dropped
    counts["written"] = len(clean)
    return clean, counts


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]], store: Path | None = None) -> None:
    """Whole or not at all, never over the store (`harness.outfile`)."""
    from harness import outfile

    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    outfile.write_text(path, text, store)
