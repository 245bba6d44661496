"""Models named by Hub id, and adapters (in folders or on the Hub) on Hub bases, resolved offline
from a Hub cache laid out here (`tests/hub_stub.py`); several adapters of one base on one load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.store import Store
from tests.conftest import run_cli
from tests.hub_stub import add_snapshot


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture(scope="session")
def lora_dirs(tmp_path_factory: pytest.TempPathFactory, varied_model_dir: Path) -> list[Path]:
    """Three LoRA adapters of `varied_model_dir` with random (not zero) B matrices, so that each
    answers differently; the third targets other layers. Their base is the Hub id `org/varied`."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("loras")
    targets = [["q_proj", "v_proj"], ["q_proj", "v_proj"], ["k_proj", "o_proj", "up_proj"]]
    folders = []
    for i, target in enumerate(targets):
        torch.manual_seed(i + 1)
        model = AutoModelForCausalLM.from_pretrained(varied_model_dir)
        config = LoraConfig(
            r=4, lora_alpha=64, target_modules=target, init_lora_weights=False,
            task_type="CAUSAL_LM",
        )  # fmt: skip
        folder = root / f"lora-{i + 1}"
        get_peft_model(model, config).save_pretrained(folder)
        adapter = json.loads((folder / "adapter_config.json").read_text())
        adapter["base_model_name_or_path"] = "org/varied"
        (folder / "adapter_config.json").write_text(json.dumps(adapter))
        folders.append(folder)
    return folders


def _outputs(db: Path, run_id: str) -> dict[str, str]:
    with Store(db, readonly=True) as s:
        return {r["case_id"]: r["output"] for r in s.results(run_id)}


