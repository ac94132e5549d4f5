"""``python -m compressible.ledger {verify,status,import}``: check, count and fill the ledger.

::

    python -m compressible.ledger verify [--ledger ledger] [--steps 5] [--whole 1] [--whole-budget 60] [--float32]
    python -m compressible.ledger status [--ledger ledger] [--scale ci]
    python -m compressible.ledger import RESULTS_DIR [--ledger ledger]     # local runs, on the machine that ran them

Growing the ledger is a sweep whose store is the ledger: ``python -m compressible.sweeps run CHAPTER --scale S
--into ledger`` (see ``ledger/README.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from ..scales import SCALES
from ..store import LEDGER_ENV, ledger_dir

__all__ = ["main"]


def _default_ledger() -> str:
    return str(ledger_dir() or Path("ledger").resolve())


def _status(root: str, scales: Sequence[str]) -> int:
    import pandas as pd

    from .coverage import STORED_CHAPTERS, coverage, planned_runs
    from .records import Ledger, iter_records

    records = list(iter_records(root))
    size = sum(r.path.stat().st_size for r in records)
    print(f"ledger {root}: {len(records)} records, {size / 1e6:.2f} MB "
          f"({size / max(len(records), 1) / 1e3:.1f} KB per record on average)")
    ledger = Ledger(root)
    pd.set_option("display.width", 200)
    missing = 0
    for scale in scales:
        for chapter in STORED_CHAPTERS:
            table = coverage(planned_runs(chapter, scale, ledger), ledger)
            missing += int((table["planned"] - table["held"]).sum())
            print(f"\n{chapter} at {scale} scale")
            print(table.to_string(index=False))
    print(f"\n{missing} planned runs missing")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # a terminal report: no loading chatter or weight-loading bars from Hugging Face libraries
    for name, value in (("TRANSFORMERS_VERBOSITY", "error"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                        ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(name, value)
    parser = argparse.ArgumentParser(prog="python -m compressible.ledger", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="re-execute ledger runs and compare them with their records")
    status = sub.add_parser("status", help="records, size, and each chapter's planned runs held / missing")
    imp = sub.add_parser("import", help="seal the records of a local result store into the ledger")
    for cmd in (verify, status, imp):
        cmd.add_argument("--ledger", default=None, help=f"the ledger folder (default: ${LEDGER_ENV} or ./ledger)")
    verify.add_argument("--steps", type=int, default=5, help="first updates re-executed per (chapter, method) (K)")
    verify.add_argument("--whole", type=int, default=1, help="whole runs drawn at random")
    verify.add_argument("--whole-budget", type=float, default=60.0,
                        help="draw whole runs among those whose recorded wall time is at most this (s)")
    verify.add_argument("--float32", action="store_true", help="compute in float32 where a run asks for bf16 autocast")
    verify.add_argument("--device", default="cpu")
    verify.add_argument("--commit", default=None, help="seed the draw with this commit instead of the package's")
    for cmd in (verify, status):
        cmd.add_argument("--scale", action="append", choices=SCALES, default=None,
                         help="the plans whose runs are checked (repeatable; default ci)")
    imp.add_argument("results", help="a local result store folder (e.g. results/)")
    args = parser.parse_args(argv)
    root = args.ledger or _default_ledger()
    if args.command == "status":
        return _status(root, args.scale or ["ci"])
    if args.command == "import":
        from .records import import_record, iter_records

        count = 0
        for record in iter_records(args.results):
            import_record(root, record.path)
            count += 1
        print(f"imported {count} records from {args.results} into {root}")
        return 0

    import pandas as pd

    from .checks import VerificationError
    from .verify import verify as run_verify

    if not Path(root).is_dir():
        parser.error(f"no ledger at {root}")
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 60)
    tic = time.perf_counter()
    try:
        report = run_verify(root, steps=args.steps, whole=args.whole, whole_budget=args.whole_budget,
                            scales=args.scale or ["ci"], float32=args.float32, device=args.device, commit=args.commit,
                            raise_on_failure=False)
    except VerificationError as error:  # pragma: no cover - raise_on_failure=False
        print(error)
        return 1
    table = report.table()
    print(f"\n=== ledger verification ({report.records} records, draw seed {report.seed}, "
          f"{time.perf_counter() - tic:.0f} s) ===")
    print(table.to_string(index=False))
    if not report.ok:
        print(f"\nFAILED: {int((~table['ok']).sum())} of {len(table)} checks differ beyond their tolerance")
        return 1
    print(f"\nall {len(table)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
