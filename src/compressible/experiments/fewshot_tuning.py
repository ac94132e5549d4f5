"""Checks behind the Few-shot GLUE comparisons: fair learning rates, bf16 against float32, runs that trained.

- **Tuning** (:class:`TuningPlan`). The paper gives no learning rate for compressed Deep LoRA outside
  App. D.2, and a smaller backbone need not share bert-base's best rate. Every method therefore gets
  the same number of grid points (LoRA: ``lr``; compressed Deep LoRA: ``(inner lr, gamma)``), each
  run at the tuning ``n`` and seeds, and scored on training examples *held out of every few-shot
  sample* (``RunConfig.holdout``), never on the validation split the chapter reports. The grid
  point with the best mean held-out score is the method's rate (:func:`choose`); ties go to the
  earlier grid point. A chosen point's runs are the reported runs at that ``n`` and seed (the same
  configuration), and their validation scores are only reported, never used to choose.
- **Precision** (:class:`PrecisionPlan`): a few runs of the plan repeated in float32 and compared
  with their bf16-autocast twins, against the seed-to-seed spread (:class:`PrecisionSummary`).
- **Training check** (:class:`TrainingCheck`): whether every run's final training loss fell below
  half the loss of the best constant predictor on its sample
  (:func:`compressible.finetune.metrics.has_trained`), so that no method is compared before it trained.
- **Diagnosis** (:class:`DiagnosisPlan`): where one batch no longer holds the whole sample, the
  compressed runs of Fig. 6 at the chosen rates again, each changing one thing: the outer factors
  built from the gradient of the *whole* sample instead of the first batch (``RunConfig.compress_from``),
  the outer factors moving at another multiple ``gamma`` of the inner rate, a smaller inner rate, or more
  steps. Which change makes a stalled run train says which cause it was, and one that does not rules its
  cause out; the probes of the head's input say whether a stalled run *collapsed* (every example mapped to
  nearly one point, :data:`COLLAPSED`) and whether a change kept it from collapsing (:class:`DiagnosisSummary`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from ..finetune.classify import RunConfig
from ..finetune.metrics import TRAINED_FRACTION, primary_metric
from ..store import ResultStore
from .glue_runs import Experiment, GlueMethods, as_store
from .glue_stats import DEEP, LORA, finite

__all__ = [
    "TuningPlan",
    "PrecisionPlan",
    "GridPoint",
    "TuningSummary",
    "PrecisionSummary",
    "TrainingCheck",
    "tuning_experiments",
    "tuning_frame",
    "choose",
    "summarise_tuning",
    "summarise_precision",
    "training_check",
    "tuning_table",
    "precision_table",
    "training_table",
    "tuning_text",
    "precision_text",
    "training_text",
    "plot_sensitivity",
    "plot_training_curves",
    "DiagnosisPlan",
    "DiagnosisSummary",
    "WHOLE_SAMPLE",
    "diagnosis_experiments",
    "summarise_diagnosis",
    "diagnosis_table",
    "diagnosis_text",
    "diagnosis_conclusion",
    "free_outer_label",
    "inner_rate_label",
    "longer_label",
    "RANK_ONE_RATIO",
    "rank_one_modules",
    "rank_one_finding",
    "COLLAPSED",
    "is_collapsed",
    "spread_course",
    "collapse_finding",
]

WHOLE_SAMPLE = "Deep LoRA, outer factors from the whole sample"
"""Label of the diagnosis runs whose outer factors come from the whole sample's gradient."""


def free_outer_label(gamma: float) -> str:
    """Label of the diagnosis runs whose outer factors move at ``gamma`` times the inner rate."""
    return f"Deep LoRA, γ = {gamma:g}"


def inner_rate_label(lr: float) -> str:
    """Label of the diagnosis runs whose inner factors train at ``lr``."""
    return f"Deep LoRA, inner rate {lr:g}"


def longer_label(steps: int) -> str:
    """Label of the diagnosis runs trained for ``steps`` steps instead of Fig. 6's."""
    return f"Deep LoRA, {steps} steps"


RANK_ONE_RATIO = 1e-2
"""An update counts as rank one when its second singular value is below this fraction of its first."""


def rank_one_modules(result: dict) -> tuple[int, int] | None:
    """``(rank-one updates, adapted modules)`` of a stored run from its update spectra (``None`` when the
    run stored none): an update is rank one when ``sigma_2 < RANK_ONE_RATIO * sigma_1`` (a zero update is not)."""
    spectra = result.get("spectra")
    if not spectra:
        return None
    count = 0
    for entry in spectra.values():
        s = list(entry["singular_values"]) + [0.0]
        if s[0] > 0 and s[1] < RANK_ONE_RATIO * s[0]:
            count += 1
    return count, len(spectra)


COLLAPSED = 0.1
"""A run's head input has collapsed when its spread over examples ends below this fraction of its start."""


def is_collapsed(start_spread: float, spread: float) -> bool:
    """Whether the head input's ``spread`` is below :data:`COLLAPSED` of its ``start_spread`` (every example
    then reaches the frozen head as nearly the same input)."""
    return spread < COLLAPSED * start_spread


