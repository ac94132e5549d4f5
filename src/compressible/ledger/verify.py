"""Verifying the ledger: every record's digest, a re-execution of the first steps of at least one run
of every ``(chapter, method)``, and one whole run drawn at random.

What is compared (:func:`verify`):

1. **Digests.** Every record must carry the SHA-256 of its own content (an edited record fails).
2. **First steps.** For every ``(chapter, method)`` group of the chapters' plans, one run held by the
   ledger (drawn with a generator seeded by the commit, so a rerun of one commit draws the same runs)
   is re-executed for its first ``K`` updates. The fields that no platform changes (the training sample,
   every step's rate) must be equal; the loss curve must be bit-identical when this machine matches the
   record's platform (:data:`~compressible.ledger.records.PLATFORM_FIELDS`), else within
   :data:`TOLERANCES`. The matrix parts have no steps to cut: a race or a track is cut at ``K`` logged
   steps and compared on its rows, a sweep over ranks or widths is re-executed for its first rank or
   width, and a sweep over sizes for its smallest.
3. **A whole run** drawn the same way among the runs whose recorded wall time is at most
   ``whole_budget`` seconds: every stored number but times must be equal on the same platform; on
   another, the loss curve's first ``K`` steps are held to the tolerance and the final metrics to
   :data:`METRIC_TOLERANCE`.

The comparisons themselves, their :class:`~compressible.ledger.checks.Check` records and the
:class:`~compressible.ledger.checks.Report` are :mod:`compressible.ledger.checks`. A mismatch fails with a table
of what differed (:class:`~compressible.ledger.checks.VerificationError`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import time
from pathlib import Path
from typing import Any, Sequence

from ..environment import environment_info, git_commit
from ..workers import Threads
from .checks import Check, Report, VerificationError, compare_curves, compare_metrics, compare_rows, differing_fields
from .coverage import STORED_CHAPTERS, PlannedRun, planned_runs
from .records import Ledger, check_digest, iter_records, same_platform
from .replay import replay_precision, replayer_for

__all__ = ["TOLERANCES", "METRIC_TOLERANCE", "verify", "ledger_runs", "tolerance_for", "commit_seed", "platform_now"]

TOLERANCES = {
    "same platform": 0.0,
    "float32, other CPU or versions": 1e-4,
    "bfloat16 against float32": 0.03,
    "same GPU": 1e-4,
    "GPU against CPU": 0.03,
    "run to convergence, other platform": 0.05,
}
"""Largest relative difference allowed between a stored loss and its re-execution, per step of the first
``K`` (``|a - b| / max(|a|, |b|, 1e-3)``), by how the platforms differ:

- the same platform (CPU capability or GPU, precision, threads, torch and transformers versions) must
  give the same bits: results are bit-identical on one CPU (measured; the package fixes every random
  stream and thread count);
- float32 on another CPU or version: kernels sum in another order, about 1e-7 relative per operation; a
  few hundred operations deep over ``K`` steps stays orders of magnitude under 1e-4;
- bf16 autocast on one side (a record computed under bf16, re-executed in float32 on a CPU without
  bf16, or the other way round): bf16 keeps 8 bits of mantissa (relative rounding 2^-9 ~ 2e-3 per
  operation). Measured by ``benchmarks/ledger_tolerance.py`` on this ledger's ci records (the first 5
  steps of 20 bf16 runs, up to 3 of every GLUE group, re-executed in float32): at most 2.9e-3. 0.03
  leaves a margin of 10; a changed rate or seed is caught by the fields compared for equality;
- the same GPU: CUDA's backward kernels may add in any order (atomics), so bit-identical is not
  promised; 1e-4 as for float32 on another CPU (not yet measured on a GPU: ``make gpu-check`` does);
- a GPU record against a CPU re-execution (or the other way round): dropout masks come from the
  device's own generator, so the masks differ. Changing only the dropout stream of the MiniLM Fig. 6
  run moved its first 5 losses by up to 0.9 % (measured on the CPU); 0.03 as for bf16;
