"""Tests of compressible.store: keys, atomic writes, resumable sweeps."""

import dataclasses
import json

import pytest

from compressible.store import ResultStore, config_key


@dataclasses.dataclass(frozen=True)
class Toy:
    a: int = 1
    b: str = "x"


def test_key_depends_on_values_only():
    assert config_key(Toy()) == config_key(Toy(1, "x"))
    assert config_key(Toy(2)) != config_key(Toy())


def test_save_load_round_trip(tmp_path):
    store = ResultStore(tmp_path)
    store.save(Toy(), 3, {"metric": [0.5, 0.7]})
    loaded = store.load(Toy(), 3)
    assert loaded["metric"] == [0.5, 0.7] and loaded["_seed"] == 3 and loaded["_config"] == {"a": 1, "b": "x"}
    assert "torch" in loaded["_environment"]


def test_rerun_after_interruption_computes_only_missing(tmp_path):
    store = ResultStore(tmp_path)
    calls = []

    def flaky(config, seed):
        calls.append(seed)
        if seed == 2 and len(calls) < 4:
            raise KeyboardInterrupt  # killed while running seed 2
        return {"value": seed * 10}

    with pytest.raises(KeyboardInterrupt):
        store.run(Toy(), range(4), flaky, progress=False)
    assert calls == [0, 1, 2] and not store.has(Toy(), 2)
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written file left behind
    results = store.run(Toy(), range(4), flaky, progress=False)
    assert calls == [0, 1, 2, 2, 3]  # only the missing seeds ran again
    assert [r["value"] for r in results] == [0, 10, 20, 30]


def test_bad_input(tmp_path):
    store = ResultStore(tmp_path)
    with pytest.raises(TypeError, match="dataclass instance"):
        store.save({"a": 1}, 0, {})
    with pytest.raises(TypeError, match="seed must be an int"):
        store.path(Toy(), "0")
    with pytest.raises(KeyError, match="no stored result for Toy seed 5"):
        store.load(Toy(), 5)
    with pytest.raises(TypeError, match="cannot store a value of type object"):
        store.save(Toy(), 0, {"x": object()})
    assert not store.has(Toy(), 0)