def spread_course(result: dict) -> dict | None:
    """What a stored run's probes of the head's input (``result["probes"]``, see
    :func:`~compressible.finetune.classify.head_input_probe`) show, or ``None`` when it stored none:
    ``start_spread``, ``min_spread`` and ``final_spread`` (the spread over the first batch at the first,
    smallest and last probe), ``collapse_step`` (the first probed step whose spread is below
    :data:`COLLAPSED` of the start; ``None`` if none) and ``final_saturated`` (the share of saturated tanh
    pooler units at the last probe; ``None`` without a tanh pooler)."""
    probes = result.get("probes")
    if not probes:
        return None
    start = float(probes[0]["spread"])
    below = [q["step"] for q in probes if is_collapsed(start, q["spread"])]
    return {"start_spread": start, "min_spread": float(min(q["spread"] for q in probes)),
            "final_spread": float(probes[-1]["spread"]), "collapse_step": below[0] if below else None,
            "final_saturated": probes[-1]["saturated"]}


COLORS = {LORA: "tab:blue", DEEP: "tab:red", "Deep LoRA (full width)": "tab:green", WHOLE_SAMPLE: "tab:purple"}


@dataclass(frozen=True)
class TuningPlan:
    """A grid of learning rates per method, run at ``n`` training examples and scored on held-out examples."""

    n: tuple[int, ...]
    seeds: tuple[int, ...]
    steps: int
    lora: tuple[float, ...]
    """LoRA's learning rates."""
    compressed: tuple[tuple[float, float], ...]
    """Compressed Deep LoRA's ``(inner learning rate, gamma)`` points."""

    def __post_init__(self) -> None:
        for name in ("n", "seeds", "lora", "compressed"):
            if not getattr(self, name):
                raise ValueError(f"TuningPlan.{name} must not be empty")
        if len(self.lora) != len(self.compressed):
            raise ValueError(
                f"TuningPlan gives LoRA {len(self.lora)} grid points and compressed Deep LoRA {len(self.compressed)}; "
                "a fair comparison gives every method the same budget"
            )
        for point in self.compressed:
            if len(point) != 2:
                raise ValueError(f"TuningPlan.compressed points are (inner lr, gamma) pairs, got {point!r}")


@dataclass(frozen=True)
class PrecisionPlan:
    """Runs repeated in float32 to compare with their bf16-autocast twins: ``method`` at ``n``, ``seeds``."""

    n: int
    seeds: tuple[int, ...]
    method: str = "lora"

    def __post_init__(self) -> None:
        if len(self.seeds) < 2:
            raise ValueError(f"PrecisionPlan needs >= 2 seeds to compare with the seed-to-seed spread, got {self.seeds!r}")


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@dataclass(frozen=True)
class DiagnosisPlan:
    """Compressed Deep LoRA at ``n`` (a Fig. 6 size larger than one batch), ``seeds`` (Fig. 6 seeds
    there), each run changing one thing against the Fig. 6 run: the outer factors from the whole
    sample's gradient (if ``whole_sample``), the outer factors at ``gamma`` times the inner rate (if
    ``gamma``), if ``lr_factor`` the inner rate times ``lr_factor`` (outer factors at ``gamma`` of that,
    as in Fig. 6), and, if ``longer_steps``, the same run trained for that many steps."""

    n: int
    seeds: tuple[int, ...]
    gamma: float | None = 1.0
    """The outer factors' rate ratio of the second variant (1: no discrepant rate; ``None``: not run; not run
    either when it is the ratio the Fig. 6 runs use)."""
    lr_factor: float | None = 0.1
    """The third variant's inner rate, as a multiple of the chosen one (``None``: not run)."""
    longer_steps: int | None = None
    """Steps of the fourth variant, more than Fig. 6's: is a stalled run slow or stuck? (``None``: not run)."""
    whole_sample: bool = True
    """Run the first variant (outer factors from the whole sample's gradient)."""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("DiagnosisPlan.seeds must not be empty")
        if self.gamma is not None and not _positive(self.gamma):
            raise ValueError(f"DiagnosisPlan.gamma must be a positive number or None, got {self.gamma!r}")
        if not isinstance(self.whole_sample, bool):
            raise ValueError(f"DiagnosisPlan.whole_sample must be True or False, got {self.whole_sample!r}")
        if not (self.whole_sample or self.gamma is not None or self.lr_factor is not None or self.longer_steps is not None):
            raise ValueError("DiagnosisPlan runs no variant (whole_sample=False, gamma, lr_factor and longer_steps None); "
                             "give at least one, or no DiagnosisPlan")
        if self.lr_factor is not None and not _positive(self.lr_factor):
            raise ValueError(f"DiagnosisPlan.lr_factor must be a positive number or None, got {self.lr_factor!r}")
        if self.lr_factor == 1:
            raise ValueError("DiagnosisPlan.lr_factor=1 repeats the Fig. 6 runs; give another multiple of the inner rate")
        if self.longer_steps is not None and (isinstance(self.longer_steps, bool) or not isinstance(self.longer_steps, int)
                                              or self.longer_steps < 1):
            raise ValueError(f"DiagnosisPlan.longer_steps must be a positive int or None, got {self.longer_steps!r}")


