"""SmolLM2-135M-Instruct, the ``ci`` generator of the E2E chapter (the backbone ``"smollm2"`` of
:data:`~compressible.finetune.backbones.BACKBONES`): from a local 4-bit GGUF or from the hub.

With ``$COMPRESSIBLE_SMOLLM`` (:data:`SMOLLM_VARIABLE`) naming a folder, :func:`load_smollm` reads
:data:`SMOLLM_GGUF` there and dequantises it once: the float model and tokenizer are cached under
``$COMPRESSIBLE_CACHE`` (:func:`dequantised_cache`), and later loads read that folder. Without it, the model
comes from the hub id :data:`SMOLLM_HUB_ID`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..hub import ResourceMissingError, load_pretrained

log = logging.getLogger(__name__)

__all__ = ["SMOLLM_HUB_ID", "SMOLLM_GGUF", "SMOLLM_VARIABLE", "CACHE_VARIABLE", "dequantised_cache", "load_smollm",
           "smollm_source"]

SMOLLM_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""Hub id of SmolLM2-135M-Instruct, read when ``$COMPRESSIBLE_SMOLLM`` is not set."""

SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""File name of the local 4-bit SmolLM2 (the ``ci`` generator) in the folder ``$COMPRESSIBLE_SMOLLM``."""

SMOLLM_VARIABLE = "COMPRESSIBLE_SMOLLM"
"""Environment variable naming the folder that holds :data:`SMOLLM_GGUF`."""

CACHE_VARIABLE = "COMPRESSIBLE_CACHE"
"""Environment variable naming the folder of derived files (default ``~/.cache/compressible``; ``off``: none).
It holds the dequantised SmolLM2 (:func:`dequantised_cache`)."""


def smollm_source() -> str:
    """Where :func:`load_smollm` reads SmolLM2 from, as records keep it: the GGUF's file name and hub id when
    ``$COMPRESSIBLE_SMOLLM`` is set, else the hub id. It never names the folder, which differs between
    machines, so a record computed on one machine equals its re-execution on another."""
    if os.environ.get(SMOLLM_VARIABLE):
        return f"{SMOLLM_GGUF} (4-bit GGUF of {SMOLLM_HUB_ID})"
    return SMOLLM_HUB_ID


def dequantised_cache(gguf: Path, dtype: torch.dtype) -> Path | None:
    """Where :func:`load_smollm` keeps the model and tokenizer of ``gguf`` dequantised to ``dtype`` (``None``
    when ``$COMPRESSIBLE_CACHE`` is ``off``). The folder name carries the file's size and modification time,
    so a changed file is read afresh. Dequantising takes ~25 s on one CPU core; reading the cached
    ``save_pretrained`` folder well under 1 s, with the same weights and tokenizer."""
    root = os.environ.get(CACHE_VARIABLE, "~/.cache/compressible")
    if root.strip().lower() == "off":
        return None
    stat = gguf.stat()
    name = f"{gguf.stem}-{stat.st_size}-{stat.st_mtime_ns}-{str(dtype).removeprefix('torch.')}"
    return Path(root).expanduser() / "dequantised" / name


def _save_dequantised(model: Any, tokenizer: Any, folder: Path) -> None:
    """Write ``model`` and ``tokenizer`` to ``folder`` atomically (a temporary folder renamed into place); a
    folder another process wrote first is kept, and a cache that cannot be written is only logged."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            model.save_pretrained(partial)
            tokenizer.save_pretrained(partial)
            partial.rename(folder)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
            if not folder.is_dir():
                raise
    except OSError as error:
        log.info("could not cache the dequantised model in %s (%s); it is dequantised again next time", folder, error)


def load_smollm(dtype: torch.dtype = torch.float32):
    """``(model, tokenizer)`` of SmolLM2-135M-Instruct.

    With ``COMPRESSIBLE_SMOLLM`` set, both are read from ``$COMPRESSIBLE_SMOLLM/SmolLM2-135M-Instruct.Q4_1.gguf``
    (4-bit weights, dequantised to ``dtype``; the result is cached, see :func:`dequantised_cache`); otherwise
    from the hub id ``HuggingFaceTB/SmolLM2-135M-Instruct``.

    Raises:
        ResourceMissingError: when ``COMPRESSIBLE_SMOLLM`` names a folder without the GGUF file,
            or when the hub model cannot be loaded (the message names the variable to set).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hub_id = SMOLLM_HUB_ID
    folder = os.environ.get(SMOLLM_VARIABLE)
    if folder:
        path = Path(folder).expanduser()
        if not (path / SMOLLM_GGUF).is_file():
            raise ResourceMissingError(
                f"{SMOLLM_VARIABLE}={folder} does not hold {SMOLLM_GGUF}; point {SMOLLM_VARIABLE} at a folder "
                f"containing it, or unset {SMOLLM_VARIABLE} to load {hub_id!r} from the hub"
            )
        cache = dequantised_cache(path / SMOLLM_GGUF, dtype)
        if cache is not None and cache.is_dir():
            model = load_pretrained(AutoModelForCausalLM, str(cache), dtype=dtype)
            tokenizer = load_pretrained(AutoTokenizer, str(cache))
            # named as when read from the GGUF folder (PEFT export writes the name as the base model)
            model.config._name_or_path = model.name_or_path = tokenizer.name_or_path = str(path)
            return model, tokenizer
        tokenizer = load_pretrained(AutoTokenizer, str(path), gguf_file=SMOLLM_GGUF)
        model = load_pretrained(AutoModelForCausalLM, str(path), gguf_file=SMOLLM_GGUF, dtype=dtype)
        # A GGUF-loaded model carries a quantizer that blocks save_pretrained; its weights are plain floats now.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        if cache is not None:
            _save_dequantised(model, tokenizer, cache)
        return model, tokenizer
    try:
        tokenizer = load_pretrained(AutoTokenizer, hub_id)
        model = load_pretrained(AutoModelForCausalLM, hub_id, dtype=dtype)
    except ResourceMissingError as error:
        raise ResourceMissingError(
            f"{hub_id!r} is not available: set {SMOLLM_VARIABLE} to a folder holding {SMOLLM_GGUF} "
            f"to use the local 4-bit copy. {error}"
        ) from error
    return model, tokenizer
