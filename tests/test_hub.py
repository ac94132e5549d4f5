"""Tests of compressible.hub: offline resolution and the errors for missing resources."""

import pytest

from compressible import hub


def test_glue_mirror_is_used_when_configured(monkeypatch, tmp_path):
    monkeypatch.setenv("COMPRESSIBLE_GLUE", str(tmp_path))
    source = hub.dataset_source("nyu-mll/glue")
    assert source.is_local and source.location == str(tmp_path.resolve())


def test_hub_id_is_used_without_mirror(monkeypatch):
    monkeypatch.delenv("COMPRESSIBLE_GLUE", raising=False)
    source = hub.dataset_source("nyu-mll/glue")
    assert not source.is_local and source.location == "nyu-mll/glue"


def test_missing_mirror_folder_names_variable_and_path(monkeypatch, tmp_path):
    missing = tmp_path / "nope"
    monkeypatch.setenv("COMPRESSIBLE_GLUE", str(missing))
    with pytest.raises(hub.ResourceMissingError, match=r"COMPRESSIBLE_GLUE=.*nope is not a folder"):
        hub.load_dataset("nyu-mll/glue", "rte")


def test_offline_without_mirror_says_how_to_provide(monkeypatch):
    monkeypatch.delenv("COMPRESSIBLE_E2E", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.ResourceMissingError, match="tuetschek/e2e_nlg.*set COMPRESSIBLE_E2E"):
        hub.load_dataset("tuetschek/e2e_nlg")


def test_missing_model_offline_names_model_and_cache(monkeypatch, tmp_path):
    from transformers import AutoConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(hub.ResourceMissingError, match=r"'nobody/no-such-model'.*offline.*" + str(tmp_path)):
        hub.load_pretrained(AutoConfig, "nobody/no-such-model")


def test_real_glue_mirror_loads_when_available():
    import os

    if not os.environ.get("COMPRESSIBLE_GLUE"):
        pytest.skip("no GLUE mirror configured (set COMPRESSIBLE_GLUE)")
    rte = hub.load_dataset("nyu-mll/glue", "rte")
    assert set(rte) >= {"train", "validation"} and rte["validation"].num_rows == 277