def diagnosis_experiments(dp: DiagnosisPlan, methods: GlueMethods, base: dict, steps: int) -> list[Experiment]:
    """The variants of :class:`DiagnosisPlan` (part ``"diagnosis"``) at ``methods``' (chosen) rates;
    ``base`` holds the ``RunConfig`` fields of the chapter's STS-B runs. The ``gamma`` variant is left out
    when ``methods`` already train at that ``gamma`` (it would repeat Fig. 6's runs: a tuning chose it)."""
    compressed = RunConfig(n_train=dp.n, steps=steps, **base, **methods.method("compressed"))
    if dp.longer_steps is not None and dp.longer_steps <= steps:
        raise ValueError(f"DiagnosisPlan.longer_steps={dp.longer_steps} must be more than the Fig. 6 runs' {steps} steps")
    out = []
    if dp.whole_sample:
        out.append(Experiment("diagnosis", WHOLE_SAMPLE, compressed.replace(compress_from="sample"), dp.seeds))
    if dp.gamma is not None and dp.gamma != compressed.adapter.gamma:  # a tuning that chose dp.gamma leaves nothing to change
        free = dataclasses.replace(methods, deep_gamma=dp.gamma)
        out.append(Experiment("diagnosis", free_outer_label(dp.gamma),
                              RunConfig(n_train=dp.n, steps=steps, **base, **free.method("compressed")), dp.seeds))
    if dp.lr_factor is not None:
        slow = dataclasses.replace(methods, deep_lr=compressed.lr * dp.lr_factor)
        out.append(Experiment("diagnosis", inner_rate_label(compressed.lr * dp.lr_factor),
                              RunConfig(n_train=dp.n, steps=steps, **base, **slow.method("compressed")), dp.seeds))
    if dp.longer_steps is not None:
        out.append(Experiment("diagnosis", longer_label(dp.longer_steps), compressed.replace(steps=dp.longer_steps),
                              dp.seeds))
    return out


def tuning_experiments(tp: TuningPlan, methods: GlueMethods, fields: Callable[[int], dict]) -> list[Experiment]:
    """Every grid point of ``tp`` at every tuning ``n`` (part ``"tuning"``); ``fields(n)`` gives the
    ``RunConfig`` fields the chapter's STS-B runs at ``n`` share (task, backbone, evaluation subset, ...)."""
    if methods.holdout < 1:
        raise ValueError("tuning needs held-out training examples: set GlueMethods.holdout >= 1")
    out = []
    for n in tp.n:
        for lr in tp.lora:
            m = dataclasses.replace(methods, lora_lr=lr)
            out.append(Experiment("tuning", LORA, RunConfig(n_train=n, steps=tp.steps, **fields(n), **m.method("lora")),
                                  tp.seeds))
        for lr, gamma in tp.compressed:
            m = dataclasses.replace(methods, deep_lr=lr, deep_gamma=gamma)
            out.append(Experiment("tuning", DEEP, RunConfig(n_train=n, steps=tp.steps, **fields(n), **m.method("compressed")),
                                  tp.seeds))
    return out


def tuning_frame(experiments: Sequence[Experiment], store: ResultStore | str | None = None) -> pd.DataFrame:
    """One row per tuning run: ``method, lr, gamma, n, seed, holdout`` (the tuning score) and ``validation``."""
    store = as_store(store)
    rows = []
    for e in experiments:
        metric = primary_metric(e.config.task)
        for seed in e.seeds:
            r = store.load(e.config, seed)
            rows.append({
                "method": e.label, "lr": e.config.lr,
                "gamma": e.config.adapter.gamma if e.config.adapter.init == "compressed" else None,
                "n": e.config.n_train, "seed": seed, "holdout": r["holdout"][metric], "validation": r["final"][metric],
                "trained": r["trained"],
            })
    return pd.DataFrame(rows)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GridPoint(_Model):
    """One grid point's scores: mean (and std) over its runs on the held-out examples, and on validation."""

    method: str
    lr: float
    gamma: float | None
    holdout_mean: float | None
    holdout_std: float | None
    validation_mean: float | None
    """Reported only: never used to choose."""
    runs: int
    trained: int
    """Runs whose training loss fell below half the constant predictor's."""
    chosen: bool


class TuningSummary(_Model):
    """The grid, every point's held-out score, and the rate chosen for each method."""

    n: list[int]
    seeds: int
    steps: int
    holdout: int
    """Held-out training examples the points are scored on."""
    points: list[GridPoint]
    lora_lr: float
    deep_lr: float
    deep_gamma: float


def _points(frame: pd.DataFrame) -> dict[tuple[str, float, float | None], pd.DataFrame]:
    """The runs of every grid point ``(method, lr, gamma)``, in the frame's order (``gamma`` None for LoRA)."""
    points: dict[tuple[str, float, float | None], list[int]] = {}
    for i, r in frame.iterrows():
        gamma = None if r["gamma"] is None or pd.isna(r["gamma"]) else float(r["gamma"])
        points.setdefault((r["method"], float(r["lr"]), gamma), []).append(i)
    return {k: frame.loc[rows] for k, rows in points.items()}


def choose(frame: pd.DataFrame) -> dict[str, tuple[float, float | None]]:
    """``{method: (lr, gamma)}`` of the grid point with the highest mean held-out score (the first in
    grid order on ties; a point whose score is undefined ranks last). The validation column is not read."""
    best: dict[str, tuple[float, tuple[float, float | None]]] = {}
    for (method, lr, gamma), g in _points(frame).items():
        score = float(np.nanmean(g["holdout"])) if np.isfinite(g["holdout"].to_numpy(dtype=float)).any() else -np.inf
        if method not in best or score > best[method][0]:
            best[method] = (score, (lr, gamma))
    return {method: point for method, (_, point) in best.items()}


