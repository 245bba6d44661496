"""Adapters of one base: swapping them on one loaded base vs loading base + adapter for each.

Makes N random LoRA adapters (all linear layers, rank 8) of the packaged model in a temporary
folder, then times getting each one ready to generate, both ways tuneval can: alone
(`harness.generation.models.load` and the CPU weight prepacking, what `eval --model ADAPTER` does
per adapter) and swapped on one base (`harness.evaluation.adapters.Swapper`, what `eval --model A
--model B ...` does; it prepacks too). Generation itself is the same either way and is left out.
Also checks that both ways give every adapter bit-identical merged weights. On a small model loading
is cheap, so the gap grows with model size.

    .venv/bin/python bench/adapters.py [--adapters 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table  # noqa: E402


def make_adapters(base: Path, root: Path, n: int) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folders = []
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    for i in range(n):
        torch.manual_seed(i)
        model = AutoModelForCausalLM.from_pretrained(base)
        config = LoraConfig(r=8, target_modules=targets, init_lora_weights=False)
        folder = root / f"lora-{i}"
        get_peft_model(model, config).save_pretrained(folder)
        cfg = json.loads((folder / "adapter_config.json").read_text())
        (folder / "adapter_config.json").write_text(
            json.dumps({**cfg, "base_model_name_or_path": str(base)})
        )
        folders.append(folder)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=4)
    args = parser.parse_args()

    import torch

    from harness.evaluation.adapters import Swapper
    from harness.generation.kernels import pack_linears
    from harness.generation.models import load, materialize_default, quiet_transformers, resolve
    from harness.store import Store

    quiet_transformers()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = Store(root / "bench.db")
        base = materialize_default()
        refs = [resolve(str(f), store) for f in make_adapters(base, root, args.adapters)]
        print(f"work: {len(refs)} LoRA adapters (rank 8, every linear layer) of {base.name}")

        alone, reload_s = {}, 0.0
        for ref in refs:
            t0 = time.perf_counter()
            model, _ = load(ref, "float32")
            t1 = time.perf_counter()
            alone[ref.name] = {n: p.detach().clone() for n, p in model.named_parameters()}
            t2 = time.perf_counter()
            pack_linears(model, 32)
            reload_s += time.perf_counter() - t0 - (t2 - t1)  # the copy for the check left out
            del model

        from peft.tuners.tuners_utils import BaseTunerLayer

        swapper = Swapper(refs, "float32", 32)
        same, swap_s = True, 0.0
        for ref in refs:
            t0 = time.perf_counter()
            model, _ = swapper.activate(ref)
            swap_s += time.perf_counter() - t0
            for name, layer in model.named_modules():
                if isinstance(layer, BaseTunerLayer):
                    weight = swapper._plain[id(layer)].weight
                    same &= torch.equal(weight, alone[ref.name][name + ".weight"])
        store.close()

    print(
        table(
            ["way", "base loads", "s", "s per adapter"],
            [
                ["alone (load + merge each)", len(refs), round(reload_s, 2), reload_s / len(refs)],
                ["swapped on one base", swapper.base_loads, round(swap_s, 2), swap_s / len(refs)],
            ],
        )
    )
    print(f"time alone / time swapped: {reload_s / swap_s:.2f}; merged weights identical: {same}")


if __name__ == "__main__":
    main()
