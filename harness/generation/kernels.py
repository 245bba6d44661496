"""Faster Linear layers for CPU decoding: weights reordered once into oneDNN's blocked layout.

Decoding multiplies a few rows (the pool's width) by every weight matrix of the model, once per
token. For those shapes the default float32 GEMM is slow on some CPUs; `bench/engine_probe.py`
times the lm_head both ways (figures in bench/RESULTS.md). The prepacked layers compute the same
products; a check on a probe input against `F.linear` guards each pack,
and anything unusual (no oneDNN, another device, a dtype other than float32, a subclass of Linear)
leaves the layer as it is. Imports torch: import this module where the model is loaded.
"""

from __future__ import annotations

from typing import Any

import torch


def pack_linears(model: Any, rows: int, leave: frozenset[int] = frozenset()) -> int:
    """Swap every plain float32 `nn.Linear` of a CPU model for a prepacked one, tuned for `rows`
    rows per call; the children of modules whose id is in `leave` stay as they are. Returns how
    many layers were packed (0 where the kernels are unavailable)."""
    packed = 0
    for module in list(model.modules()):
        if id(module) in leave:
            continue
        for name, child in list(module.named_children()):
            fast = packed_or_none(child, rows)
            if fast is not None:
                setattr(module, name, fast)
                packed += 1
    return packed


def packed_or_none(layer: Any, rows: int) -> PackedLinear | None:
    """The prepacked twin of a plain float32 CPU `nn.Linear`, or None where there is none."""
    if (
        type(layer) is torch.nn.Linear
        and layer.weight.device.type == "cpu"
        and layer.weight.dtype == torch.float32
        and _available()
    ):
        return PackedLinear.from_linear(layer, rows)
    return None


def _available() -> bool:
    return bool(
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


class PackedLinear(torch.nn.Module):
    """An inference-only Linear whose weight lives in oneDNN's reordered layout."""

    def __init__(self, packed: Any, bias: Any, in_features: int, out_features: int) -> None:
        super().__init__()
        self.packed = packed
        self.bias = bias
        self.in_features, self.out_features = in_features, out_features

    @classmethod
    def from_linear(cls, linear: Any, rows: int) -> PackedLinear | None:
        weight = linear.weight.detach()
        bias = None if linear.bias is None else linear.bias.detach()
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(weight, max(1, rows))
            fast = cls(packed, bias, linear.in_features, linear.out_features)
            probe = torch.randn(3, linear.in_features, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                ok = torch.allclose(
                    fast(probe), torch.nn.functional.linear(probe, weight, bias), atol=1e-4
                )
        except (RuntimeError, TypeError):
            return None
        return fast if ok else None

    def forward(self, x: Any) -> Any:
        shape = x.shape
        y = torch.ops.mkldnn._linear_pointwise(
            x.reshape(-1, shape[-1]).contiguous(), self.packed, self.bias, "none", [], ""
        )
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, oneDNN packed"
