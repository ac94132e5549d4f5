"""Where models and data sets come from: hub ids online, local mirrors offline.

The code always names resources by their Hugging Face hub ids (``google-bert/bert-base-cased``,
``nyu-mll/glue``, ...). Offline, the same calls are pointed at local copies by environment
variables, so that nothing in an experiment changes between a laptop, a GPU node and CI:

========================  =====================================================================
variable                  meaning
========================  =====================================================================
``HF_HUB_OFFLINE=1``      transformers never touches the network (standard Hugging Face switch)
``HF_HUB_CACHE``          a hub cache holding the models (e.g. ``../shared/hf/hub``)
``COMPRESSIBLE_GLUE``     a directory in the hub's GLUE parquet layout (instead of ``nyu-mll/glue``)
``COMPRESSIBLE_E2E``      a directory in the hub's E2E NLG layout (instead of ``tuetschek/e2e_nlg``)
``COMPRESSIBLE_SMOLLM``   a directory holding ``SmolLM2-135M-Instruct.Q4_1.gguf``
                          (instead of ``HuggingFaceTB/SmolLM2-135M-Instruct``)
``COMPRESSIBLE_RESULTS``  where experiment results are stored (default ``./results``)
========================  =====================================================================

``make`` and ``.ci/run`` set all of them when a ``../shared`` folder with the mirrors exists.
When a resource is missing offline, :class:`ResourceMissingError` says which one, where it was
looked for, and how to provide it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ResourceMissingError",
    "DatasetSource",
    "is_offline",
    "E2E_HUB_ID",
    "dataset_source",
    "load_dataset",
    "load_pretrained",
    "results_dir",
]

#: Hub id of the E2E NLG challenge data (App. C's few-shot generation).
E2E_HUB_ID = "tuetschek/e2e_nlg"

#: hub id -> (environment variable that can point at a local copy, what the copy looks like)
_DATASETS = {
    "nyu-mll/glue": ("COMPRESSIBLE_GLUE", "a folder in the hub's GLUE parquet layout (<task>/<split>-*.parquet)"),
    E2E_HUB_ID: ("COMPRESSIBLE_E2E", "a folder in the hub's E2E NLG layout (data/<split>-*.parquet)"),
}


class ResourceMissingError(RuntimeError):
    """A model or data set is not available (offline, or at a path that does not exist)."""


def is_offline() -> bool:
    """True when the standard Hugging Face offline switches are on."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("HF_DATASETS_OFFLINE", ""))
    return any(f.strip().lower() in {"1", "true", "yes", "on"} for f in flags)


@dataclass(frozen=True)
class DatasetSource:
    """What :func:`load_dataset` will read: a hub id, or a local folder standing in for it."""

    hub_id: str
    location: str
    is_local: bool
    variable: str | None


def dataset_source(hub_id: str) -> DatasetSource:
    """Resolve a data set hub id to the location it is read from (see the module table)."""
    variable = _DATASETS.get(hub_id, (None, None))[0]
    override = os.environ.get(variable) if variable else None
    if override:
        return DatasetSource(hub_id, str(Path(override).expanduser().resolve()), True, variable)
    return DatasetSource(hub_id, hub_id, False, variable)


def load_dataset(hub_id: str, name: str | None = None, **kwargs: Any):
    """``datasets.load_dataset`` on the resolved source of ``hub_id`` (configuration ``name``).

    Raises:
        ResourceMissingError: when a local mirror is configured but absent, or when offline with
            no mirror configured; the message names the data set and how to provide it.
    """
    import datasets

    source = dataset_source(hub_id)
    if source.is_local:
        if not Path(source.location).is_dir():
            raise ResourceMissingError(
                f"data set {hub_id!r}: {source.variable}={source.location} is not a folder. "
                f"Point {source.variable} at {_DATASETS[hub_id][1]}, or unset it to download "
                f"{hub_id!r} from the Hugging Face hub."
            )
    elif is_offline():
        hint = (
            f"set {source.variable} to {_DATASETS[hub_id][1]}"
            if source.variable
            else "run once online so that the datasets cache holds it"
        )
        raise ResourceMissingError(
            f"data set {hub_id!r} is needed but HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set and no "
            f"local copy is configured: {hint}, or unset the offline switch to download it."
        )
    args = (source.location,) if name is None else (source.location, name)
    return datasets.load_dataset(*args, **kwargs)


def load_pretrained(auto_class: Any, model_id: str, **kwargs: Any):
    """``auto_class.from_pretrained(model_id, **kwargs)`` with a clear error when it is missing.

    ``model_id`` may be a hub id (read from ``HF_HUB_CACHE`` when offline) or a local folder.
    """
    try:
        return auto_class.from_pretrained(model_id, **kwargs)
    except OSError as error:  # transformers raises OSError for "not found" and for offline misses
        cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface/hub"
        mode = "offline (HF_HUB_OFFLINE=1)" if is_offline() else "online"
        raise ResourceMissingError(
            f"model {model_id!r} could not be loaded {mode}; looked in the hub cache {cache}. "
            f"Provide it by running once online (it is then cached), by setting HF_HUB_CACHE to a "
            f"cache that holds models--{model_id.replace('/', '--')}, or by passing a local folder. "
            f"Original error: {error}"
        ) from error


def results_dir() -> Path:
    """Where experiment results are stored: ``$COMPRESSIBLE_RESULTS`` or ``./results``."""
    return Path(os.environ.get("COMPRESSIBLE_RESULTS", "results")).expanduser().resolve()