def summarise_tuning(frame: pd.DataFrame, tp: TuningPlan, holdout: int) -> TuningSummary:
    """The :class:`TuningSummary` of the tuning runs ``frame`` (:func:`tuning_frame`)."""
    chosen = choose(frame)
    points = []
    for (method, lr, gamma), g in _points(frame).items():
        h = g["holdout"].to_numpy(dtype=float)
        h = h[np.isfinite(h)]
        points.append(GridPoint(
            method=method, lr=lr, gamma=gamma, holdout_mean=finite(h.mean()) if len(h) else None,
            holdout_std=finite(h.std(ddof=1)) if len(h) > 1 else None,
            validation_mean=finite(g["validation"].mean()), runs=len(g), trained=int(g["trained"].sum()),
            chosen=chosen[method] == (lr, gamma),
        ))
    return TuningSummary(
        n=list(tp.n), seeds=len(tp.seeds), steps=tp.steps, holdout=holdout, points=points,
        lora_lr=chosen[LORA][0], deep_lr=chosen[DEEP][0], deep_gamma=chosen[DEEP][1],
    )


class PrecisionSummary(_Model):
    """Float32 against bf16 autocast on the same runs (same seeds, sample, order and head)."""

    method: str
    n: int
    seeds: list[int]
    autocast: str
    """The dtype the bf16 twins actually ran in (``"bfloat16"``, or ``"off"`` where bf16 was not available)."""
    float32: dict[int, float]
    """Final metric per seed in float32."""
    bf16: dict[int, float]
    mean_difference: float
    """Mean over seeds of bf16 - float32."""
    max_abs_difference: float
    seed_std: float
    """Sample std over seeds of the float32 scores (the seed-to-seed noise)."""
    within_noise: bool
    """``max_abs_difference`` is at most ``seed_std``."""
    step_ratio: float | None
    """Median training seconds per step, float32 / bf16, over these runs."""


def summarise_precision(fp32: dict[int, dict], bf16: dict[int, dict], method: str, n: int) -> PrecisionSummary:
    """:class:`PrecisionSummary` of stored runs ``{seed: result}`` in float32 and under bf16 autocast."""
    seeds = sorted(fp32)
    if sorted(bf16) != seeds or len(seeds) < 2:
        raise ValueError(f"need the same >= 2 seeds in both precisions, got {sorted(fp32)} and {sorted(bf16)}")
    metric = fp32[seeds[0]]["metric"]
    a = {s: float(fp32[s]["final"][metric]) for s in seeds}
    b = {s: float(bf16[s]["final"][metric]) for s in seeds}
    diff = np.array([b[s] - a[s] for s in seeds])
    std = float(np.std(list(a.values()), ddof=1))
    per_step = {k: float(np.median([r["timings"]["train"] / len(r["train_loss"]) for r in runs.values()]))
                for k, runs in (("fp32", fp32), ("bf16", bf16))}
    return PrecisionSummary(
        method=method, n=n, seeds=seeds, autocast=str(bf16[seeds[0]].get("autocast", "off")), float32=a, bf16=b,
        mean_difference=float(diff.mean()), max_abs_difference=float(np.abs(diff).max()), seed_std=std,
        within_noise=bool(np.abs(diff).max() <= std), step_ratio=finite(per_step["fp32"] / per_step["bf16"]),
    )


class TrainingCheck(_Model):
    """Did every run train? Per run: its part, method, ``n``, seed, final and baseline training loss."""

    runs: list[dict]
    untrained: list[str]
    """``"part method n=.. seed .."`` of every run whose loss did not fall below half its baseline."""
    fraction: float = TRAINED_FRACTION


def training_check(frame: pd.DataFrame) -> TrainingCheck:
    """:class:`TrainingCheck` of a results frame with ``final_loss_train``, ``loss_baseline`` and ``trained`` columns."""
    rows = frame.drop_duplicates(["key", "seed"])
    runs = [
        {"part": r.part, "task": r.task, "method": r.method, "n": int(r.n_train), "rank": int(r["rank"]), "seed": int(r.seed),
         "final_train_loss": float(r.final_train_loss), "loss_baseline": float(r.loss_baseline), "trained": bool(r.trained)}
        for _, r in rows.iterrows()
    ]
    untrained = [f"{r['part']} {r['task']} {r['method']} n={r['n']} r={r['rank']} seed {r['seed']}"
                 for r in runs if not r["trained"]]
    return TrainingCheck(runs=runs, untrained=untrained)


class DiagnosisSummary(_Model):
    """Per method or variant at the diagnosis ``n``: every seed's final training loss against its
    constant predictor's, whether it trained, and its validation score."""

    n: int
    seeds: list[int]
    baseline: str
    """Label of the Fig. 6 compressed runs the variants change one thing of."""
    runs: dict[str, list[dict]]
    """``{label: [{"seed", "steps", "lr", "gamma", "first_train_loss", "final_train_loss", "loss_baseline",
    "trained", "validation", "rank_one", "modules", "start_spread", "min_spread", "final_spread",
    "collapse_step", "final_saturated"}]}`` (losses: means of the first and last 10 steps; ``lr`` and
    ``gamma``: the run's inner rate and outer-factor ratio, ``None`` when not stored; ``rank_one`` of
    ``modules`` updates are rank one, :func:`rank_one_modules`, ``None`` without stored spectra; the
    spreads: :func:`spread_course`, ``None`` without stored probes)."""

    def trained(self, label: str) -> int:
        return sum(bool(r["trained"]) for r in self.runs[label])

    def rank_one_share(self, label: str, seeds: Sequence[int] | None = None) -> float | None:
        """Share of rank-one updates over the runs of ``label`` (at ``seeds``); ``None`` without spectra."""
        rows = [r for r in self.runs[label] if (seeds is None or r["seed"] in seeds) and r.get("modules")]
        if not rows:
            return None
        return sum(r["rank_one"] for r in rows) / sum(r["modules"] for r in rows)

    @staticmethod
    def collapsed(row: dict) -> bool | None:
        """Whether a run's head input ended below :data:`COLLAPSED` of its start (``None`` without probes)."""
        if row.get("final_spread") is None:
            return None
        return is_collapsed(row["start_spread"], row["final_spread"])


