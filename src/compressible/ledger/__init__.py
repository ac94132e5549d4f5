"""The evidence ledger: the book's runs kept in the repository and verified by every build.

- :mod:`~compressible.ledger.records`: sealed records with provenance, and :class:`Ledger`, the store
  that writes them (a sweep with ``--into ledger`` grows the ledger);
- :mod:`~compressible.ledger.coverage`: which runs each chapter shows, and how many the ledger holds;
- :mod:`~compressible.ledger.replay`, :mod:`~compressible.ledger.verify` and :mod:`~compressible.ledger.checks`:
  re-executing runs and comparing them with their records.

Command line (``python -m compressible.ledger``): ``verify``, ``status``, ``import``. The layout of the
ledger folder is described in ``ledger/README.md`` at the project's root.
"""

from .coverage import STORED_CHAPTERS, PlannedRun, computed_on, coverage, coverage_table, planned_runs
from .records import Ledger, check_digest, digest, iter_records, provenance
from .checks import VerificationError
from .verify import METRIC_TOLERANCE, TOLERANCES, verify

__all__ = [
    "Ledger",
    "PlannedRun",
    "STORED_CHAPTERS",
    "TOLERANCES",
    "METRIC_TOLERANCE",
    "VerificationError",
    "check_digest",
    "computed_on",
    "coverage",
    "coverage_table",
    "digest",
    "iter_records",
    "planned_runs",
    "provenance",
    "verify",
]
