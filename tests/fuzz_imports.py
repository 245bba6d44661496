"""Fuzz the importers: mutated specimen sources through `suites import`'s reader and writer.

    python -m tests.fuzz_imports --examples 30 [--random]

Each example copies one format's specimens (promptfoo, openai-evals, inspect, lm-eval) and
mutates one of their files a few times: a hostile YAML scalar, tag, anchor or alias bomb, or a
hostile JSON line (from the suite loader's fuzz test) inserted at a line, a line dropped or
doubled, the file cut short, bytes that are not UTF-8. Every example must import or fail as
`UserError` (one located line per problem), leaving no partial output folder, under an
address-space limit and a per-example time limit. `tests/test_fuzz_imports.py` runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.fuzz_suites import JSON_LINES, LINES, SCALARS, cli, fuzz

SPECIMENS = Path(__file__).resolve().parent / "specimens"
SOURCES = {  # format -> (specimen folder, the source within it, import options)
    "promptfoo": ("promptfoo", "promptfooconfig.yaml", {"skip_refused": True}),
    "openai-evals": ("openai-evals", "registry/evals/capitals.yaml", {"eval": "capitals-match"}),
    "inspect": ("inspect", "samples.jsonl", {"scorer": "match"}),
    "lm-eval": ("lm-eval", "capitals_gen.yaml", {}),
}
PIECES = [*SCALARS, *LINES, *JSON_LINES, "\xff\xfe", "key: " + "[" * 100_000]

mutation = st.tuples(
    st.sampled_from(["insert", "value", "drop", "double", "cut"]),
    st.integers(0, 60),
    st.sampled_from(PIECES),
)


def build(folder: Path, fmt: str, file_pick: int, mutations: list[tuple[str, int, str]]) -> Path:
    spec, rel, _ = SOURCES[fmt]
    shutil.copytree(SPECIMENS / spec, folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    target = files[file_pick % len(files)]
    lines = target.read_bytes().decode("utf-8", "replace").splitlines()
    for kind, at, piece in mutations:
        i = at % (len(lines) + 1)
        if kind == "insert":
            lines.insert(i, piece)
        elif kind == "value" and i < len(lines) and ":" in lines[i]:
            lines[i] = lines[i].split(":", 1)[0] + ": " + piece
        elif kind == "drop" and i < len(lines):
            del lines[i]
        elif kind == "double" and i < len(lines):
            lines.insert(i, lines[i])
        elif kind == "cut":
            lines = lines[:i]
    target.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape"))
    return folder / rel


def check(fmt: str, source: Path, out: Path) -> None:
    from harness.errors import UserError
    from harness.importers import ImportOptions, read
    from harness.importers.writer import write

    options: dict[str, Any] = SOURCES[fmt][2]
    try:
        write(read(fmt, source, ImportOptions(**options)), out, None, "fuzz")
    except UserError as e:
        for p in e.problems:
            assert "\n" not in str(p).strip(), f"a problem on several lines: {p}"
        assert not out.exists(), "a failed import left its --out"
        assert not list(out.parent.glob(f".{out.name}.*")), "a failed import left a temp folder"


def run(examples: int, randomize: bool) -> None:
    def body(root: Path, drawn: tuple[str, int, list[tuple[str, int, str]]]) -> None:
        fmt, file_pick, mutations = drawn
        check(fmt, build(root / "src", fmt, file_pick, mutations), root / "out")

    picks = st.tuples(
        st.sampled_from(sorted(SOURCES)), st.integers(0, 20),
        st.lists(mutation, min_size=1, max_size=3),
    )  # fmt: skip
    fuzz(examples, randomize, picks, "fuzz-import-", body)


if __name__ == "__main__":
    cli(run, 30, __doc__)