_NO_PROBES = dict.fromkeys(("start_spread", "min_spread", "final_spread", "collapse_step", "final_saturated"))


def summarise_diagnosis(curves: dict[str, dict[int, dict]], dp: DiagnosisPlan) -> DiagnosisSummary:
    """:class:`DiagnosisSummary` of stored runs ``{label: {seed: result}}`` (Fig. 6's LoRA and
    compressed runs at ``dp.n`` and the two variants, all at ``dp.seeds``)."""
    missing = [label for label in (LORA, DEEP) if label not in curves]
    if missing:
        raise ValueError(f"the diagnosis compares with the Fig. 6 runs of {missing}; pass them in curves")
    runs = {}
    for label, by_seed in curves.items():
        rows = []
        for seed in dp.seeds:
            r = by_seed[seed]
            losses = np.asarray(r["train_loss"], dtype=float)
            ranks = rank_one_modules(r)
            config = r.get("_config") or {}
            rows.append({"seed": seed, "steps": len(losses), "lr": config.get("lr"),
                         "gamma": (config.get("adapter") or {}).get("gamma"),
                         "final_train_loss": float(losses[-10:].mean()),
                         "first_train_loss": float(losses[:10].mean()),
                         "loss_baseline": float(r["loss_baseline"]), "trained": bool(r["trained"]),
                         "validation": finite(r["final"][r["metric"]]),
                         "rank_one": None if ranks is None else ranks[0], "modules": None if ranks is None else ranks[1],
                         **(spread_course(r) or _NO_PROBES)})
        runs[label] = rows
    return DiagnosisSummary(n=dp.n, seeds=list(dp.seeds), baseline=DEEP, runs=runs)


def diagnosis_table(summary: DiagnosisSummary) -> pd.DataFrame:
    """One row per method or variant: final training loss and validation Pearson per seed, runs trained."""
    rows = []
    for label, runs in summary.runs.items():
        row = {"": label}
        for r in runs:
            row[f"seed {r['seed']}: loss / baseline"] = f"{r['final_train_loss']:.2f} / {r['loss_baseline']:.2f}"
        row["trained"] = f"{sum(r['trained'] for r in runs)} of {len(runs)}"
        spectra = [r for r in runs if r.get("modules")]  # runs that stored update spectra
        row["rank-one updates"] = (f"{sum(r['rank_one'] for r in spectra)} of {sum(r['modules'] for r in spectra)}"
                                   if spectra else "n/a")
        row["head input spread, end / start"] = " / ".join(
            "n/a" if r["final_spread"] is None else f"{r['final_spread'] / r['start_spread']:.3f}" for r in runs)
        values = [r["validation"] for r in runs if r["validation"] is not None]
        row["validation Pearson (mean)"] = f"{np.mean(values):.3f}" if values else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def _outer_rate(rows: Sequence[dict]) -> float | None:
    """The outer factors' Adam rate (inner rate times ``gamma``) of runs that stored both, if they share one."""
    rates = {None if r.get("lr") is None or r.get("gamma") is None else r["lr"] * r["gamma"] for r in rows}
    return rates.pop() if len(rates) == 1 else None


def _cause(summary: DiagnosisSummary, label: str) -> str:
    """The cause of a stall that the variant ``label`` tests (what it changes against Fig. 6's run)."""
    if label == WHOLE_SAMPLE:
        return "the subspace the first batch gives the outer factors"
    if label.startswith("Deep LoRA, γ"):
        base, mine = ({r["gamma"] for r in summary.runs[x]} for x in (summary.baseline, label))
        if None not in base | mine and len(base) == len(mine) == 1 and min(mine) < min(base):
            return "outer factors that move too fast (γ too large)"
        return "outer factors that move too slowly to leave their first subspace"
    if label.startswith("Deep LoRA, inner rate"):
        return "an inner rate too large for batches that differ from step to step"
    return "a plateau that outlasts Fig. 6's steps (a slow run rather than a stuck one)"


