"""Every chapter of the book executes at smoke scale, with its declared figures and no errors.

These are the same checks `make book` applies (compressible.reproduction.bookbuild.execute_chapter).
"""

from pathlib import Path

import pytest

from compressible.reproduction.bookbuild import execute_chapter, read_toc

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [c for c in read_toc(ROOT) if c.executable]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """One result store for every chapter, as in ``make book``: a chapter that loads another's runs (Few-shot
    GLUE loads the sweep the tuning chapter ran, the scorecard reads every summary) finds them there, and
    computes what is missing when it runs alone."""
    return tmp_path_factory.mktemp("results")


@pytest.mark.chapter
@pytest.mark.parametrize("chapter", CHAPTERS, ids=[Path(c.name).name for c in CHAPTERS])
def test_chapter_runs_at_smoke_scale(chapter, tmp_path, monkeypatch, results):
    monkeypatch.setenv("COMPRESSIBLE_RESULTS", str(results))
    run = execute_chapter(chapter.source, tmp_path / f"{chapter.source.stem}.ipynb", "smoke", timeout=600)
    assert run.errors == []
    assert run.figures == run.expected_figures
