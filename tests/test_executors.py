"""Tests of compressible.executors: the local and the Ray executor give the same stored results,
failures are recorded without stopping the sweep, and a worker killed mid-run is retried."""

import dataclasses
import functools
import os
import sys
from pathlib import Path

import pytest

from compressible.executors import EXECUTORS, SweepInterrupted, execute, missing_runs
from compressible.store import ResultStore, config_key

TIMING = ("wall_time", "timings", "_environment", "threads")
"""Result fields that record when, how long and on how many threads, not what was computed (a local run keeps
torch's threads, a worker process runs on one)."""


@dataclasses.dataclass(frozen=True)
class Toy:
    x: int = 1


def square(config, seed):
    if seed == 13:
        raise ValueError(f"unlucky seed {seed}")
    return {"value": config.x * 100 + seed}


def make_square():
    return square


def test_local_executor_records_failures_and_goes_on(tmp_path):
    store = ResultStore(tmp_path)
    experiments = [(Toy(1), (0, 13, 2)), (Toy(2), (0,)), (Toy(1), (2,))]  # (Toy(1), 2) listed twice: run once
    summary = execute(experiments, make_square, store, progress=False)
    assert (summary.done, summary.skipped, len(summary.failed)) == (3, 0, 1)
    failure = summary.failed[0]
    assert (failure.config_key, failure.seed, failure.error) == (config_key(Toy(1)), 13, "ValueError: unlucky seed 13")
    assert "raise ValueError" in failure.traceback
    assert store.failure(Toy(1), 13)["error"] == "ValueError: unlucky seed 13" and not store.has(Toy(1), 13)
    assert store.load(Toy(2), 0)["value"] == 200
    assert summary.line().startswith("local: 3 done, 0 skipped (already stored), 1 failed in ")
    assert f"failed: {config_key(Toy(1))} seed 13 (Toy x=1): ValueError: unlucky seed 13" in str(summary)
    # a rerun computes only what is missing: the failed run, which fails again
    again = execute(experiments, make_square, store, progress=False)
    assert (again.done, again.skipped, len(again.failed)) == (0, 3, 1)
    assert missing_runs(experiments, store) == ([(Toy(1), 13)], 3)


def test_local_interrupt_keeps_finished_runs(tmp_path):
    calls = []

    def interrupted_on_second(config, seed):
        calls.append(seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return {"value": seed}

    store = ResultStore(tmp_path)
    with pytest.raises(SweepInterrupted) as caught:
        execute([(Toy(), (0, 1, 2))], lambda: interrupted_on_second, store, progress=False)
    assert (caught.value.summary.done, caught.value.summary.cancelled) == (1, 2)
    assert store.has(Toy(), 0) and not store.has(Toy(), 1) and not list(tmp_path.rglob("*.tmp"))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"unknown executor 'slurm'; valid executors are \('local', 'processes', 'ray'\)"):
        execute([], make_square, tmp_path, executor="slurm")
    with pytest.raises(ValueError, match="cpus_per_run must be a number >= 0, got -1"):
        execute([], make_square, tmp_path, executor="ray", cpus_per_run=-1)
    with pytest.raises(ValueError, match="threads must be an int >= 1, got 0"):
        execute([], make_square, tmp_path, threads=0)
    with pytest.raises(ValueError, match="max_retries must be an int >= 0, got -2"):
        execute([], make_square, tmp_path, executor="ray", max_retries=-2)
    with pytest.raises(ValueError, match=r"address='auto' and gpus_per_run=0 need executor='ray'"):
        execute([], make_square, tmp_path, address="auto")
    with pytest.raises(TypeError, match="make_runner must be callable"):
        execute([], square(Toy(), 0), tmp_path)
    with pytest.raises(ValueError, match="workers must be an int >= 1, got 0"):
        execute([], make_square, tmp_path, executor="processes", workers=0)
    with pytest.raises(ValueError, match="workers=2 needs executor='processes'"):
        execute([], make_square, tmp_path, workers=2)
    assert EXECUTORS == ("local", "processes", "ray")


def square_or_die(config, seed):
    if seed == 7:
        os._exit(3)  # the worker process dies mid-run
    return square(config, seed)


def make_square_or_die():
    return square_or_die


