"""What the hardware offers: bf16 where the CPU (AMX/avx512_bf16) or GPU supports it."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def best_dtype_name() -> str:
    """`bfloat16` where the hardware runs it fast, else `float32`; TUNEVAL_DTYPE overrides."""
    forced = os.environ.get("TUNEVAL_DTYPE")
    if forced:
        return forced
    import torch

    if torch.cuda.is_available():
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    flags = cpu_flags()
    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & flags else "float32"


def dtype_for_cache() -> str:
    """The dtype generation will use, decided without importing torch where we can."""
    if os.environ.get("TUNEVAL_DTYPE"):
        return os.environ["TUNEVAL_DTYPE"]
    if Path("/proc/driver/nvidia/version").exists():
        return best_dtype_name()
    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & cpu_flags() else "float32"
