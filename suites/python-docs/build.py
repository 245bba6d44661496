"""Build the python-docs suite from the docstrings of the running CPython's standard library.

    python suites/python-docs/build.py          # rewrites test/train/validation.jsonl, build.json

Deterministic for a given Python version: modules are imported from a fixed list, names are
visited in sorted order, and every choice (split side, question template) comes from a SHA-256
of the function's qualified name, never from a random generator. The module-routing suite imports
`extract()` and `split_of()` from here so both suites agree on which functions are held out.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import platform
import re
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

MODULES = """
abc argparse array ast asyncio atexit base64 binascii bisect bz2 calendar cmath codecs collections
collections.abc colorsys concurrent.futures configparser contextlib contextvars copy csv
dataclasses datetime decimal difflib dis doctest email.utils enum filecmp fileinput fnmatch
fractions ftplib functools gc getpass gettext glob graphlib gzip hashlib heapq hmac html
http.client http.cookies imaplib importlib importlib.util inspect io ipaddress itertools json
keyword linecache locale logging logging.handlers lzma mailbox math mimetypes netrc numbers
operator os os.path pathlib pdb pickle pkgutil platform plistlib poplib pprint pstats py_compile
queue quopri random re reprlib runpy sched secrets selectors shelve shlex shutil signal smtplib
socket socketserver sqlite3 stat statistics string struct subprocess symtable sys sysconfig
tabnanny tarfile tempfile textwrap threading time timeit tokenize tomllib trace traceback
tracemalloc types typing unicodedata unittest unittest.mock urllib.parse urllib.request
urllib.robotparser uuid warnings weakref wsgiref.util xml.dom.minidom xml.etree.ElementTree
zipapp zipfile zipimport zlib zoneinfo
""".split()

# Held-out shares by hash bucket (0-99) of the qualified name: the split is by function.
TEST_BUCKETS = range(0, 14)
VALIDATION_BUCKETS = range(14, 18)
PER_MODULE = 40


@dataclass(frozen=True)
class Entry:
    module: str
    function: str  # qualified: "textwrap.dedent"
    name: str
    kind: str  # function | class
    summary: str


def digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def split_of(function: str) -> str:
    bucket = digest("split:" + function) % 100
    if bucket in TEST_BUCKETS:
        return "test"
    return "validation" if bucket in VALIDATION_BUCKETS else "train"


_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->.*)?$", re.DOTALL)


def summary_of(doc: str) -> str | None:
    """The first real paragraph of a docstring, as one clean sentence or two; None if unusable."""
    paragraphs = [p for p in re.split(r"\n\s*\n", inspect.cleandoc(doc)) if p.strip()]
    while paragraphs and _SIGNATURE.match(" ".join(paragraphs[0].split())):
        paragraphs.pop(0)  # C functions without __text_signature__ open with "name(args)"
    if not paragraphs:
        return None
    text = " ".join(paragraphs[0].split())
    if not text[:1].isupper() or re.match(r"^[\w.]+\(", text):
        return None  # "csv_reader(...)", "new(name, data) - ...": a signature, not a sentence
    text = _ROLE.sub(r"\1", text).replace("``", "").replace("`", "")
    words = text.split()
    if not 5 <= len(words) <= 60 or len(text) > 400:
        return None
    if ">>>" in text or text.endswith(":") or "::" in text or "XXX" in text:
        return None
    if re.match(r"(?i)(deprecated|alias|see |same as|this (function|method) is deprecated)", text):
        return None
    return text if text.endswith((".", "!", "?")) else text + "."


def _owned(mod: object, modname: str, name: str, obj: object) -> bool:
    """Public API of this module: exported in __all__, or defined here (or in its C twin)."""
    exported = getattr(mod, "__all__", None)
    if exported is not None:
        return name in exported
    owner = getattr(obj, "__module__", None) or ""
    leaf = modname.rsplit(".", 1)[-1]
    return owner in (modname, "_" + leaf, f"_{leaf}_impl") or owner.startswith(modname + ".")


def extract(modules: list[str] = MODULES) -> list[Entry]:
    """Every documented public function and class of the listed modules, one entry each."""
    import builtins

    seen: set[int] = {id(v) for v in vars(builtins).values()}
    entries: list[Entry] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for modname in modules:
            mod = importlib.import_module(modname)
            for name in sorted(dir(mod)):
                if name.startswith("_"):
                    continue
                obj = getattr(mod, name)
                if not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)):
                    continue
                if id(obj) in seen or not _owned(mod, modname, name, obj):
                    continue
                seen.add(id(obj))
                doc = obj.__doc__ if isinstance(obj.__doc__, str) else None
                summary = summary_of(doc) if doc else None
                if summary is None:
                    continue
                kind = "class" if inspect.isclass(obj) else "function"
                entries.append(Entry(modname, f"{modname}.{name}", name, kind, summary))
    # A summary shared by several objects ("Return self==value.") describes none of them.
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.summary] = counts.get(e.summary, 0) + 1
    unique = [e for e in entries if counts[e.summary] == 1]
    # Cap each module so that os (400 names) does not outweigh the rest; keep a hash-chosen few.
    by_module: dict[str, list[Entry]] = {}
    for e in sorted(unique, key=lambda e: digest("cap:" + e.function)):
        by_module.setdefault(e.module, []).append(e)
    kept = {e.function for group in by_module.values() for e in group[:PER_MODULE]}
    return [e for e in unique if e.function in kept]


FUNCTION_QUESTIONS = [
    "What does {function}() do?",
    "What is {function} used for in Python?",
    "Briefly, what does the function {name} in the {module} module do?",
    "In one sentence, what is the purpose of {function}?",
    "Explain what {name}() from Python's {module} module does.",
]
CLASS_QUESTIONS = [
    "What is {function} in Python?",
    "What does the class {name} in the {module} module represent?",
    "Briefly describe the {function} class.",
    "In one sentence, what is {name} from Python's {module} module for?",
]

# Docstrings are imperative ("Return the ..."); answers read as statements ("... returns the").
# An explicit list: guessing verbs from capitalised first words turns "Given" into "givens".
VERBS = set(
    """
