"""Trainers: the sft recipe on a tiny model (full and LoRA, answer-only loss, checkpoints, resume
after kill -9), a third-party plugin found through its entry point, `--set` validation, lineage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, TUNEVAL, run_cli, write_suite
from tests.plugin_helpers import install_dist_info

PLUGIN = REPO / "tests" / "plugin_pkg"
FAST = [
    "max_steps=4",
    "batch_size=2",
    "save_every=2",
    "log_every=1",
    "max_length=64",
    "val_examples=2",
]


def sets(*items: str) -> list[str]:
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed: its .dist-info on a sys.path folder."""
    return install_dist_info(PLUGIN, tmp_path_factory.mktemp("site"))


@pytest.fixture
def with_plugin(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN))
    monkeypatch.syspath_prepend(str(plugin_site))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "ws" / "tuneval.db"


def models_in(db: Path) -> list[dict]:
    from harness.store import Store

    if not db.exists():
        return []
    with Store(db) as s:
        return [dict(m) for m in s.models() if m["kind"] == "trained"]


# --- the recipe's pieces -------------------------------------------------------------------------


def test_answer_only_labels_and_packing(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from trainers.sft_data import Layout, collate, tokenize

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    conv = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Which module holds dedent?"},
        {"role": "assistant", "content": "textwrap"},
    ]
    rows = tokenize(tok, [conv, conv], 128)
    ids, labels = rows[0]["input_ids"], rows[0]["labels"]
    first = next(i for i, t in enumerate(labels) if t != -100)
    assert all(t == -100 for t in labels[:first])
    assert tok.decode(ids[:first]).endswith("assistant\n")  # the whole prompt is masked
    assert tok.decode(labels[first:]).startswith("textwrap")  # the answer and end-of-turn train
    packed = collate(rows, Layout(per_batch=2), tok.pad_token_id)
    n = len(ids)
    assert packed["input_ids"].shape == (1, 2 * n)
    assert packed["position_ids"][0].tolist() == list(range(n)) * 2  # restarts per example
    assert "attention_mask" not in packed  # padding-free: the mask comes from the position ids
    budget = collate(rows, Layout(rows=2, row_length=n + 3), tok.pad_token_id)
    assert budget["input_ids"].shape == (2, n + 3)  # one example per row, padded at the tail
    assert budget["labels"][:, n:].eq(-100).all()


