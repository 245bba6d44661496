"""The sft recipe's checkpoints (steps 6 and 8 of `trainers.sft`): `step-N` folders under
output_dir/checkpoints, each a loadable model or adapter folder plus the optimizer, scheduler,
RNG state, step and loss curve, written atomically (a folder appears complete or not at all),
the newest complete one resumed from, older ones pruned.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from harness.plugin import CHECKPOINTS, UserError, distributed, from_main
from trainers.sft_model import barrier

STATE = "trainer_state.pt"


def resume_point(output_dir: Path, run_key: str) -> Path | None:
    """The newest complete checkpoint to resume from, chosen by the main process for all (every
    node must see the folder); checkpoints of another training run are refused."""
    import torch

    resume = from_main(latest_checkpoint(output_dir))  # one choice, made where it is written
    if resume is not None:
        saved = torch.load(resume / STATE, weights_only=True).get("run_key")
        if saved != run_key:
            raise UserError(
                f"{output_dir} holds checkpoints of a different training run; "
                "use another output folder"
            )
    return resume


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = sorted((output_dir / CHECKPOINTS).glob("step-*/" + STATE))
    found = [p for p in found if not p.parent.name.endswith(".tmp")]
    return found[-1].parent if found else None


def full_state(module: Any, sharded: bool) -> dict[str, Any] | None:
    """The trainable model's weights gathered whole (FSDP shards them): on every process, since
    gathering is collective; None where the module is not sharded."""
    if not sharded:
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(module.model, options=opts)
    # a tied output layer is gathered under both names; saved once, as the model saves itself
    seen: set[int] = set()
    for name, param in module.model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            state.pop(name, None)
        seen.add(id(param))
    return state


def save_model(folder: Path, model: Any, tok: Any, state: dict[str, Any] | None) -> None:
    model.save_pretrained(folder, **({"state_dict": state} if state is not None else {}))
    tok.save_pretrained(folder)


def save_checkpoint(
    folder: Path, step: int, model: Any, tok: Any, opt: Any, sched: Any, state: dict[str, Any],
    weights: dict[str, Any] | None = None, sharded: bool = False,
) -> Path:  # fmt: skip
    """Every process calls this. The main one writes the model and the run's state; with FSDP
    each process also writes its own optimizer shard. The folder appears complete or not at all."""
    import torch

    dist = distributed()
    target = folder / CHECKPOINTS / f"step-{step:07d}"
    tmp = target.with_name(target.name + ".tmp")
    if dist.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        save_model(tmp, model, tok, weights)
    barrier()
    if sharded:
        tmp.mkdir(parents=True, exist_ok=True)  # the main one's, seen late over a network
        torch.save(opt.state_dict(), tmp / f"optimizer-{dist.rank}.pt")
    barrier()
    if dist.is_main:
        rng = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()
        payload = {
            "step": step,
            "optimizer": None if sharded else opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": rng,
            **state,
        }
        torch.save(payload, tmp / STATE)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    barrier()
    return target


def restore(checkpoint: Path, opt: Any, sched: Any) -> dict[str, Any]:
    import torch

    payload = torch.load(checkpoint / STATE, weights_only=True)
    optimizer = payload.pop("optimizer")
    if optimizer is None:  # sharded: each process reads its own
        shard = checkpoint / f"optimizer-{distributed().rank}.pt"
        optimizer = torch.load(shard, weights_only=False)
    opt.load_state_dict(optimizer)
    sched.load_state_dict(payload.pop("scheduler"))
    rng = payload.pop("rng")
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    random.setstate((3, tuple(rng["python"]), None))
    return payload


def prune(folder: Path, keep: int) -> None:
    steps = sorted((folder / CHECKPOINTS).glob("step-*"))
    for tmp in [p for p in steps if p.name.endswith(".tmp")]:  # left by a kill mid-write
        shutil.rmtree(tmp, ignore_errors=True)
    done = [p for p in steps if not p.name.endswith(".tmp")]
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