Add Adapt Announce Arrange Ask Calculate Call Cast Change Check Clean Clear Close Collapse Combine
Compare Compile Compress Compute Connect Construct Convert Copy Create Decode Decompress Delay
Delete Describe Deserialize Detect Determine Disable Disassemble Discard Divide Duplicate Enable
Encode Ensure Escape Evaluate Execute Exit Expand Extract Fetch Fill Find Force Fork Format Freeze
Generate Get Guess Handle Hash Increment Indent Initialize Insert Issue Iterate Join Kill Log Look
Make Mark Merge Normalize Obtain Open Pack Parse Perform Pop Prepare Print Prompt Push Put Quote
Read Recalculate Receive Register Reload Remove Rename Replace Represent Resolve Retrieve Return
Reveal Run Scan Schedule Seed Send Serialize Set Shift Skip Split Start Stop Submit Summarize Take
Test Tokenize Transfer Transform Translate Truncate Try Turn Unfreeze Unregister Update Wait Walk
Wrap Write Yield
""".split()
)
_FIRST = re.compile(r"^([A-Z][a-z]+)\b(.*)$", re.DOTALL)


def third_person(verb: str) -> str:
    v = verb.lower()
    if v.endswith(("s", "sh", "ch", "x", "z")):
        return v + "es"
    if v.endswith("y") and v[-2:-1] not in "aeiou":
        return v[:-1] + "ies"
    return v + "s"


def answer_of(e: Entry) -> str:
    """ "textwrap.dedent removes any common ..." or, for a noun phrase, "name: summary"."""
    m = _FIRST.match(e.summary)
    if m and m.group(1) in VERBS:
        return f"{e.function} {third_person(m.group(1))}{m.group(2)}"
    if m and any(third_person(v) == m.group(1).lower() for v in VERBS):  # already "Returns"
        return f"{e.function} {m.group(1).lower()}{m.group(2)}"
    return f"{e.function}: {e.summary}"


def qa_rows(entries: list[Entry], per_train: int = 2) -> dict[str, list[dict[str, str]]]:
    """Q&A pairs: one question per held-out function, `per_train` per training function."""
    out: dict[str, list[dict[str, str]]] = {"test": [], "train": [], "validation": []}
    for e in entries:
        split = split_of(e.function)
        templates = FUNCTION_QUESTIONS if e.kind == "function" else CLASS_QUESTIONS
        start = digest("template:" + e.function) % len(templates)
        n = 1 if split == "test" else per_train
        for k in range(n):
            t = (start + k) % len(templates)
            row = {"id": f"{e.function}#{t}", **asdict(e)}
            row["question"] = templates[t].format(**asdict(e))
            row["answer"] = answer_of(e)
            out[split].append(row)
    return out


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def build_info(entries: list[Entry], counts: dict[str, int]) -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": sys.platform,
        "modules": sorted({e.module for e in entries}),
        "functions": len(entries),
        "rows": counts,
        "split": f"sha256('split:' + function) % 100: test {TEST_BUCKETS}, "
        f"validation {VALIDATION_BUCKETS}, else train",
    }


def main() -> None:
    entries = extract()
    rows = qa_rows(entries)
    for split, data in rows.items():
        write_jsonl(HERE / f"{split}.jsonl", data)
    info = build_info(entries, {k: len(v) for k, v in rows.items()})
    (HERE / "build.json").write_text(json.dumps(info, indent=2) + "\n", "utf-8")
    print(json.dumps({k: v for k, v in info.items() if k != "modules"}, indent=2))
    print(f"{len(info['modules'])} modules")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