@pytest.mark.parametrize("kernel", ["sdpa", "eager"])
def test_packed_loss_equals_padded_loss(tiny_model_dir: Path, kernel: str) -> None:
    """Packed examples must not attend to each other: same loss as padded, separate rows, with
    every attention kernel the recipe offers on a CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainers.sft_data import Layout, collate
    from trainers.sft_model import answer_loss

    model = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, dtype=torch.float32, attn_implementation=kernel
    )
    assert model.config._attn_implementation == kernel
    loss = answer_loss(model)
    rows = [
        {"input_ids": [1, 5, 6, 7, 8, 9], "labels": [-100, -100, -100, 7, 8, 9]},
        {"input_ids": [1, 10, 11, 12], "labels": [-100, -100, 11, 12]},
    ]
    with torch.no_grad():
        packed = loss(**collate(rows, Layout(per_batch=2), 2)).item()
        rows_of_8 = loss(**collate(rows, Layout(rows=2, row_length=8), 2)).item()
        one_row = loss(**collate(rows, Layout(rows=1, row_length=12), 2)).item()
        first = loss(**collate(rows[:1], Layout(per_batch=1), 2)).item()
        second = loss(**collate(rows[1:], Layout(per_batch=1), 2)).item()
    assert packed == pytest.approx(first + second, rel=1e-5)  # summed: no cross-attention
    assert rows_of_8 == pytest.approx(packed, rel=1e-5)  # padded tails add nothing
    assert one_row == pytest.approx(packed, rel=1e-5)
    assert first / 3 != pytest.approx(second / 2, rel=1e-3)  # distinct examples: it can fail


def test_step_plan_is_a_seeded_pass_over_the_data() -> None:
    from harness.plugin import Hyperparameters
    from trainers.sft_data import Layout, Plan

    hp = Hyperparameters(batch_size=3, grad_accum=2, epochs=2)
    plan = Plan([10] * 12, hp, Layout(per_batch=3), world=1)
    assert hp.steps(12) == 4 == plan.total
    epoch = [i for s in range(2) for b in plan.step(s) for i in b]
    assert sorted(epoch) == list(range(12)) and epoch != list(range(12))
    second = [i for s in range(2, 4) for b in plan.step(s) for i in b]
    assert sorted(second) == list(range(12)) and second != epoch  # a new shuffle per epoch
    again = Plan([10] * 12, hp, Layout(per_batch=3), world=1)
    assert again.step(3) == plan.step(3)  # resumable: the same seed plans the same steps
    other = Plan([10] * 12, hp.model_copy(update={"seed": 1}), Layout(per_batch=3), world=1)
    assert other.step(0) != plan.step(0)


@pytest.mark.parametrize("seed", range(5))
def test_token_budget_plan(seed: int) -> None:
    """No micro-batch holds more tokens than its budget, and every example is trained once per
    epoch, whatever the lengths."""
    import math
    import random

    from harness.plugin import Hyperparameters
    from trainers.sft_data import Layout, Plan, epoch_batches, layout

    rng = random.Random(seed)
    lengths = [rng.randint(3, 64) for _ in range(200)]
    hp = Hyperparameters(tokens_per_batch=256, max_length=64, grad_accum=2, epochs=3, seed=seed)
    budget = layout(hp, on_gpu=False, longest=max(lengths))
    assert budget == Layout(rows=4, row_length=64)
    for epoch in range(3):
        batches = epoch_batches(epoch, lengths, budget, seed)
        assert sorted(i for b in batches for i in b) == list(range(200))  # each once per epoch
        for b in batches:
            rows = [64] * 4
            for i in b:  # the collator's first fit finds a row for every example
                k = next(k for k, room in enumerate(rows) if room >= lengths[i])
                rows[k] -= lengths[i]
            assert sum(lengths[i] for i in b) <= 256
    plan = Plan(lengths, hp, budget, world=2)
    first = len(epoch_batches(0, lengths, budget, seed))
    assert plan.total == math.ceil(3 * first / 4)
    assert all(len(plan.step(s)) == 4 for s in range(plan.total))  # 2 micro-batches x 2 ranks
    with pytest.raises(Exception, match="smaller than the longest"):
        layout(hp.model_copy(update={"tokens_per_batch": 32}), on_gpu=False, longest=64)


# --- training through the harness ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["lora", "full"])
def test_sft_trains_registers_and_logs(
    method: str,
    tiny_model_dir: Path,
    mini_suite: Path,
    db: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(
        "train",
        str(mini_suite),
        "--base",
        str(tiny_model_dir),
        "--db",
        str(db),
        "--json",
        "--eval-checkpoints",
        "2",
        *sets(*FAST, f"method={method}"),
        capsys=capsys,
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["model"].startswith("mini-sft-") and result["steps"] == 4
    folder = Path(result["path"])
    manifest = json.loads((folder / "tuneval-manifest.json").read_text())
    assert manifest["base"]["fingerprint"] and manifest["data_fingerprint"]
    assert manifest["hyperparameters"]["max_steps"] == 4 and manifest["libraries"]["torch"]
    assert [s for s, _ in manifest["loss_curve"]] == [1, 2, 3, 4]
    if method == "lora":
        adapter = json.loads((folder / "adapter_config.json").read_text())
        assert Path(adapter["base_model_name_or_path"]) == tiny_model_dir.resolve()
        assert not (folder / "model.safetensors").exists()
    else:
        assert (folder / "model.safetensors").exists()
    assert not (folder / "checkpoints").exists()

    from harness.store import Store

    with Store(db) as s:
        model = s.model(result["model"])
        assert model and model["kind"] == "trained" and model["produced_by"] == result["train_run"]
        assert model["base"] == str(tiny_model_dir)
        kinds = [r["kind"] for r in s.train_log(result["train_run"])]
        assert (
            kinds.count("log") >= 4 and kinds.count("checkpoint") == 1 and kinds.count("eval") == 1
        )
        ckpt_runs = s.checkpoint_runs(result["train_run"])
        assert len(ckpt_runs) == 1 and ckpt_runs[0]["step"] == 2 and ckpt_runs[0]["n_cases"] == 2
        train_run = s.train_run(result["train_run"])
        assert train_run and train_run["status"] == "complete"

    # The same command again reuses the registered model.
    code, out, _ = run_cli(
        "train",
        str(mini_suite),
        "--base",
        str(tiny_model_dir),
        "--db",
        str(db),
        "--json",
        *sets(*FAST, f"method={method}"),
        capsys=capsys,
    )
    again = json.loads(out)
    assert code == 0 and again["reused"] and again["model"] == result["model"]

    from harness.generation import models

    with Store(db) as s:
        ref = models.resolve(result["model"], s)
        m, _tok = models.load(ref, "float32")  # the candidate loads like any model
        assert m is not None


def test_resume_after_kill_9(tiny_model_dir: Path, mini_suite: Path, db: Path) -> None:
    args = [
        TUNEVAL,
        "train",
        str(mini_suite),
        "--base",
        str(tiny_model_dir),
        "--db",
        str(db),
        "--json",
        *sets("max_steps=16", "batch_size=1", "save_every=2", "max_length=64", "val_examples=0"),
    ]
    ckpts = db.parent / "models"
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if list(ckpts.glob("*/checkpoints/step-*[0-9]")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = sorted(p for p in ckpts.glob("*/checkpoints/step-*") if not p.name.endswith(".tmp"))
    assert saved, "no checkpoint survived"
    step = int(saved[-1].name.split("-")[1])

    res = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["resumed_from"] == step and result["steps"] == 16
    manifest = json.loads((Path(result["path"]) / "tuneval-manifest.json").read_text())
    assert manifest["resumed_from"] == step
    assert [s for s, _ in manifest["loss_curve"]] == list(range(1, 17))  # one curve, no gap

    from harness.store import Store

    with Store(db) as s:
        runs = s.train_runs()
        assert len(runs) == 1 and runs[0]["status"] == "complete"  # the interrupted run, finished
        logged = [r["step"] for r in s.train_log(runs[0]["id"]) if r["kind"] == "log"]
        assert logged == sorted(set(logged))  # nothing logged twice


# --- plugins, settings, bad input ----------------------------------------------------------------


def test_plugin_is_discovered_and_trains(
    with_plugin: None,
    tiny_model_dir: Path,
    mini_suite: Path,
    db: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli("trainers", "list", "--json", capsys=capsys)
    listed = {t["name"]: t for t in json.loads(out)["trainers"]}
    assert code == 0 and listed["sft"]["source"] == "built-in"
    assert (
        listed["echo"]["source"] == "tuneval-echo-trainer"
        and listed["echo"]["settings"]["steps"] == 3
    )

    code, out, err = run_cli(
        "train",
        str(mini_suite),
        "--trainer",
        "echo",
        "--base",
        str(tiny_model_dir),
        "--db",
        str(db),
        "--json",
        "--eval-checkpoints",
        "3",
        *sets("steps=2", "note=hello", "learning_rate=0.5"),
        capsys=capsys,
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["model"].startswith("mini-echo-") and result["kind"] == "full"
    assert len(result["checkpoint_runs"]) == 1
    manifest = json.loads((Path(result["path"]) / "tuneval-manifest.json").read_text())
    assert manifest["note"] == "hello" and manifest["trainer"] == "echo"
    assert manifest["hyperparameters"]["learning_rate"] == 0.5

    code, out, _ = run_cli("models", "list", "--json", "--db", str(db), capsys=capsys)
    by_name = {m["name"]: m for m in json.loads(out)}
    assert "smollm2-135m-instruct" in by_name
    assert by_name[result["model"]]["lineage"] == [result["model"], str(tiny_model_dir)]
    assert by_name[result["model"]]["produced_by"] == result["train_run"]
    code, out, _ = run_cli("models", "list", "--db", str(db), capsys=capsys)
    assert code == 0 and result["model"] in out


def test_every_trainer_and_its_defaults_load(with_plugin: None) -> None:
    from pydantic import ValidationError

    from harness.plugin import Hyperparameters, Trainer
    from trainers import registry

    assert {"sft", "echo"} <= set(registry.available())
    for name in registry.available():
        trainer = registry.get(name)
        assert isinstance(trainer, Trainer) and trainer.name == name
        required = {k for k, f in trainer.Config.model_fields.items() if f.is_required()}
        if not required:
            trainer.Config()  # the defaults are valid settings
            continue
        with pytest.raises(ValidationError) as missing:  # dpo's pairs: no default to give
            trainer.Config()
        assert {e["loc"][0] for e in missing.value.errors()} == required
    Hyperparameters()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (sets("learning_rat=0.1"), "learning_rat: unknown key for trainer 'sft'"),
        (sets("max_steps=ten"), "max_steps: Input should be a valid integer"),
        (sets("method=qlora"), "method: Input should be 'lora' or 'full'"),
        (sets("batch_size"), "expected key=value"),
        (sets("batch_size=1000000000000"), "batch_size: Input should be less than or equal to"),
        (sets("batch_size=0"), "batch_size: Input should be greater than or equal to 1"),
        (sets("seed=99999999999999999999999"), "seed: Input should be less than"),
        (sets("lora_r=1000000"), "lora_r: Input should be less than or equal to 4096"),
        (sets("learning_rate=inf"), "learning_rate: Input should be a finite number"),
        (sets("max_grad_norm=inf"), "max_grad_norm: Input should be a finite number"),
        (["--trainer", "nope"], "unknown trainer 'nope'"),
    ],
)
def test_bad_settings_exit_2_and_register_nothing(
    extra: list[str],
    message: str,
    tiny_model_dir: Path,
    mini_suite: Path,
    db: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(
        "train",
        str(mini_suite),
        "--base",
        str(tiny_model_dir),
        "--db",
        str(db),
        *extra,
        capsys=capsys,
    )
    assert code == 2 and message in err, err
    assert "Traceback" not in err and not db.exists()


def test_suite_without_train_data_exits_2(
    tmp_path: Path, tiny_model_dir: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path / "s")
    text = (suite / "suite.yaml").read_text().replace("  train: train.jsonl\n", "")
    (suite / "suite.yaml").write_text(text)
    code, _, err = run_cli(
        "train", str(suite), "--base", str(tiny_model_dir), "--db", str(db), capsys=capsys
    )
    assert code == 2 and "no train data" in err and not db.exists()
    code, _, err = run_cli(
        "loop", str(suite), "--base", str(tiny_model_dir), "--db", str(db), capsys=capsys
    )
    assert code == 2 and "no train data" in err and not db.exists()


def test_base_that_does_not_load_exits_2(
    tmp_path: Path,
    tiny_model_dir: Path,
    mini_suite: Path,
    db: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"not safetensors at all")
    for base in (str(broken), "no-such-model"):
        code, _, err = run_cli(
            "train", str(mini_suite), "--base", base, "--db", str(db), capsys=capsys
        )
        assert code == 2 and "Traceback" not in err, err
        assert "does not load" in err or "not found" in err
    assert models_in(db) == []
    from harness.store import Store

    with Store(db) as s:
        assert s.train_runs() == []


MODEL_MISTAKES = (
    ("lora_targets=nonexistent_module", "no Linear module named nonexistent_module"),
    ("lora_r=64", "larger than the model's width"),
    ("lora_layers=3", "the model has 2"),
    ("attention=flash_attention_2", "needs a CUDA GPU and the flash-attn package"),
)


def test_lora_settings_checked_against_the_model_before_the_store(
    tiny_model_dir: Path, mini_suite: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked from the base's config before the store is opened: no failed train run, and
    `loop` evaluates no base first."""
    runs = [("train", setting, message) for setting, message in MODEL_MISTAKES]
    runs.append(("loop", *MODEL_MISTAKES[0]))
    for command, setting, message in runs:
        code, _, err = run_cli(
            command, str(mini_suite), "--base", str(tiny_model_dir), "--db", str(db),
            *sets(setting, "max_steps=2"), capsys=capsys,
        )  # fmt: skip
        assert code == 2 and message in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert not db.exists(), f"{command} {setting}: the store was opened"


