"""Several models in one evaluation, with adapters that share a base evaluated on one loaded
base: the base is loaded once, each adapter is loaded beside it with peft's multi-adapter API,
and switching to an adapter merges it into the base weights in place.

An adapter evaluated alone is merged into a freshly loaded base (`harness.generation.models.load`);
here the same merge runs on the same weights, and the weights are put back exactly (from a copy of
the targeted layers, not by subtracting, which would leave rounding behind) before the next
adapter merges. So each adapter answers as it does alone, and each is its own run. The copy
costs the memory of the layers the adapters target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.errors import UserError
from harness.evaluation.runner import EvalOptions, EvalResult, evaluate_suite, settings_for
from harness.generation.local import CPU_WIDTH, HFBackend
from harness.generation.models import ModelRef, why
from harness.store import Store
from harness.suite.loader import Suite


def shared_base(ref: ModelRef) -> str | None:
    """The key adapters must share to run on one loaded base (None: this model loads alone)."""
    if ref.base is None or ref.base.is_served or ref.is_served:
        return None
    return f"{ref.base.fingerprint}:{ref.base.path}"


def evaluate_models(
    suite: Suite,
    refs: list[ModelRef],
    store: Store,
    opts: EvalOptions = EvalOptions(),  # noqa: B008
) -> list[EvalResult]:
    """One run per model, in the order given; adapters that share a base load it once (on the
    local engine: the vllm engine serves each adapter on its own server)."""
    from harness.generation import vllm_engine

    local = not vllm_engine.chosen(opts.engine)
    keys = [shared_base(r) if local else None for r in refs]
    groups: dict[str, list[ModelRef]] = {}
    for ref, key in zip(refs, keys, strict=True):
        if key is not None:
            groups.setdefault(key, []).append(ref)
    left = {k: len(g) for k, g in groups.items()}
    dtype = settings_for(suite, opts.dtype).dtype
    swappers: dict[str, Swapper] = {}
    results = []
    for ref, key in zip(refs, keys, strict=True):
        backend = None
        if key is not None and len(groups[key]) > 1:
            if key not in swappers:
                swappers[key] = Swapper(groups[key], dtype, opts.batch_size or CPU_WIDTH)
            backend = SwapBackend(ref, opts.batch_size, dtype, opts.progress, swapper=swappers[key])
        results.append(evaluate_suite(suite, ref, store, opts, backend=backend))
        if key is not None:
            left[key] -= 1
            if left[key] == 0:
                swappers.pop(key, None)  # the last adapter of this base: free it
    return results


@dataclass
class SwapBackend(HFBackend):
    """The local backend on a shared base: loading means switching the base to this adapter."""

    swapper: Any = None

    def _load(self) -> None:
        self._model, self._tok = self.swapper.activate(self.ref)
        self._tok.padding_side = "left"


@dataclass
class Swapper:
    """One loaded base and the adapters loaded beside it (all of them before any layer is
    prepacked, since peft wraps only plain layers), one merged at a time."""

    refs: list[ModelRef]  # adapters of one base
    dtype: str
    rows: int  # rows per call the CPU weights are prepacked for (as `HFBackend` packs them)
    base_loads: int = 0
    _peft: Any = None
    _active: str | None = None
    _pristine: dict[int, Any] = field(default_factory=dict)  # tuner layer id -> weight copy
    _plain: dict[int, Any] = field(default_factory=dict)  # tuner layer id -> unpacked base layer

    def activate(self, ref: ModelRef) -> tuple[Any, Any]:
        from harness.generation.models import load_tokenizer

        if self._peft is None:
            self._load_all()
        self._switch(_name(ref))
        return self._peft.get_base_model(), load_tokenizer(ref)

    def _load_all(self) -> None:
        from peft import PeftModel

        from harness.generation.models import load

        first = self.refs[0]
        assert first.base is not None
        base, _ = load(first.base, self.dtype)
        self.base_loads += 1
        for ref in self.refs:
            try:
                if self._peft is None:
                    self._peft = PeftModel.from_pretrained(base, ref.path, adapter_name=_name(ref))
                elif _name(ref) not in self._peft.peft_config:
                    self._peft.load_adapter(ref.path, adapter_name=_name(ref))
            except Exception as e:  # whatever broken adapter files raise: safetensors, peft
                raise UserError(
                    f"model '{ref.name}' does not load from {ref.path}: {why(e)}"
                ) from None
        self._peft.eval()
        self._pack_the_rest()

    def _layers(self) -> list[Any]:
        from peft.tuners.tuners_utils import BaseTunerLayer

        return [m for m in self._peft.get_base_model().modules() if isinstance(m, BaseTunerLayer)]

    def _pack_the_rest(self) -> None:
        """Prepack the layers no adapter touches once; the targeted ones after each merge."""
        from harness.generation.kernels import pack_linears

        inside = frozenset(id(m) for layer in self._layers() for m in layer.modules())
        pack_linears(self._peft.get_base_model(), self.rows, leave=inside)

    def _switch(self, name: str) -> None:
        import torch

        from harness.generation.kernels import packed_or_none

        if self._active == name:
            return
        layers = self._layers()
        with torch.no_grad():
            if self._active is not None:
                for layer in layers:
                    layer.base_layer = self._plain[id(layer)]
                for layer in layers:
                    if layer.merged:
                        layer.unmerge()  # peft's bookkeeping of what is merged
                for layer in layers:
                    layer.base_layer.weight.copy_(self._pristine[id(layer)])
            else:
                self._pristine = {id(x): x.base_layer.weight.detach().clone() for x in layers}
            self._peft.set_adapter(name)
            self._peft.base_model.merge_adapter([name])
            for layer in layers:
                self._plain[id(layer)] = layer.base_layer
                fast = packed_or_none(layer.base_layer, self.rows)
                if fast is not None:
                    layer.base_layer = fast
        self._active = name


def _name(ref: ModelRef) -> str:
    return "a" + ref.fingerprint[:16]