- a matrix part that trains until its tolerance (the width and rank sweeps, the speed-up against ``d``)
  compared on another platform: thousands of steps, ending at losses of ~1e-10 where the last digits
  are rounding. Re-executed with AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2``) on the AVX-512 machine
  that computed them, the ledger's parts differ by at most 7.9e-3 (a depth-3 final test loss); 0.05.
  A part cut after its first steps (the Fig. 5 race, the Fig. 4 track) keeps the tolerance of its
  precision: 5.2e-14 measured.

The fields that no platform changes (the training sample, every step's rate) are compared for
equality on every platform."""

METRIC_TOLERANCE = 0.05
"""Largest absolute difference of a whole run's final metric (accuracy, Pearson, ...) on another
platform: small differences of every step add up over a whole run. Measured: the ledger's precision
twins (Few-shot GLUE at ci, the same runs in float32 and under bf16 autocast, 200 steps) differ by at
most 9.0e-4 in Pearson (2 pairs, ``benchmarks/ledger_tolerance.py``); a whole Deep LoRA subspaces run
(compressed, 200 steps) recorded under bf16 and re-executed in float32 with AVX2 kernels, by 0.0153.
0.05 leaves a margin of 3 over the larger; a seed's spread on these runs is larger still, so a whole run
on another platform checks that a run lands where it should, not its last digits."""


def commit_seed(commit: str | None = None) -> int:
    """A seed from the commit (``git rev-parse HEAD`` of the package), so a rerun of one commit draws the same runs."""
    commit = commit or git_commit() or "no-commit"
    return int(hashlib.sha256(commit.encode()).hexdigest()[:12], 16)


def platform_now(config: Any, float32: bool, device: str, threads: int | None) -> dict:
    """The platform fields of a re-execution of ``config`` here (see :data:`~compressible.ledger.records.PLATFORM_FIELDS`)."""
    env = environment_info(device)
    return {
        "device": "cuda" if str(device).startswith("cuda") else "cpu",
        "cpu_capability": env.get("cpu_capability"),
        "gpu": env.get("gpu") if str(device).startswith("cuda") else None,
        "precision": replay_precision(config, float32, device),
        "threads": threads,
        "torch": env.get("torch"),
        "transformers": env.get("transformers"),
    }


def tolerance_for(record: dict, now: dict) -> tuple[str, float]:
    """How the platforms of a record's provenance and of ``now`` differ, and the tolerance for that."""
    on_gpu = "cuda" in (record.get("device"), now.get("device"))
    if same_platform(record, now):
        if on_gpu:
            return "same GPU", TOLERANCES["same GPU"]
        return "same platform", TOLERANCES["same platform"]
    if on_gpu and record.get("device") != now.get("device"):
        return "GPU against CPU", TOLERANCES["GPU against CPU"]
    if "bfloat16" in (record.get("precision"), now.get("precision")):
        return "bfloat16 against float32", TOLERANCES["bfloat16 against float32"]
    return "float32, other CPU or versions", TOLERANCES["float32, other CPU or versions"]


def _run_label(run: PlannedRun) -> str:
    return f"{type(run.config).__name__} {run.key[:8]} seed {run.seed}"


def _threads(record: dict) -> int | None:
    threads = record.get("_provenance", {}).get("threads")
    return threads if isinstance(threads, int) and threads >= 1 else None


# --- the matrix parts: cut and compare rows -----------------------------------------------------

_CONVERGED = {"RandomVsCompressedConfig", "WidthSweepConfig", "SameErrorConfig"}
"""Matrix parts whose rows are states at convergence (see :data:`TOLERANCES`)."""


def _rows_tolerance(config: Any, platform: str, allowed: float) -> tuple[str, float]:
    if platform in ("same platform", "same GPU") or type(config).__name__ not in _CONVERGED:
        return platform, allowed
    key = "run to convergence, other platform"
    return key, TOLERANCES[key]


_ROW_KEYS = {
    "CompressionRaceConfig": ("method", "step"),
    "FactorizationTrackConfig": ("step",),
    "RandomVsCompressedConfig": ("method", "rank", "trial"),
    "WidthSweepConfig": ("width", "trial"),
    "SameErrorConfig": ("d",),
}


def _cut_matrix(config: Any, steps: int) -> Any:
    """The part of a matrix config that :func:`verify` re-executes (see the module docstring)."""
    name = type(config).__name__
    if name == "CompressionRaceConfig":
        return dataclasses.replace(config, max_steps=steps * config.log_every,
                                   max_steps_compressed=None if config.max_steps_compressed is None else steps * config.log_every)
    if name == "FactorizationTrackConfig":
        return dataclasses.replace(config, steps=steps * config.log_every)
    if name == "RandomVsCompressedConfig":
        return dataclasses.replace(config, ranks=config.ranks[:1])
    if name == "WidthSweepConfig":
        return dataclasses.replace(config, widths=config.widths[:1])
    return config


def _cost(record: dict) -> float:
    """A record's recorded wall time (``inf`` when it has none)."""
    wall = record.get("_provenance", {}).get("wall_time")
    return float(wall) if isinstance(wall, (int, float)) else math.inf


# --- one check ------------------------------------------------------------------------------------

def _prepare(run: PlannedRun, record: dict, float32: bool, device: str):
    """What both kinds of re-execution need: the replayer, the record's threads, how the platforms differ
    and the tolerance for that, and the check's group name."""
    threads = _threads(record)
    platform, allowed = tolerance_for(record.get("_provenance", {}), platform_now(run.config, float32, device, threads))
    return replayer_for(run.config), threads, platform, allowed, f"{run.chapter} / {run.method}"


def _first_steps(run: PlannedRun, record: dict, steps: int, float32: bool, device: str) -> Check:
    tic = time.perf_counter()
    replayer, threads, platform, allowed, group = _prepare(run, record, float32, device)

    if replayer.first is None:  # a matrix part: cut it, re-execute, compare rows
        cut = _cut_matrix(run.config, steps)
        with Threads(threads):
            replayed = replayer.whole(cut, run.seed, float32, device=device)
        diff, where = compare_rows(record["rows"], replayed["rows"], _ROW_KEYS[type(run.config).__name__])
        platform, allowed = _rows_tolerance(run.config, platform, allowed)
        return Check("first steps", group, _run_label(run), platform, diff, allowed, diff <= allowed,
                     where, time.perf_counter() - tic)
    k = min(steps, len(record["train_loss"]))
    with Threads(threads):
        replayed = replayer.first(run.config, run.seed, k, float32, device=device)
    for name in replayer.exact:
        stored = record.get(name)
        stored = stored[:k] if name == "lr" and stored is not None else stored
        if replayed.get(name) != stored:
            return Check(f"first {k} steps", group, _run_label(run), platform, math.inf, allowed, False,
                         f"{name} differs", time.perf_counter() - tic)
    diff = compare_curves(record["train_loss"][:k], replayed["train_loss"])
    return Check(f"first {k} steps", group, _run_label(run), platform, diff, allowed, diff <= allowed,
                 "train_loss", time.perf_counter() - tic)


def _whole(run: PlannedRun, record: dict, steps: int, float32: bool, device: str) -> Check:
    tic = time.perf_counter()
    replayer, threads, platform, allowed, group = _prepare(run, record, float32, device)
    with Threads(threads):
        result = replayer.whole(run.config, run.seed, float32, device=device)
    if "rows" in record:
        diff, where = compare_rows(record["rows"], result["rows"], _ROW_KEYS[type(run.config).__name__])
        platform, allowed = _rows_tolerance(run.config, platform, allowed)
        return Check("whole run", group, _run_label(run), platform, diff, allowed, diff <= allowed, where,
                     time.perf_counter() - tic)
    if platform == "same platform":
        differ = differing_fields(record, result)
        return Check("whole run", group, _run_label(run), platform, 0.0 if not differ else math.inf, 0.0, not differ,
                     "every stored number" if not differ else "differ: " + ", ".join(differ[:6]), time.perf_counter() - tic)
    k = min(steps, len(record["train_loss"]))
    diff = compare_curves(record["train_loss"][:k], result["train_loss"][:k])
    metric_diff = compare_metrics(record, result)
    ok = diff <= allowed and metric_diff <= METRIC_TOLERANCE
    return Check("whole run", group, _run_label(run), platform, diff, allowed, ok,
                 f"first {k} losses; final metrics differ by {metric_diff:.3g} (allowed {METRIC_TOLERANCE})",
                 time.perf_counter() - tic)


# --- the whole verification ---------------------------------------------------------------------

def ledger_runs(ledger: Ledger, scales: Sequence[str] = ("ci",),
                chapters: Sequence[str] = STORED_CHAPTERS) -> dict[str, list[PlannedRun]]:
    """The chapters' planned runs that ``ledger`` holds, by ``"chapter / method"`` group."""
    groups: dict[str, list[PlannedRun]] = {}
    seen = set()
    for scale in scales:
        for chapter in chapters:
            for run in planned_runs(chapter, scale, ledger):
                if (run.key, run.seed) in seen or not ledger.has(run.config, run.seed):
                    continue
                seen.add((run.key, run.seed))
                groups.setdefault(f"{run.chapter} / {run.method}", []).append(run)
    return groups


def verify(ledger: str | Path | Ledger, *, steps: int = 5, whole: int = 1, whole_budget: float = 60.0,
           scales: Sequence[str] = ("ci",), chapters: Sequence[str] = STORED_CHAPTERS, float32: bool = False,
           device: str = "cpu", commit: str | None = None, progress: bool = True, raise_on_failure: bool = True,
           runs: Sequence[PlannedRun] | None = None) -> Report:
    """Verify ``ledger`` (see the module docstring); raises :class:`~compressible.ledger.checks.VerificationError` on a mismatch.

    ``steps``: the first updates re-executed per group (``K``); ``whole``: how many whole runs to draw,
    among those whose recorded wall time is at most ``whole_budget`` seconds; ``float32``: compute in
    float32 where a run asks for bf16 autocast; ``commit``: what seeds the draw (default: the package's);
    ``runs``: verify these runs (grouped by chapter and method) instead of the chapters' plans at ``scales``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if isinstance(whole, bool) or not isinstance(whole, int) or whole < 0:
        raise ValueError(f"whole must be an int >= 0, got {whole!r}")
    ledger = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
    report = Report(seed=commit_seed(commit))
    rng = random.Random(report.seed)
    edited = []
    for record in iter_records(ledger.root):
        report.records += 1
        if not check_digest(record.data):
            edited.append(record)
            report.checks.append(Check("digest", "—", repr(record), "—", math.inf, 0.0, False, "edited or unsealed"))
    if not edited:
        report.checks.append(Check("digest", "every record", f"{report.records} records", "—", 0.0, 0.0, True,
                                   "SHA-256 of each record's content"))
    if runs is None:
        groups = ledger_runs(ledger, scales, chapters)
    else:
        groups = {}
        for run in runs:
            if ledger.has(run.config, run.seed):
                groups.setdefault(f"{run.chapter} / {run.method}", []).append(run)
    say = print if progress else (lambda *a, **k: None)
    candidates = []
    for group, runs in groups.items():
        # a run of the group drawn at random, among its cheaper half when the group's runs differ in cost
        # (the speed-up against d: the original at d = 400 costs 15 times the one at d = 100)
        costs = [_cost(ledger.load(r.config, r.seed)) for r in runs]
        cheap = [r for r, c in zip(runs, costs) if c <= sorted(costs)[(len(costs) - 1) // 2]]
        run = rng.choice(cheap)
        record = ledger.load(run.config, run.seed)
        say(f"[verify] {group}: first {steps} steps of {_run_label(run)}", flush=True)
        report.checks.append(_first_steps(run, record, steps, float32, device))
        for r in runs:
            wall = ledger.load(r.config, r.seed).get("_provenance", {}).get("wall_time")
            if isinstance(wall, (int, float)) and wall <= whole_budget:
                candidates.append(r)
    for run in rng.sample(candidates, min(whole, len(candidates))):
        say(f"[verify] whole run: {run.chapter} / {run.method}, {_run_label(run)}", flush=True)
        report.checks.append(_whole(run, ledger.load(run.config, run.seed), steps, float32, device))
    if raise_on_failure and not report.ok:
        raise VerificationError(report.table()[lambda t: ~t["ok"]])
    return report
