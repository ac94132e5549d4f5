"""The ledger's verification catches a changed rate, a changed seed and an edited record, and passes a
float32 re-execution of a bf16 record; a store that reads a ledger loads from it and computes nothing
in ledger-only mode."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from compressible.deeplora import DeepLoRAConfig
from compressible.finetune.backbones import TINY_BERT
from compressible.finetune.classify import RunConfig
from compressible.ledger import Ledger, PlannedRun, TOLERANCES, check_digest, coverage, verify
from compressible.ledger.checks import compare_curves, compare_rows
from compressible.ledger.records import import_record, iter_records
from compressible.ledger.verify import tolerance_for
from compressible.store import LedgerMissingError, ResultStore
from finetune.tiny import tiny_bert_runner  # tests/ is on the path


@pytest.fixture(scope="module")
def runner():
    return tiny_bert_runner("cpu", threads=1)


def _config(**changes) -> RunConfig:
    base = dict(task="stsb", n_train=32, steps=4, backbone=TINY_BERT, eval_limit=32, lr=1e-3)
    base.update(changes)
    return RunConfig(adapter=DeepLoRAConfig(init="compressed"), **base)


def _ledger_with(tmp_path, runner, config, seed, computed_as=None, computed_seed=None):
    """A ledger holding ``(config, seed)``, computed as ``computed_as`` at ``computed_seed`` (a stand-in for
    code that changed after the record was made)."""
    ledger = Ledger(tmp_path / "ledger")
    ledger.save(config, seed, runner.run(computed_as or config, seed if computed_seed is None else computed_seed))
    return ledger


def _verify(ledger, config, seed=0, **kwargs):
    run = PlannedRun("test", "fig", "method", config, seed)
    return verify(ledger, runs=[run], steps=3, whole=0, progress=False, raise_on_failure=False, **kwargs)


def _first_check(report):
    return next(c for c in report.checks if c.kind.startswith("first"))


def test_a_faithful_record_is_reproduced_bit_for_bit(tmp_path, runner):
    config = _config()
    ledger = _ledger_with(tmp_path, runner, config, 0)
    report = _verify(ledger, config)
    check = _first_check(report)
    assert report.ok and check.platform == "same platform" and check.difference == 0.0 and check.allowed == 0.0


def test_verification_catches_a_changed_learning_rate(tmp_path, runner):
    config = _config()
    ledger = _ledger_with(tmp_path, runner, config, 0, computed_as=dataclasses.replace(config, lr=3e-3))
    check = _first_check(_verify(ledger, config))
    assert not check.ok and check.detail == "lr differs"


def test_verification_catches_a_changed_seed(tmp_path, runner):
    config = _config()
    ledger = _ledger_with(tmp_path, runner, config, 0, computed_seed=1)
    check = _first_check(_verify(ledger, config))
    assert not check.ok and check.detail == "sample_idx differs"


def test_verification_catches_an_edited_record(tmp_path, runner):
    config = _config()
    ledger = _ledger_with(tmp_path, runner, config, 0)
    path = ledger.path(config, 0)
    record = json.loads(path.read_text())
    record["train_loss"][1] *= 1.001
    path.write_text(json.dumps(record))
    report = _verify(ledger, config)
    digest = [c for c in report.checks if c.kind == "digest"]
    assert not report.ok and len(digest) == 1 and not digest[0].ok
    # resealed by hand, the edit is still caught by re-executing the run
    assert not check_digest(record)
    record.pop("_digest")
    from compressible.ledger import digest as seal

    record["_digest"] = seal(record)
    path.write_text(json.dumps(record))
    report = _verify(ledger, config)
    assert [c.kind for c in report.checks if not c.ok] == ["first 3 steps"]
    assert _first_check(report).difference == pytest.approx(1 - 1 / 1.001, rel=1e-6)


def test_a_float32_reexecution_of_a_bf16_record_passes_within_its_tolerance(tmp_path, runner):
    config = _config(autocast="bf16")
    ledger = _ledger_with(tmp_path, runner, config, 0)
    check = _first_check(_verify(ledger, config, float32=True))
    assert check.platform == "bfloat16 against float32"
    assert check.allowed == TOLERANCES["bfloat16 against float32"]
    assert 0.0 < check.difference <= check.allowed and check.ok
    # and the same comparison still catches a changed rate
    changed = _ledger_with(tmp_path / "changed", runner, config, 0, computed_as=dataclasses.replace(config, lr=3e-3))
    assert not _first_check(_verify(changed, config, float32=True)).ok


def test_a_whole_run_on_the_same_platform_matches_every_stored_number(tmp_path, runner):
    config = _config()
    ledger = _ledger_with(tmp_path, runner, config, 0)
    run = PlannedRun("test", "fig", "method", config, 0)
    report = verify(ledger, runs=[run], steps=2, whole=1, whole_budget=math.inf, progress=False, raise_on_failure=False)
    whole = [c for c in report.checks if c.kind == "whole run"]
    assert report.ok and len(whole) == 1 and whole[0].difference == 0.0
    # an edited final metric (resealed) is caught by the whole run only
    path = ledger.path(config, 0)
    record = json.loads(path.read_text())
    record["final"]["pearson"] += 0.01
    record.pop("_digest")
    from compressible.ledger import digest as seal

    record["_digest"] = seal(record)
    path.write_text(json.dumps(record))
    report = verify(ledger, runs=[run], steps=2, whole=1, whole_budget=math.inf, progress=False, raise_on_failure=False)
    assert [c.kind for c in report.checks if not c.ok] == ["whole run"]


def test_the_draw_is_seeded_by_the_commit(tmp_path, runner):
    config = _config()
    ledger = Ledger(tmp_path / "ledger")
    for seed in range(3):
        ledger.save(config, seed, runner.run(config, seed))
    runs = [PlannedRun("test", "fig", "method", config, s) for s in range(3)]
    drawn = {c: _first_check(verify(ledger, runs=runs, steps=1, whole=0, progress=False, commit=c)).run
             for c in ("a" * 40, "b" * 40, "c" * 40, "d" * 40)}
    again = _first_check(verify(ledger, runs=runs, steps=1, whole=0, progress=False, commit="a" * 40)).run
    assert again == drawn["a" * 40] and len(set(drawn.values())) > 1


def test_tolerances_follow_the_platforms():
    base = {"device": "cpu", "cpu_capability": "AVX512", "gpu": None, "precision": "bfloat16", "threads": 1,
            "torch": "2.13.0", "transformers": "4.57"}
    assert tolerance_for(base, dict(base)) == ("same platform", 0.0)
    assert tolerance_for(base, {**base, "precision": "float32", "cpu_capability": "AVX2"})[0] == "bfloat16 against float32"
    f32 = {**base, "precision": "float32"}
    assert tolerance_for(f32, {**f32, "threads": 2})[0] == "float32, other CPU or versions"
    assert compare_curves([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert compare_curves([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 2.2)
    assert compare_curves([1.0], [1.0, 2.0]) == math.inf
    assert compare_rows([{"step": 1, "loss": 1.0, "wall_time": 3.0}], [{"step": 1, "loss": 1.0, "wall_time": 9.0}],
                        ("step",)) == (0.0, "")
    assert compare_rows([{"step": 1, "loss": 1.0}], [{"step": 2, "loss": 1.0}], ("step",))[0] == math.inf


def test_a_store_reads_through_its_ledger_and_computes_nothing_in_ledger_only_mode(tmp_path, monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class Toy:
        x: int = 1

    ledger = Ledger(tmp_path / "ledger")
    ledger.save(Toy(), 0, {"value": 0.5})
    store = ResultStore(tmp_path / "results", ledger=ledger, compute_missing=False)
    assert store.has(Toy(), 0) and store.in_ledger(Toy(), 0) and store.load(Toy(), 0)["value"] == 0.5
    with pytest.raises(LedgerMissingError) as error:
        store.run(Toy(), [0, 1], lambda c, s: {"value": 1.0})
    assert error.value.runs == [("Toy", ledger_key(Toy()), 1)]
    computing = ResultStore(tmp_path / "results", ledger=ledger)
    assert [r["value"] for r in computing.run(Toy(), [0, 1], lambda c, s: {"value": 1.0}, progress=False)] == [0.5, 1.0]
    assert not (tmp_path / "ledger" / "Toy" / ledger_key(Toy()) / "seed-1.json").exists()  # new runs go to results
    # the environment switches: COMPRESSIBLE_LEDGER names the ledger of ResultStore(), ..._ONLY forbids computing
    monkeypatch.setenv("COMPRESSIBLE_LEDGER", str(tmp_path / "ledger"))
    monkeypatch.setenv("COMPRESSIBLE_RESULTS", str(tmp_path / "fresh"))
    monkeypatch.setenv("COMPRESSIBLE_LEDGER_ONLY", "1")
    with pytest.raises(LedgerMissingError):
        ResultStore().run(Toy(), [2], lambda c, s: {"value": 1.0})
    monkeypatch.setenv("COMPRESSIBLE_LEDGER", "off")
    assert ResultStore().ledger is None


def ledger_key(config) -> str:
    from compressible.store import config_key

    return config_key(config)


def test_records_are_sealed_with_provenance_and_import_keeps_them(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Part:
        dtype: str = "float64"
        threads: int = 1

    scratch = ResultStore(tmp_path / "results", ledger=None)
    scratch.save(Part(), 0, {"rows": [{"step": 0, "loss": 1.5}], "wall_time": 2.0, "threads": 3})
    [record] = list(iter_records(tmp_path / "results"))
    target = import_record(tmp_path / "ledger", record.path)
    sealed = json.loads(target.read_text())
    assert check_digest(sealed) and sealed["rows"] == [{"step": 0, "loss": 1.5}]
    prov = sealed["_provenance"]
    assert (prov["precision"], prov["threads"], prov["wall_time"], prov["device"]) == ("float64", 3, 2.0, "cpu")
    assert prov["cpu_capability"] and prov["torch"]


def test_coverage_lists_the_missing_runs(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Toy:
        x: int = 1

    ledger = Ledger(tmp_path / "ledger")
    ledger.save(Toy(), 0, {"value": 0.5})
    store = ResultStore(tmp_path / "results", ledger=ledger)
    runs = [PlannedRun("toy", "Fig. 1", "m", Toy(), s) for s in (0, 1, 2)]
    table = coverage(runs, store)
    assert table.to_dict("records")[0] | {"computed on": None, "when": None} == {
        "figure": "Fig. 1", "method": "m", "planned": 3, "held": 1, "missing": "seed 1, seed 2", "from": "ledger",
        "computed on": None, "when": None}


def test_a_sweep_into_the_ledger_writes_sealed_records_and_resumes(tmp_path, capsys):
    from compressible import sweeps
    from compressible.experiments import compression

    ledger = tmp_path / "ledger"
    assert sweeps.main(["run", "compression", "--scale", "smoke", "--into", str(ledger), "--nice", "0",
                        "--no-progress"]) == 0
    [record] = list(iter_records(ledger))
    assert record.key == ledger_key(compression.plan("smoke").config) and check_digest(record.data)
    assert record.provenance["precision"] == compression.plan("smoke").config.dtype
    written = record.path.stat().st_mtime_ns
    assert sweeps.main(["run", "compression", "--scale", "smoke", "--into", str(ledger), "--nice", "0",
                        "--no-progress"]) == 0
    assert record.path.stat().st_mtime_ns == written  # stored runs are not recomputed


def _strings(value, where=""):
    """Every string in ``value`` (nested dicts and lists), with where it sits."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{where}[{i}]")


def test_committed_records_name_no_folder_of_the_machine_that_computed_them():
    """A compared field of a record (one not starting with ``_``) must not hold an absolute path: it would
    differ on a machine whose checkout or mirrors sit elsewhere, and the whole-run check would fail there."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "ledger"
    paths = [(str(record.path), where) for record in iter_records(root)
             for key, value in record.data.items() if not key.startswith("_")
             for where, text in _strings(value, key) if text.startswith("/") and "/" in text[1:]]
    assert paths == []
