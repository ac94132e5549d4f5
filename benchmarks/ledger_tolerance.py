"""How far a float32 re-execution lands from a bf16 ledger record: the measurement behind
``compressible.ledger.TOLERANCES["bfloat16 against float32"]`` and ``METRIC_TOLERANCE``.

What is measured:

1. for every ``(chapter, method)`` group of the ledger whose records were computed under bf16 autocast,
   the first ``K`` steps of up to ``--per-group`` of its runs re-executed in float32 (as a CPU without
   bf16 computes them): the largest relative difference per step of the loss curve
   (``compressible.ledger.checks.compare_curves``);
2. the ledger's precision twins (Few-shot GLUE at ``ci``: the same runs once in float32 and once under
   bf16 autocast): the largest absolute difference of their final metric.

Run with the mirrors of a ``../shared`` folder beside the project (as ``make`` sets them)::

    HF_HUB_OFFLINE=1 HF_HUB_CACHE=../shared/hf/hub COMPRESSIBLE_GLUE=../shared/data/glue \\
        .venv/bin/python benchmarks/ledger_tolerance.py [--ledger ledger] [--steps 5] [--per-group 2]

Prints one line per run and the maxima, and writes JSON to ``benchmarks/output/ledger_tolerance.json``.
"""

from __future__ import annotations

import argparse
import dataclasses

from compressible.ledger import Ledger, METRIC_TOLERANCE, TOLERANCES
from compressible.ledger.replay import replayer_for
from compressible.ledger.checks import compare_curves
from compressible.ledger.verify import ledger_runs

from _output import write_result  # benchmarks/_output.py (the script's folder is on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ledger", default="ledger")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--per-group", type=int, default=2)
    args = parser.parse_args()
    ledger = Ledger(args.ledger)
    curves = []
    for group, runs in ledger_runs(ledger).items():
        bf16 = [r for r in runs if ledger.load(r.config, r.seed)["_provenance"].get("precision") == "bfloat16"]
        for run in bf16[: args.per_group]:
            record = ledger.load(run.config, run.seed)
            replayed = replayer_for(run.config).first(run.config, run.seed, args.steps, True)
            diff = compare_curves(record["train_loss"][: args.steps], replayed["train_loss"])
            curves.append({"group": group, "key": run.key, "seed": run.seed, "difference": diff})
            print(f"{group:60s} {run.key[:8]} seed {run.seed}: {diff:.2e}", flush=True)
    twins = []
    for run in (r for runs in ledger_runs(ledger, chapters=("fewshot_glue",)).values() for r in runs
                if r.part == "precision"):
        original = dataclasses.replace(run.config, autocast="auto")
        if not ledger.has(original, run.seed):
            continue
        a, b = ledger.load(run.config, run.seed), ledger.load(original, run.seed)
        metric = a["metric"]
        twins.append({"key": run.key, "seed": run.seed, "metric": metric,
                      "float32": a["final"][metric], "bf16": b["final"][metric],
                      "difference": abs(a["final"][metric] - b["final"][metric])})
        print(f"precision twin {run.key[:8]} seed {run.seed}: {metric} float32 {a['final'][metric]:.4f}, "
              f"bf16 {b['final'][metric]:.4f}", flush=True)
    worst_curve = max((c["difference"] for c in curves), default=None)
    worst_metric = max((t["difference"] for t in twins), default=None)
    print(f"largest first-{args.steps}-step loss difference, float32 against bf16: {worst_curve} "
          f"(tolerance {TOLERANCES['bfloat16 against float32']}) over {len(curves)} runs")
    print(f"largest final-metric difference of the precision twins: {worst_metric} (tolerance {METRIC_TOLERANCE}) "
          f"over {len(twins)} pairs")
    write_result("ledger_tolerance", {"steps": args.steps, "curves": curves, "twins": twins,
                                      "max_curve_difference": worst_curve, "max_metric_difference": worst_metric,
                                      "tolerance": TOLERANCES["bfloat16 against float32"],
                                      "metric_tolerance": METRIC_TOLERANCE})


if __name__ == "__main__":
    main()
