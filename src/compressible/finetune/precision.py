"""Precision and random streams shared by both kinds of run (GLUE classification and E2E generation).

- :data:`AUTOCAST`, :func:`autocast_dtype`, :func:`autocast_region`: bf16 autocast of a model's forward
  where asked for (``"auto"``: where the device computes bf16 natively, :func:`cpu_has_bf16`);
- :func:`cast_frozen_linears`: the frozen weights cast once to the autocast dtype (same values, fewer casts);
- :func:`forked_rng`: torch's global RNG (dropout) seeded for one run and restored afterwards.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor, nn

from ..deeplora.layer import is_adaptable

__all__ = ["AUTOCAST", "cpu_has_bf16", "autocast_dtype", "autocast_region", "cast_frozen_linears", "forked_rng"]

log = logging.getLogger(__name__)

AUTOCAST = ("off", "bf16", "auto")
"""Autocast settings of a run: ``"off"`` (float32 throughout), ``"bf16"`` (bf16 autocast around the
model's forward), ``"auto"`` (``"bf16"`` on CUDA and on CPUs with native bf16, else ``"off"``)."""

_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively: torch's kernels are AVX-512 ones and ``/proc/cpuinfo``
    lists ``avx512_bf16`` or ``amx_bf16`` (elsewhere bf16 autocast is emulated and slower than float32)."""
    if "AVX512" not in torch.backends.cpu.get_cpu_capability():
        return False
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return any(flag in flags for flag in _BF16_CPU_FLAGS)


def autocast_dtype(mode: str, device: str | torch.device = "cpu") -> torch.dtype | None:
    """The autocast dtype of ``mode`` (one of :data:`AUTOCAST`) on ``device``: ``torch.bfloat16`` or ``None`` (off).

    ``"auto"`` gives bf16 on CUDA and on CPUs where :func:`cpu_has_bf16`, and otherwise ``None``
    with a log line saying why.
    """
    if mode not in AUTOCAST:
        raise ValueError(f"autocast must be one of {AUTOCAST}, got {mode!r}")
    if mode == "off":
        return None
    if mode == "bf16":
        return torch.bfloat16
    device = torch.device(device)
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()):
        return torch.bfloat16
    log.info("autocast='auto': no native bf16 on %s (CPU capability %s); computing in float32",
             device, torch.backends.cpu.get_cpu_capability())
    return None


def autocast_region(device: str | torch.device, dtype: torch.dtype | None):
    """A ``torch.autocast`` region in ``dtype`` on ``device``, or nothing when ``dtype`` is ``None`` (what
    :func:`autocast_dtype` returns for ``"off"``)."""
    return nullcontext() if dtype is None else torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def cast_frozen_linears(model: nn.Module, dtype: torch.dtype) -> list[tuple[nn.Parameter, Tensor]]:
    """Cast the weights and biases of every frozen ``nn.Linear``/``Conv1D`` of ``model`` to ``dtype`` in place.

    Under autocast these layers' matmuls cast their float32 weights to ``dtype`` at every call (the
    autocast cache keeps only leaves that require grad); a weight cast once holds the same values, so
    the outputs are identical and the casts are saved. Layers with a trainable parameter, and every
    other module (embeddings, layer norms, the adapter factors), are left alone.

    Returns:
        ``[(parameter, original data)]``, to restore with ``parameter.data = original``.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype such as torch.bfloat16, got {dtype!r}")
    originals = []
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if not is_adaptable(module) or not params or any(p.requires_grad for p in params):
            continue
        for param in params:
            if param.dtype != dtype and param.is_floating_point():
                originals.append((param, param.data))
                param.data = param.data.to(dtype)
    return originals



@contextmanager
def forked_rng(device: str | torch.device, seed: int) -> Iterator[None]:
    """Seed torch's global RNG (used by dropout) with ``seed`` inside, restore it afterwards."""
    device = torch.device(device)
    cuda = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield
