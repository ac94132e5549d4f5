"""Tests of compressible.store: keys, atomic writes, resumable sweeps."""

import dataclasses
import json
import pickle

import pytest

from compressible.store import KEY_OPTIONAL, ResultStore, config_key


@dataclasses.dataclass(frozen=True)
class Toy:
    a: int = 1
    b: str = "x"


def test_key_depends_on_values_only():
    assert config_key(Toy()) == config_key(Toy(1, "x"))
    assert config_key(Toy(2)) != config_key(Toy())


@dataclasses.dataclass(frozen=True)
class ToyLater:  # Toy after a field was added whose default keeps the old behaviour
    a: int = 1
    b: str = "x"
    c: str = dataclasses.field(default="old", metadata={KEY_OPTIONAL: True})


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: ToyLater = dataclasses.field(default_factory=ToyLater)
    d: tuple = (1, 2)


def test_a_key_optional_field_at_its_default_keeps_the_old_key():
    old = config_key(Toy(2, "y"))
    ToyLater.__name__ = ToyLater.__qualname__ = "Toy"  # the same class, one release later
    try:
        assert config_key(ToyLater(2, "y")) == old
        assert config_key(ToyLater(2, "y", c="new")) != old
    finally:
        ToyLater.__name__ = ToyLater.__qualname__ = "ToyLater"
    # nested configs: the flag applies inside them too; other fields are hashed as before
    assert config_key(Outer()) != config_key(Outer(ToyLater(c="new")))
    assert config_key(Outer()) != config_key(Outer(d=(2, 1)))


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


def test_local_folder_and_file_url_are_the_same_store(tmp_path):
    ResultStore(tmp_path).save(Toy(), 1, {"value": 1})
    by_url = ResultStore(f"file://{tmp_path}")
    assert by_url.local and by_url.root == tmp_path.resolve() and by_url.load(Toy(), 1)["value"] == 1
    assert by_url.path(Toy(), 1) == tmp_path / "Toy" / config_key(Toy()) / "seed-1.json"


@pytest.mark.parametrize("object_store", [True, False], ids=["single-put", "write-then-rename"])
def test_fsspec_url_store(monkeypatch, object_store):
    """memory:// stands in for s3:// or gs://; without it in the object stores, the store renames."""
    import fsspec

    from compressible import store as module

    if not object_store:
        monkeypatch.setattr(module, "_OBJECT_STORES", frozenset())
    root = f"memory://results-{object_store}"
    store = ResultStore(root)
    assert not store.local and store.root == root and repr(store) == f"ResultStore('{root}')"
    moves = []
    monkeypatch.setattr(store.fs, "mv", lambda *a, **k: moves.append(a) or type(store.fs).mv(store.fs, *a, **k))
    path = store.save(Toy(), 2, {"value": [1.5]})
    assert path == f"{root}/Toy/{config_key(Toy())}/seed-2.json" and store.has(Toy(), 2)
    assert len(moves) == (0 if object_store else 2)  # config.json and the result
    assert store.load(Toy(), 2)["value"] == [1.5]
    assert not [p for p in fsspec.filesystem("memory").find(f"/results-{object_store}") if p.endswith(".tmp")]
    reopened = pickle.loads(pickle.dumps(store))  # what a Ray worker receives
    assert reopened.url == root and reopened.load(Toy(), 2)["value"] == [1.5]
    fsspec.filesystem("memory").rm(f"/results-{object_store}", recursive=True)


def test_failure_is_recorded_until_the_run_succeeds(tmp_path):
    store = ResultStore(tmp_path)
    assert store.failure(Toy(), 4) is None
    where = store.save_failure(Toy(), 4, "ValueError: bad", "Traceback ...\nValueError: bad")
    assert where == store.failure_path(Toy(), 4) and where.name == "seed-4.failed.json"
    record = store.failure(Toy(), 4)
    assert record["error"] == "ValueError: bad" and record["traceback"].endswith("ValueError: bad") and record["_seed"] == 4
    assert not store.has(Toy(), 4)  # a failed run is not stored: the next sweep tries it again
    store.save(Toy(), 4, {"value": 4})
    assert store.failure(Toy(), 4) is None and store.has(Toy(), 4)


def test_bad_roots():
    with pytest.raises(ValueError, match="a store root must be a non-empty folder or URL, got ''"):
        ResultStore("")
    with pytest.raises(ValueError, match="cannot open the result store 'nosuchprotocol://x'"):
        ResultStore("nosuchprotocol://x")


def test_concurrent_writers_of_one_file(tmp_path, monkeypatch):
    """Two workers writing the same file (config.json of two seeds): each removes the other's stale
    temporary files after its rename, so the slower one may find its own gone -- then the file is there."""
    import os

    store = ResultStore(tmp_path)
    store.save(Toy(), 0, {"value": 0})
    stale = tmp_path / "Toy" / config_key(Toy()) / ".seed-1.json.killed.tmp"
    stale.write_text("{half a res")  # left by a worker killed before its rename
    store.save(Toy(), 1, {"value": 1})
    assert not stale.exists() and store.load(Toy(), 1)["value"] == 1

    def lost_race(src, dst):
        os.unlink(src)  # the other writer removed our temporary file...
        raise FileNotFoundError(src)

    monkeypatch.setattr(os, "replace", lost_race)
    store.save(Toy(), 1, {"value": 1})  # ...after it had renamed its own: the result is in place
    with pytest.raises(FileNotFoundError):
        store.save(Toy(), 2, {"value": 2})  # nothing in place: the error stands
    assert not list(tmp_path.rglob("*.tmp"))