def collapse_finding(summary: DiagnosisSummary, stalled: Sequence[int], variants: Sequence[str]) -> str:
    """Markdown: whether the stalled compressed runs *collapsed* (their probes, :data:`COLLAPSED`), and which of
    ``variants`` kept the same seeds from collapsing while lowering their loss (empty when the runs stored no
    probes, or when not every stalled run collapsed)."""
    rows = [r for r in summary.runs[summary.baseline] if r["seed"] in stalled]
    if not rows or any(summary.collapsed(r) is not True for r in rows):
        return ""
    ratio = lambda rs: " / ".join(f"{r['final_spread'] / r['start_spread']:.3f}" for r in rs)  # noqa: E731
    steps = max(r["collapse_step"] for r in rows)
    saturated = [r["final_saturated"] for r in rows if r["final_saturated"] is not None]
    lora = [r for r in summary.runs[LORA] if r["seed"] in stalled and r["final_spread"] is not None]
    text = (f"{'Every stalled run' if len(rows) > 1 else 'The stalled run'} *collapsed*: by step {steps} the spread "
            f"of the head's input over the first batch fell "
            f"below {COLLAPSED:g} of its start, and it ended at {ratio(rows)} of it"
            + (f" (LoRA's, same seed{'s' if len(lora) > 1 else ''}: {ratio(lora)})" if lora else "")
            + ". Every example then reaches the frozen head as nearly the same input, so the run can only predict "
              "one value, the label mean"
            + (f"; {'none' if max(saturated) == 0 else f'at most {max(saturated):.0%}'} of the pooler's tanh units "
               "ended saturated, so the pooler did not block the gradient" if saturated and max(saturated) < 0.5 else "")
            + ".")
    by_seed = {r["seed"]: r for r in rows}
    at = {label: [r for r in summary.runs[label] if r["seed"] in by_seed] for label in variants}
    kept = [label for label in variants if at[label] and all(
        summary.collapsed(r) is False and r["final_train_loss"] < by_seed[r["seed"]]["final_train_loss"] for r in at[label])]
    if not kept:
        return text + " No change kept these seeds from collapsing."
    base_rate, new_rates = _outer_rate(rows), {_outer_rate(at[label]) for label in kept}
    new_rate = new_rates.pop() if len(new_rates) == 1 else None
    lowered = base_rate is not None and new_rate is not None and new_rate < base_rate
    common = (f"; {'each of these changes lowers' if len(kept) > 1 else 'it lowers'} the outer factors' Adam rate "
              f"(γ times the inner rate) from {base_rate:g} to {new_rate:g}" if lowered else "")
    cause = ("outer factors that move too fast" if lowered and len(kept) > 1
             else " or ".join(dict.fromkeys(_cause(summary, label) for label in kept)))
    parts = []
    for label in kept:
        parts.append(f"*{label}* (head input at the end {ratio(at[label])} of its start; final loss "
                     + " / ".join(f"{r['final_train_loss']:.2f}" for r in at[label]) + ")")
    losses = " / ".join(f"{r['final_train_loss']:.2f}" for r in rows)
    steps = max(r["steps"] for label in kept for r in summary.runs[label])
    verdict = {1: "it did not pass", 2: "neither passed"}.get(len(kept), "none of them passed")
    seeds = f"seed{'s' if len(rows) > 1 else ''} {', '.join(str(r['seed']) for r in rows)}"
    return (text + " " + "; ".join(parts) + f" kept {seeds} from collapsing and ended with a lower training "
            f"loss than Fig. 6's run ({losses}){common}, though within {steps} steps {verdict} the training check. "
            f"So the collapse comes from {cause}, not from a broken method.")


def diagnosis_conclusion(summary: DiagnosisSummary) -> str:
    """Markdown, a few sentences: which change made the stalled compressed runs train, whether they
    collapsed and which change kept them from it (no more than the runs show)."""
    k = len(summary.seeds)
    stalled = [r["seed"] for r in summary.runs[summary.baseline] if not r["trained"]]
    variants = [label for label in summary.runs if label not in (LORA, DEEP)]
    if not stalled:
        return ("The compressed runs trained at these seeds, so this build has no stall to diagnose; "
                "the variants show only how much the changes matter when training works.")
    if not variants:
        return (f"No change was run at seed(s) {', '.join(map(str, stalled))} (the plan's only variant would have "
                "repeated the Fig. 6 runs at the chosen rates). " + rank_one_finding(summary, stalled))
    causes = {label: _cause(summary, label) for label in variants}
    fixes = [label for label in variants if all(r["trained"] for r in summary.runs[label] if r["seed"] in stalled)]
    seeds = ", ".join(map(str, stalled))
    collapse = collapse_finding(summary, stalled, [label for label in variants if label not in fixes])
    tail = " ".join(x for x in (collapse, rank_one_finding(summary, stalled)) if x)
    if not fixes:
        return (f"No change made the stalled seed(s) {seeds} pass the training check within its steps ("
                + ("the change tests one cause: " if len(causes) == 1 else "the changes, each testing one cause: ")
                + "; ".join(f"*{label}*: {cause}" for label, cause in causes.items()) + "). " + tail)
    ruled_out = [causes[label] for label in variants if label not in fixes]
    return (f"Every stalled seed ({seeds}) trained with " + " and with ".join(f"*{f}*" for f in fixes)
            + ": the stall comes from " + " or ".join(causes[f] for f in fixes) + ", not from a broken method"
            + (f"; {' and '.join(ruled_out)} did not make it train" if ruled_out else "")
            + f" (on {k} seed{'s' if k > 1 else ''}: a diagnosis, not an estimate). " + tail)


def rank_one_finding(summary: DiagnosisSummary, stalled: Sequence[int]) -> str:
    """Markdown, one sentence: what the stalled runs' update spectra show (or that they stored none)."""
    deep, lora = summary.rank_one_share(summary.baseline, stalled), summary.rank_one_share(LORA)
    if deep is None:
        return "These runs stored no update spectra, so what the stalled adapters learned is not shown here."
    rows = [r for r in summary.runs[summary.baseline] if r["seed"] in stalled]
    first = np.mean([r["first_train_loss"] for r in rows])
    last = np.mean([r["final_train_loss"] for r in rows])
    base = np.mean([r["loss_baseline"] for r in rows])
    lora_part = "" if lora is None else f" (LoRA's: {lora:.0%})"
    if deep < 0.9 or (lora is not None and lora >= 0.9):
        return (f"{deep:.0%} of the stalled runs' updates are rank one{lora_part}: the spectra do not single out "
                "one cause here.")
    lora_against = "" if lora is None else f", against {lora:.0%} of LoRA's"
    return (f"What the stalled runs did learn: {deep:.0%} of their weight updates are rank one (second singular "
            f"value under {RANK_ONE_RATIO:g} of the first){lora_against}, and their training loss went from "
            f"{first:.2f} over the first 10 steps to {last:.2f} over the last 10, against {base:.2f} for predicting "
            "the label mean: in their steps they fitted the label mean, one direction per weight, and little else.")