@pytest.mark.slow
def test_processes_executor_stores_what_the_local_one_stores(tmp_path):
    experiments = [(Toy(1), (0, 13, 2)), (Toy(2), (0, 1))]
    local, pool = ResultStore(tmp_path / "local"), ResultStore(tmp_path / "pool")
    execute(experiments, make_square, local, progress=False)
    summary = execute(experiments, make_square, pool, executor="processes", workers=2, progress=False)
    assert (summary.done, summary.skipped, len(summary.failed)) == (4, 0, 1)
    assert summary.failed[0].error == "ValueError: unlucky seed 13" and pool.failure(Toy(1), 13)
    for config, seeds in experiments:
        for seed in (s for s in seeds if s != 13):
            ours, theirs = local.load(config, seed), pool.load(config, seed)
            assert _without_timing(ours) == _without_timing(theirs)
            assert theirs["_environment"]["pid"] != os.getpid()  # computed in a worker process
    assert execute(experiments, make_square, pool, executor="processes", progress=False).skipped == 4


def test_a_dying_process_worker_is_a_recorded_failure(tmp_path):
    store = ResultStore(tmp_path)
    summary = execute([(Toy(1), (7,))], make_square_or_die, store, executor="processes", workers=1, progress=False)
    assert summary.done == 0 and len(summary.failed) == 1 and "BrokenProcessPool" in summary.failed[0].error
    assert not store.has(Toy(1), 7) and store.failure(Toy(1), 7)["error"].startswith("BrokenProcessPool")


# --- Ray: a local cluster of 2 CPUs shared by the tests below -------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the Ray executor needs the [cluster] extra")
    # functions of this test module travel to the workers by value (the module is not importable there)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _smoke_sweep():
    """Table 1 at smoke scale on the tiny random BERT, seed 0: STS-B with LoRA, RTE with Deep LoRA."""
    from compressible.finetune.backbones import TINY_BERT, load_tokenizer
    from compressible.hub import ResourceMissingError
    from compressible.sweeps import experiments_for

    try:
        load_tokenizer(TINY_BERT)
    except (ResourceMissingError, OSError) as error:
        pytest.skip(f"needs the MiniLM tokenizer and the GLUE mirror: {error}")
    experiments = experiments_for("fewshot_glue", "smoke", parts=["table1"])
    chosen = [(c, seeds) for c, seeds in experiments if (c.task, c.adapter.init) in {("stsb", "lora"), ("rte", "compressed")}]
    assert len(chosen) == 2
    return chosen


def _without_timing(record):
    return {k: v for k, v in record.items() if k not in TIMING}


@pytest.fixture(scope="module")
def local_smoke_runs(tmp_path_factory):
    """The two runs of :func:`_smoke_sweep`, computed once by the local path in this process: the
    reference that the process pool and the Ray executor must reproduce."""
    from compressible.experiments.glue_runs import run_experiments

    experiments = _smoke_sweep()
    local = ResultStore(tmp_path_factory.mktemp("local"))
    assert run_experiments(experiments, local, progress=False) == 2
    return experiments, local


@pytest.mark.slow
def test_ray_results_equal_local_results(tmp_path, ray_cluster, local_smoke_runs):
    """The sweep's Ray path stores, run for run, what today's local path stores (timings aside)."""
    from compressible.sweeps import sweep

    experiments, local = local_smoke_runs
    remote = ResultStore(f"file://{tmp_path}/ray")
    # 2 CPUs a run: one worker computes both, one after another (cheaper than starting two on a busy machine)
    summary = sweep(experiments, remote, progress=False, executor="ray", cpus_per_run=2)
    assert (summary.done, summary.skipped, summary.failed) == (2, 0, ())
    for config, seeds in experiments:
        for seed in seeds:
            ours, theirs = local.load(config, seed), remote.load(config, seed)
            assert _without_timing(ours) == _without_timing(theirs)
            assert theirs["_environment"]["pid"] != os.getpid()  # computed in a Ray worker
    rerun = sweep(experiments, remote, progress=False, executor="ray")
    assert (rerun.done, rerun.skipped) == (0, 2)


def test_sweep_cli_rejects_bad_executor_options(tmp_path, capsys):
    from compressible.sweeps import main

    args = ["run", "fewshot_glue", "--scale", "smoke", "--root", str(tmp_path)]
    for extra, message in (
        (["--gpus-per-run", "1"], "--address and --gpus-per-run need --executor ray"),
        (["--executor", "ray", "--device", "cuda"], "device='cuda' with executor='ray' needs gpus_per_run > 0"),
        (["--executor", "ray", "--device", "cuda:1", "--gpus-per-run", "1"], "use device='cuda'"),
        (["--executor", "ray", "--cpus-per-run", "-1"], "cpus_per_run must be a number >= 0, got -1.0"),
        (["--executor", "slurm"], "invalid choice: 'slurm'"),
    ):
        with pytest.raises(SystemExit):
            main(args + extra)
        assert message in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.json"))  # nothing ran


