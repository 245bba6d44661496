"""Broken and hostile model folders: `tuneval eval` exits 2 with one line naming the model, never a
traceback or a hang, and runs none of the model's code."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _weights(mangle: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / "model.safetensors"
        path.write_bytes(mangle(path.read_bytes()))

    return change


def _config(**changes: object) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **changes}))

    return change


def _template(text: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        (folder / "chat_template.jinja").write_text(text)
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config.pop("chat_template", None)
        (folder / "tokenizer_config.json").write_text(json.dumps(config))

    return change


def _pickled(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    mark = folder.parent / "PICKLE-RAN"
    torch.save({"x": _Planted(str(mark)), **weights}, folder / "pytorch_model.bin")


class _Planted:
    def __init__(self, mark: str):
        self.mark = mark

    def __reduce__(self) -> tuple:
        return (Path(self.mark).write_text, ("ran",))


def _remote_code(folder: Path) -> None:
    (folder / "evil.py").write_text(f"open({str(folder.parent / 'REMOTE-RAN')!r}, 'w')\n")
    _config(model_type="evil", auto_map={"AutoModelForCausalLM": "evil.Model"})(folder)


def _self_adapter(folder: Path) -> None:
    adapter = {"base_model_name_or_path": str(folder), "peft_type": "LORA"}
    (folder / "adapter_config.json").write_text(json.dumps(adapter))


LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"

BROKEN: list[tuple[str, Callable[[Path], None], str]] = [
    ("truncated-safetensors", _weights(lambda b: b[:1000]), "broken safetensors"),
    ("empty-safetensors", _weights(lambda b: b""), "broken safetensors"),
    ("shape-mismatch", _config(hidden_size=64, intermediate_size=128), "shapes do not match"),
    ("config-not-json", lambda f: (f / "config.json").write_text("{not json"), "config"),
    ("pickled-bin", _pickled, "pickle"),
    ("remote-code", _remote_code, "does not load"),
    ("adapter-of-itself", _self_adapter, "loop back"),
    ("template-raise", _template("{{ raise_exception('no system role') }}"), "no system role"),
    (
        "template-sandbox",
        _template("{{ ''.__class__.__mro__[1].__subclasses__() }}"),
        "SecurityError",
    ),
    ("template-syntax", _template("{% for %}"), "TemplateSyntaxError"),
    ("template-loop", _template(LOOP), "took more than 1s"),
]


@pytest.mark.parametrize(
    ("change", "expected"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_model_is_one_line(
    tmp_path: Path, tiny_model_dir: Path, mini_suite: Path, change: Callable[[Path], None],
    expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TUNEVAL_TEMPLATE_SECONDS", "1")
    model = tmp_path / "models" / "m"
    shutil.copytree(tiny_model_dir, model)
    change(model)
    db = tmp_path / "tuneval.db"
    code, _, err = run_cli(
        "eval", str(mini_suite), "--model", str(model), "--db", str(db), "--json", capsys=capsys
    )
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in err
    assert not list(tmp_path.glob("models/*-RAN"))  # no code of the model ran


def test_the_time_limit_puts_back_an_earlier_timer() -> None:
    """A timer set before a render (pytest-timeout's, say) keeps running after it."""
    import signal

    from harness.generation.chat_template import time_limit

    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        with time_limit(5):
            pass
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 25 < left <= 30 and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Reply:
    def __init__(self, text: str):
        self.text = text

    def json(self) -> object:
        return json.loads(self.text)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"choices": [{"message": {"content": "ok\\ud800"}}]}', "ok?"),
        ('{"choices": [{"message": {"content": 5}}]}', None),
        (
            '{"choices": [{"message": {"content": "x"}}], "usage": {"completion_tokens": "many"}}',
            None,
        ),
        ('{"choices": []}', None),
    ],
)
def test_a_served_answer_that_is_not_text(body: str, expected: str | None) -> None:
    """A hostile endpoint: a lone surrogate is marked (no database could store it), anything
    that is not a chat completion is one line naming the model."""
    from harness.errors import UserError
    from harness.generation.served import ServedBackend
    from harness.generation.types import GenSettings

    backend = ServedBackend("stub", None)  # type: ignore[arg-type]
    if expected is None:
        with pytest.raises(UserError, match="served model 'stub': not a chat completion"):
            backend._parse(_Reply(body), GenSettings(), 0.0)
    else:
        gen = backend._parse(_Reply(body), GenSettings(), 0.0)
        assert gen.output == "ok?" and gen.output.encode("utf-8")