def diagnosis_text(summary: DiagnosisSummary) -> str:
    """Markdown: how many runs of each kind trained, then :func:`diagnosis_conclusion`."""
    k = len(summary.seeds)
    variants = [label for label in summary.runs if label not in (LORA, DEEP)]
    parts = [f"**{label}**: {summary.trained(label)} of {k} trained" for label in variants]
    head = (f"At n = {summary.n} (seed{'s' if k > 1 else ''} {', '.join(map(str, summary.seeds))}), LoRA trained on "
            f"{summary.trained(LORA)} of {k} and compressed Deep LoRA at the chosen rates on {summary.trained(DEEP)}; "
            + "; ".join(parts) + ". ")
    return head + diagnosis_conclusion(summary)


def _rate(point: GridPoint) -> str:
    return f"{point.lr:g}" if point.gamma is None else f"{point.lr:g}, γ = {point.gamma:g}"


def tuning_table(summary: TuningSummary) -> pd.DataFrame:
    """One row per grid point: method, rate, held-out score (mean ± std), validation mean, trained runs, chosen."""
    return pd.DataFrame([
        {"method": p.method, "learning rate": _rate(p),
         "held-out Pearson (chooses)": "n/a" if p.holdout_mean is None else
         f"{p.holdout_mean:.3f}" + ("" if p.holdout_std is None else f" ± {p.holdout_std:.3f}"),
         "validation Pearson (reported only)": "n/a" if p.validation_mean is None else f"{p.validation_mean:.3f}",
         "runs that trained": f"{p.trained}/{p.runs}", "chosen": "✓" if p.chosen else ""}
        for p in summary.points
    ])


def precision_table(summary: PrecisionSummary) -> pd.DataFrame:
    """Per seed: float32 and bf16 scores and their difference, then the seed-to-seed spread."""
    rows = [{"seed": str(s), "float32": f"{summary.float32[s]:.3f}", "bf16 autocast": f"{summary.bf16[s]:.3f}",
             "bf16 − float32": f"{summary.bf16[s] - summary.float32[s]:+.3f}"} for s in summary.seeds]
    rows.append({"seed": "seed-to-seed std (float32)", "float32": f"{summary.seed_std:.3f}", "bf16 autocast": "",
                 "bf16 − float32": f"mean {summary.mean_difference:+.3f}"})
    return pd.DataFrame(rows)


def training_table(check: TrainingCheck) -> pd.DataFrame:
    """Per part, method and ``n``: runs, how many trained, and the mean final and baseline losses."""
    frame = pd.DataFrame(check.runs)
    g = frame.groupby(["part", "task", "method", "n", "rank"], sort=False)
    return pd.DataFrame({
        "runs": g.size(), "trained": g["trained"].sum(),
        "final train loss (mean)": g["final_train_loss"].mean().map("{:.3f}".format),
        "constant-predictor loss (mean)": g["loss_baseline"].mean().map("{:.3f}".format),
    }).reset_index().astype({"trained": int})


def tuning_text(summary: TuningSummary) -> str:
    """Markdown: the chosen rates and how far the grid's scores spread."""
    chosen = {p.method: p for p in summary.points if p.chosen}
    spread = {m: [p.holdout_mean for p in summary.points if p.method == m and p.holdout_mean is not None]
              for m in (LORA, DEEP)}
    return (
        f"Chosen on {summary.holdout} held-out STS-B training pairs (n = {', '.join(map(str, summary.n))}, "
        f"{summary.seeds} seeds, {summary.steps} steps): **LoRA lr {summary.lora_lr:g}**, **compressed Deep LoRA inner lr "
        f"{summary.deep_lr:g}, γ = {summary.deep_gamma:g}**. "
        + " ".join(f"{m}'s held-out Pearson ranges from {min(v):.3f} to {max(v):.3f} over its {len(v)} grid points"
                   + (f" (chosen: {chosen[m].holdout_mean:.3f})." if m in chosen and chosen[m].holdout_mean is not None else ".")
                   for m, v in spread.items() if v)
    )


def precision_text(summary: PrecisionSummary) -> str:
    """Markdown: whether bf16 autocast moved the results by more than the seeds do, and the step-time ratio."""
    if summary.autocast == "off":
        return "bf16 autocast was not available on this machine: both columns ran in float32."
    verdict = ("within the seed-to-seed noise" if summary.within_noise else
               "**by more than the seed-to-seed noise**: treat bf16 numbers with care")
    ratio = "" if summary.step_ratio is None else (
        f" Training seconds per step, float32 / bf16, in these runs: {summary.step_ratio:.2f}×.")
    return (f"{summary.method} at n = {summary.n}, seeds {', '.join(map(str, summary.seeds))}: bf16 autocast changed the "
            f"final Pearson by at most {summary.max_abs_difference:.3f} (mean {summary.mean_difference:+.3f}), against a "
            f"seed-to-seed std of {summary.seed_std:.3f}: {verdict}.{ratio}")