@dataclasses.dataclass(frozen=True)
class KilledWhileSaving:
    """On the first attempt of seed 1, the worker process dies while the store writes the result:
    after the temporary file is written, before it is renamed into place."""

    marker: str

    def __call__(self, config, seed):
        if seed == 1 and not os.path.exists(self.marker):
            Path(self.marker).touch()
            replace = os.replace
            os.replace = lambda src, dst: os._exit(1) if dst.endswith("seed-1.json") else replace(src, dst)
        import torch

        return {"value": config.x * 100 + seed, "threads": torch.get_num_threads()}


def test_ray_retries_a_worker_killed_mid_write(tmp_path, ray_cluster):
    store = ResultStore(tmp_path / "store")
    marker = str(tmp_path / "killed-once")
    make = functools.partial(KilledWhileSaving, marker)
    summary = execute([(Toy(7), (0, 1, 2))], make, store, executor="ray", max_retries=2, threads=2, progress=False)
    assert Path(marker).exists()  # the worker did die once
    assert (summary.done, summary.failed) == (3, ())
    assert [store.load(Toy(7), s)["value"] for s in (0, 1, 2)] == [700, 701, 702]
    assert {store.load(Toy(7), s)["threads"] for s in (0, 1, 2)} == {2}  # torch threads fixed in every task
    assert not list((tmp_path / "store").rglob("*.tmp")) and not list((tmp_path / "store").rglob("*.failed.json"))


def dies(config, seed):
    os._exit(1)


def test_ray_worker_dying_every_time_is_a_recorded_failure(tmp_path, ray_cluster):
    store = ResultStore(tmp_path)
    summary = execute([(Toy(8), (1,))], lambda: dies, store, executor="ray", max_retries=1, progress=False)
    (failure,) = summary.failed
    assert failure.seed == 1 and failure.config_key == config_key(Toy(8)) and "Worker" in failure.error
    assert store.failure(Toy(8), 1)["error"] == failure.error and not store.has(Toy(8), 1)


def sleeps(config, seed):
    import time

    time.sleep(60)
    return {"value": seed}


def test_ctrl_c_cancels_pending_ray_tasks(tmp_path, ray_cluster, monkeypatch):
    """Ctrl-C while the driver waits: pending runs are cancelled and finished results stay. The
    KeyboardInterrupt is raised from the driver's wait (the second one, when the three runs are
    submitted and sleeping): a timer's simulated SIGINT lands wherever the interpreter happens to
    be and, on a loaded machine, can miss the wait altogether."""
    import time

    store = ResultStore(tmp_path)
    execute([(Toy(9), (0,))], make_square, store, executor="ray", progress=False)  # one finished run stays
    real_wait, calls = ray_cluster.wait, []

    def interrupted_wait(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(ray_cluster, "wait", interrupted_wait)
    start = time.perf_counter()
    with pytest.raises(SweepInterrupted) as caught:
        execute([(Toy(9), (0, 1, 2, 3))], lambda: sleeps, store, executor="ray", progress=False)
    assert time.perf_counter() - start < 30  # did not wait for the runs
    summary = caught.value.summary
    assert (summary.done, summary.skipped, summary.cancelled) == (0, 1, 3)
    assert store.has(Toy(9), 0) and not any(store.has(Toy(9), s) for s in (1, 2, 3))


@pytest.mark.slow
def test_processes_glue_runs_equal_local_runs(tmp_path, local_smoke_runs):
    """Real runs (tiny BERT, smoke) computed by two worker processes store what one process stores."""
    from compressible.finetune.classify import Runner

    experiments, local = local_smoke_runs
    pool = ResultStore(tmp_path / "pool")
    summary = execute(experiments, functools.partial(Runner, device="cpu", progress=False), pool, executor="processes",
                      workers=2, threads=1, progress=False)
    assert (summary.done, summary.failed) == (2, ())
    for config, seeds in experiments:
        for seed in seeds:
            assert _without_timing(local.load(config, seed)) == _without_timing(pool.load(config, seed))