def test_a_hub_id_evaluates_like_its_folder_and_records_the_commit(
    tmp_path: Path, hub_cache: Path, tiny_model_dir: Path, mini_suite: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    commit = add_snapshot(hub_cache, "org/tiny", tiny_model_dir)
    db_hub, db_dir = tmp_path / "hub.db", tmp_path / "dir.db"
    code, out, err = run_cli(
        "eval", str(mini_suite), "--model", "org/tiny", "--db", str(db_hub), "--json",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    by_hub = json.loads(out)
    code, out, err = run_cli(
        "eval", str(mini_suite), "--model", str(tiny_model_dir), "--db", str(db_dir), "--json",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    by_dir = json.loads(out)
    assert by_hub["generated"] == by_dir["generated"] == 6  # both really generated
    assert by_hub["grades"] == by_dir["grades"]
    assert _outputs(db_hub, by_hub["run_id"]) == _outputs(db_dir, by_dir["run_id"])
    with Store(db_hub, readonly=True) as s:
        run = s.run(by_hub["run_id"])
    assert run is not None and run["model"] == "org/tiny" and run["model_kind"] == "hub"
    assert run["settings"]["hub"] == [{"id": "org/tiny", "revision": "main", "commit": commit}]

    code, out, err = run_cli("models", "list", "--db", str(db_hub), "--json", capsys=capsys)
    listed = {m["name"]: m for m in json.loads(out)}
    assert code == 0 and listed["org/tiny"]["kind"] == "hub", err
    assert listed["org/tiny"]["hub"][0]["commit"] == commit


def test_a_revision_pins_and_a_moved_main_is_another_model(
    hub_cache: Path, tiny_model_dir: Path, varied_model_dir: Path, store: Store
) -> None:
    from harness.generation.models import resolve

    first = add_snapshot(hub_cache, "org/m", tiny_model_dir)
    was = resolve("org/m", store)
    second = add_snapshot(hub_cache, "org/m", varied_model_dir)  # main moves on
    now, pinned = resolve("org/m", store), resolve(f"org/m@{first}", store)
    assert now.hub is not None and now.hub.commit == second != first
    assert now.fingerprint != was.fingerprint
    assert pinned.fingerprint == was.fingerprint
    assert pinned.hub is not None and pinned.hub.revision == first == pinned.hub.commit


def test_an_adapter_pins_its_hub_base_by_peft_revision(
    tmp_path: Path, hub_cache: Path, tiny_model_dir: Path, varied_model_dir: Path,
    lora_dirs: list[Path], store: Store,
) -> None:  # fmt: skip
    import shutil

    from harness.generation.models import resolve

    first = add_snapshot(hub_cache, "org/varied", varied_model_dir)
    add_snapshot(hub_cache, "org/varied", tiny_model_dir)  # main moves on
    pinned = tmp_path / "pinned"
    shutil.copytree(lora_dirs[0], pinned)
    config = json.loads((pinned / "adapter_config.json").read_text())
    (pinned / "adapter_config.json").write_text(json.dumps({**config, "revision": first}))
    ref, floating = resolve(str(pinned), store), resolve(str(lora_dirs[0]), store)
    assert ref.base is not None and ref.base.hub is not None and ref.base.hub.commit == first
    assert floating.base is not None and floating.base.hub is not None
    assert floating.base.hub.commit != first and floating.fingerprint != ref.fingerprint


@pytest.mark.parametrize("spec", ["org/absent", "org/absent@v2"])
def test_offline_without_a_snapshot_is_one_line(
    tmp_path: Path, hub_cache: Path, mini_suite: Path, spec: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    db = tmp_path / "t.db"
    code, _, err = run_cli("eval", str(mini_suite), "--model", spec, "--db", str(db), capsys=capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    revision = spec.partition("@")[2] or "main"
    assert code == 2 and len(lines) == 1, err
    assert "'org/absent'" in lines[0] and f"revision {revision}" in lines[0]
    assert "HF_HUB_OFFLINE" in lines[0] and "hf download" in lines[0]
    with Store(db, readonly=True) as s:
        assert s.runs() == []  # nothing stored for a model that is not there


def test_a_repo_with_only_pickled_weights_is_refused(
    tmp_path: Path, hub_cache: Path, tiny_model_dir: Path, store: Store
) -> None:
    from harness.errors import UserError
    from harness.generation.models import resolve

    folder = tmp_path / "bin-only"
    folder.mkdir()
    (folder / "config.json").write_bytes((tiny_model_dir / "config.json").read_bytes())
    (folder / "pytorch_model.bin").write_bytes(b"not fetched anyway")
    add_snapshot(hub_cache, "org/old", folder)
    with pytest.raises(UserError, match="no safetensors weights.*pickled"):
        resolve("org/old", store)


def test_globs_expand_to_folders_in_natural_order(tmp_path: Path) -> None:
    from harness.errors import UserError
    from harness.generation.models import expand_model_specs

    for step in (10, 9, 100):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-1.txt").write_text("not a folder")
    specs = expand_model_specs([str(tmp_path / "checkpoint-*"), "org/name"])
    assert specs == [str(tmp_path / f"checkpoint-{s}") for s in (9, 10, 100)] + ["org/name"]
    with pytest.raises(UserError, match="no folder matches"):
        expand_model_specs([str(tmp_path / "nothing-*")])


def test_adapters_of_one_hub_base_load_it_once_and_answer_as_alone(
    tmp_path: Path, hub_cache: Path, varied_model_dir: Path, lora_dirs: list[Path],
    mini_suite: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from transformers import AutoModelForCausalLM

    base_commit = add_snapshot(hub_cache, "org/varied", varied_model_dir)
    add_snapshot(hub_cache, "org/lora-3", lora_dirs[2])  # the third adapter is on the Hub
    loads: list[str] = []
    real = AutoModelForCausalLM.from_pretrained

    def counted(path: object, *args: object, **kwargs: object) -> object:
        loads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", counted)
    specs = [str(lora_dirs[0].parent / "lora-[12]"), "org/lora-3"]
    together = tmp_path / "together.db"
    code, out, err = run_cli(
        "eval", str(mini_suite), "--model", specs[0], "--model", specs[1], "--db", str(together),
        "--json", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    runs = json.loads(out)
    assert [r["model"] for r in runs] == [str(lora_dirs[0]), str(lora_dirs[1]), "org/lora-3"]
    assert all(r["generated"] == 6 for r in runs)
    assert len(loads) == 1  # one base for three adapters
    with Store(together, readonly=True) as s:
        hub = [s.run(r["run_id"])["settings"]["hub"] for r in runs]  # type: ignore[index]
    base = {"id": "org/varied", "revision": "main", "commit": base_commit}
    assert hub[0] == [base] and hub[2][0]["id"] == "org/lora-3" and hub[2][1] == base

    answers = []
    for i, spec in enumerate([str(lora_dirs[0]), str(lora_dirs[1]), "org/lora-3"]):
        alone = tmp_path / f"alone-{i}.db"
        code, out, err = run_cli(
            "eval", str(mini_suite), "--model", spec, "--db", str(alone), "--json", capsys=capsys
        )
        assert code == 0, err
        single = json.loads(out)
        answers.append(_outputs(alone, single["run_id"]))
        assert _outputs(together, runs[i]["run_id"]) == answers[i], spec
    assert len(loads) == 4  # and one base load per adapter alone
    assert answers[0] != answers[1] != answers[2]  # three adapters that really differ


def test_switching_back_restores_the_merged_weights_bit_for_bit(
    hub_cache: Path, varied_model_dir: Path, lora_dirs: list[Path], store: Store
) -> None:
    """Answers alone and on a shared base match because the weights do: after the other
    adapters took their turn, each adapter's merged layers equal a fresh merge exactly (undoing
    a merge by subtraction would leave rounding behind)."""
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    from harness.evaluation.adapters import Swapper
    from harness.generation.models import load, resolve

    add_snapshot(hub_cache, "org/varied", varied_model_dir)
    refs = [resolve(str(d), store) for d in lora_dirs]
    swapper = Swapper(refs, "float32", 4)
    for ref in (*refs, refs[0]):
        model, _ = swapper.activate(ref)
    assert swapper.base_loads == 1
    alone, _ = load(refs[0], "float32")
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
    assert len(layers) == 2 * 2 + 2 * 3  # every layer any adapter targets, on both blocks
    for name, layer in layers:
        merged = swapper._plain[id(layer)].weight
        assert torch.equal(merged, alone.get_submodule(name).weight), name


def test_a_lora_trained_on_a_hub_base_names_it_by_id_and_commit(
    tmp_path: Path, hub_cache: Path, tiny_model_dir: Path, store: Store
) -> None:
    """So the adapter resolves on another machine too, pinned to the commit it was trained on."""
    from transformers import AutoModelForCausalLM

    from harness.generation.models import resolve
    from harness.training.job import training_base
    from trainers import sft, sft_model

    commit = add_snapshot(hub_cache, "org/tiny", tiny_model_dir)
    base = training_base(resolve("org/tiny", store), store)
    assert (base.hub_id, base.hub_commit) == ("org/tiny", commit)
    model = AutoModelForCausalLM.from_pretrained(base.path)
    lora = sft_model.add_lora(model, sft.Config(method="lora"), base.hub_id, None, base.hub_commit)
    lora.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert (config["base_model_name_or_path"], config["revision"]) == ("org/tiny", commit)
    ref = resolve(str(tmp_path / "adapter"), store)
    assert ref.base is not None and ref.base.hub is not None and ref.base.hub.commit == commit