def training_text(check: TrainingCheck) -> str:
    """Markdown: how many runs trained, and which did not."""
    total = len(check.runs)
    if not check.untrained:
        return (f"All {total} runs trained: each one's final training loss (mean of its last 10 steps) is below "
                f"{check.fraction:g}× the loss of predicting its sample's mean label.")
    shown = ", ".join(check.untrained[:12]) + (" ..." if len(check.untrained) > 12 else "")
    return (f"**{len(check.untrained)} of {total} runs did not train** (final loss not below {check.fraction:g}× "
            f"the constant predictor's): {shown}. Their scores are reported but say nothing about the method.")


def plot_sensitivity(summary: TuningSummary):
    """Held-out Pearson against the learning rate, one panel per method (compressed: one line per gamma)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, method in zip(axes, (LORA, DEEP)):
        points = [p for p in summary.points if p.method == method]
        for gamma in dict.fromkeys(p.gamma for p in points):
            line = sorted((p for p in points if p.gamma == gamma), key=lambda p: p.lr)
            x = [p.lr for p in line]
            y = [np.nan if p.holdout_mean is None else p.holdout_mean for p in line]
            e = [0 if p.holdout_std is None else p.holdout_std for p in line]
            label = "held-out" if gamma is None else f"held-out, γ = {gamma:g}"
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, color=COLORS[method], alpha=1 if gamma in (None, 0.1) else 0.6,
                        ls="-" if gamma in (None,) or gamma == max(p.gamma for p in points if p.gamma is not None) else "--",
                        label=label)
            ax.plot(x, [np.nan if p.validation_mean is None else p.validation_mean for p in line], "x:", color="grey",
                    label=None if gamma not in (None, points[0].gamma) else "validation (not used to choose)")
        for p in points:
            if p.chosen and p.holdout_mean is not None:
                ax.scatter([p.lr], [p.holdout_mean], s=160, facecolors="none", edgecolors="black", zorder=4, label="chosen")
        ax.set_xscale("log")
        ax.set_xlabel("inner learning rate" if method == DEEP else "learning rate")
        ax.set_title(method)
        ax.axhline(0, color="grey", lw=0.6)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("STS-B Pearson")
    fig.suptitle(f"Learning-rate sensitivity: n = {', '.join(map(str, summary.n))}, {summary.seeds} seeds, "
                 f"{summary.steps} steps, scored on {summary.holdout} held-out training pairs", fontsize=10)
    fig.tight_layout()
    return fig


_SPARE_COLORS = ("tab:orange", "tab:brown", "tab:olive", "tab:cyan", "tab:pink")


def _color(label: str, labels: list[str]) -> str:
    """A label's colour in a plot of ``labels``: its own (``COLORS``), else the next spare colour."""
    if label in COLORS:
        return COLORS[label]
    others = [x for x in labels if x not in COLORS]
    return _SPARE_COLORS[others.index(label) % len(_SPARE_COLORS)]


_STYLES = ("-", "--", "-.", (0, (1, 1)), (0, (5, 1, 1, 1, 1, 1)))
"""Line style of a method's first, second, ... seed in :func:`plot_training_curves`."""


def plot_training_curves(curves: dict[str, dict[int, dict]], title: str):
    """Training loss per step of several methods (``{label: {seed: stored run}}``), with each run's
    constant-predictor loss (dotted) and half of it (the training check's line); beside it, when the runs
    stored probes, the spread over the first batch of the head's input along each run, with
    :data:`COLLAPSED` of its start (dotted)."""
    import matplotlib.pyplot as plt

    probed = any(r.get("probes") for runs in curves.values() for r in runs.values())
    fig, axes = plt.subplots(1, 2 if probed else 1, figsize=(12 if probed else 8, 3.9), squeeze=False)
    ax = axes[0, 0]
    for label, runs in curves.items():
        color = _color(label, list(curves))
        for k, (seed, r) in enumerate(sorted(runs.items())):
            loss = np.asarray(r["train_loss"], dtype=float)
            window = min(10, len(loss))
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            style = {"color": color, "alpha": 0.8, "lw": 1.2, "ls": _STYLES[k % len(_STYLES)]}
            ax.plot(np.arange(window, len(loss) + 1), smooth, label=label if k == 0 else None, **style)
            if probed and r.get("probes"):
                axes[0, 1].plot([q["step"] for q in r["probes"]], [q["spread"] for q in r["probes"]], marker=".", ms=3, **style)
    baseline = float(np.mean([r["loss_baseline"] for runs in curves.values() for r in runs.values()]))
    ax.axhline(baseline, color="black", ls=":", lw=1, label=f"predict the mean label ({baseline:.2f})")
    ax.axhline(TRAINED_FRACTION * baseline, color="black", ls="--", lw=0.8, label=f"{TRAINED_FRACTION:g}× that (trained)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (MSE, 10-step mean)")
    ax.legend(fontsize=7)
    if probed:
        starts = [r["probes"][0]["spread"] for runs in curves.values() for r in runs.values() if r.get("probes")]
        axes[0, 1].axhline(COLLAPSED * float(np.mean(starts)), color="black", ls=":", lw=1,
                           label=f"{COLLAPSED:g}× the start (collapsed below)")
        axes[0, 1].set_yscale("log")
        axes[0, 1].set_xlabel("step")
        axes[0, 1].set_ylabel("spread of the head's input\nover the first batch")
        axes[0, 1].legend(fontsize=7)
    seeds = max(len(runs) for runs in curves.values())
    fig.suptitle(title + ("" if seeds < 2 else "\none line per seed (solid, dashed, dash-dot, ... in seed order)"),
                 fontsize=10)
    fig.tight_layout()
    return fig