def test_served_base_refused_before_loop_evaluates_it(
    mini_suite: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A base named in an existing store is resolved from it read-only: a served one (no weights
    to train) stops `loop` before it evaluates the base; the store file stays as it was."""
    from harness.store import Store

    code, _, err = run_cli(
        "models", "add", "far", "--url", "http://127.0.0.1:9/v1", "--model", "m", "--no-check",
        "--db", str(db), capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    before = db.read_bytes()
    code, _, err = run_cli("loop", str(mini_suite), "--base", "far", "--db", str(db), capsys=capsys)
    assert code == 2 and "no weights to train" in err and "Traceback" not in err, err
    assert db.read_bytes() == before
    with Store(db, readonly=True) as s:
        assert s.train_runs() == [] and s.runs() == []


def test_full_finetune_of_a_dequantized_gguf_export(
    tiny_model_dir: Path,
    mini_suite: Path,
    db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The packaged model's folder still names its GGUF origin in config.json; transformers then
    refuses to train or save it unless the trainer drops that note."""
    import shutil

    base = tmp_path / "from-gguf"
    shutil.copytree(tiny_model_dir, base)
    config = json.loads((base / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "gguf",
        "dequantize": False,
        "gguf_file": "x.gguf",
    }
    (base / "config.json").write_text(json.dumps(config))
    code, out, err = run_cli(
        "train",
        str(mini_suite),
        "--base",
        str(base),
        "--db",
        str(db),
        "--json",
        *sets("max_steps=2", "batch_size=2", "max_length=64", "val_examples=0", "method=full"),
        capsys=capsys,
    )
    assert code == 0, err
    saved = json.loads((Path(json.loads(out)["path"]) / "config.json").read_text())
    assert "quantization_config" not in saved


def test_sft_runs_outside_the_harness(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A trainer is a plain object: callable with a request and NullEvents, no store needed."""
    from harness.plugin import BaseModelInfo, Hyperparameters, NullEvents, TrainRequest
    from trainers import registry

    sft = registry.get("sft")
    conv = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    request = TrainRequest(
        BaseModelInfo("tiny", tiny_model_dir, "fp"),
        [conv] * 4,
        [],
        Hyperparameters(max_steps=2, batch_size=2),
        sft.Config(method="lora"),
        tmp_path / "out",
        run_key="k",
        progress=False,
    )
    result = sft.train(request, NullEvents())
    assert result.kind == "adapter" and (result.path / "adapter_model.safetensors").exists()
    assert result.facts["steps"] == 2 and len(result.facts["loss_curve"]) == 2
    assert result.facts["attention"] == "sdpa"  # auto on a CPU


def test_attention_kernel_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto takes flash-attn (packed examples as variable-length sequences, no mask) only where
    it can run: a CUDA device, the package installed, bf16 compute."""
    import importlib.util

    import trainers.sft_model as sft
    from harness.plugin import UserError

    real = importlib.util.find_spec
    installed: set[str] = set()
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name in installed else real(name, *a),
    )
    monkeypatch.setattr(sft, "device", lambda: "cuda:0")
    assert sft.attention_kernel("auto", "bfloat16") == "sdpa"  # flash-attn not installed
    installed.add("flash_attn")
    assert sft.attention_kernel("auto", "bfloat16") == "flash_attention_2"
    assert sft.attention_kernel("auto", "float32") == "sdpa"
    assert sft.attention_kernel("eager", "bfloat16") == "eager"
    monkeypatch.setattr(sft, "device", lambda: "cpu")
    assert sft.attention_kernel("auto", "bfloat16") == "sdpa"
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        sft.attention_kernel("flash_attention_2", "bfloat16")


class StopAfterCheckpoint:
    """Events that break off right after the first checkpoint, as a kill would."""

    def log(self, step: int, **metrics: float) -> None:
        pass

    def checkpoint(self, step: int, path: Path) -> None:
        raise KeyboardInterrupt

    def resumed(self, step: int) -> None:
        self.resumed_at = step

    def should_stop(self) -> bool:
        return False


@pytest.mark.parametrize("method", ["lora", "full"])
def test_resumed_run_ends_where_an_uninterrupted_one_does(
    method: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Exact resume: data order, optimizer, scheduler and RNG all continue from the checkpoint."""
    from safetensors.torch import load_file

    from harness.plugin import BaseModelInfo, Hyperparameters, NullEvents, TrainRequest
    from trainers import sft

    convs = [
        [
            {"role": "user", "content": f"Which module holds {f}?"},
            {"role": "assistant", "content": m},
        ]
        for f, m in [("dedent", "textwrap"), ("dumps", "json"), ("sqrt", "math"), ("getcwd", "os")]
    ]
    hp = Hyperparameters(max_steps=4, batch_size=2, save_every=2, learning_rate=1e-2)
    cfg = sft.Config(method=method, lora_dropout=0.1 if method == "lora" else 0.0, val_examples=0)

    def request(out: Path) -> TrainRequest:
        base = BaseModelInfo("tiny", tiny_model_dir, "fp")
        return TrainRequest(base, convs, [], hp, cfg, out, run_key="k", progress=False)

    straight = sft.run(request(tmp_path / "a"), NullEvents())
    with pytest.raises(KeyboardInterrupt):
        sft.run(request(tmp_path / "b"), StopAfterCheckpoint())
    events = StopAfterCheckpoint()
    events.checkpoint = lambda step, path: None  # type: ignore[method-assign]
    resumed = sft.run(request(tmp_path / "b"), events)
    assert events.resumed_at == 2 and resumed.facts["resumed_from"] == 2
    assert resumed.facts["loss_curve"] == straight.facts["loss_curve"]
    name = "adapter_model.safetensors" if method == "lora" else "model.safetensors"
    a, b = load_file(str(straight.path / name)), load_file(str(resumed.path / name))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


# --- the whole loop on the packaged model --------------------------------------------------------


@pytest.mark.slow
def test_loop_on_the_packaged_model(
    mini_suite: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        "loop",
        str(mini_suite),
        "--db",
        str(db),
        "--json",
        "--limit",
        "4",
        *sets("max_steps=2", "batch_size=2", "val_examples=0"),
        capsys=capsys,
    )
    assert code == 0, err
    result = json.loads(out)
    c = result["comparison"]
    assert c["n"] == 4 and result["train"]["steps"] == 2
    assert result["base_run"] != result["candidate_run"]
    # the verdict is the rule's, on the numbers the loop measured (whichever way they fell)
    from harness.comparison.compare import decide

    mc, sign = c["mcnemar"], c["sign_test"]
    mde = c["mde"] if c["mde"] is not None else float("inf")
    expected, _ = decide(mc["p_value"], sign["p_value"], mc["b01"], mc["b10"],
                         sign["improved"], sign["regressed"], mde)  # fmt: skip
    assert result["verdict"] == expected == c["verdict"]
    counts = c["counts"]
    moved = sum(c["transitions"][a][b] for a in c["transitions"] for b in c["transitions"][a])
    assert moved == 4 and counts["improved"] + counts["regressed"] + counts["unchanged"] == 4


def test_recipes_and_the_example_plugin_import_only_the_plugin_surface() -> None:
    """A trainer imports one module of tuneval: `harness.plugin` (never harness internals). A
    recipe split over several files imports its own parts too (`trainers.sft_data`, ...). The
    registry, the harness's side of that door, also reads `harness.extensions` (the declared
    extension points and their clash rule)."""
    import ast

    recipes = sorted((REPO / "trainers").glob("*.py"))
    assert {"sft.py", "dpo.py"} <= {p.name for p in recipes}
    parts = {f"trainers.{p.stem}" for p in recipes if p.name != "__init__.py"}
    for path in [*recipes, PLUGIN / "tuneval_echo_trainer" / "__init__.py"]:
        tree = ast.parse(path.read_text())
        imported = {
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
            if not isinstance(node, ast.ImportFrom) or node.module
        }
        ours = {m for m in imported if m and m.split(".")[0] in ("harness", "trainers", "reports")}
        if path.name == "__init__.py" and path.parent.name == "trainers":
            assert not ours  # the package door imports nothing
            continue
        own = parts if path.parent.name == "trainers" else set()
        door = (
            {"harness.plugin"}
            | own
            | ({"harness.extensions"} if path.name == "registry.py" else set())
        )
        assert "harness.plugin" in ours and ours <= door, (path.name, ours)
