"""Tests of compressible.reproduction.bookbuild: a broken chapter fails the build and says where."""

import textwrap

import nbformat
import pytest

from compressible.reproduction.bookbuild import BookBuildError, execute_chapter, read_toc

HEADER = """\
# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   compressible:
#     figures: {figures}
# ---
"""


def chapter(tmp_path, body, figures=1, name="toy"):
    path = tmp_path / f"{name}.py"
    text = HEADER.format(figures=figures) + textwrap.dedent(
        """
        # %% tags=["parameters", "remove-cell"]
        scale = "ci"

        # %%
        import matplotlib.pyplot as plt
        """
    ) + textwrap.dedent(body)
    path.write_text(text)
    return path


FIGURE = """
# %%
plt.plot([0, 1], [1, {scale_marker}])
plt.show()
"""


def test_good_chapter_runs_with_scale_and_hides_parameters(tmp_path):
    src = chapter(tmp_path, FIGURE.format(scale_marker="len(scale)") + '\n# %%\nprint("scale is", scale)\n')
    run = execute_chapter(src, tmp_path / "out.ipynb", "smoke")
    assert run.figures == 1 and run.errors == []
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "scale is smoke" in text
    hidden = [c for c in nb.cells if "remove-cell" in c.metadata.get("tags", [])]
    assert {t for c in hidden for t in c.metadata["tags"]} >= {"parameters", "injected-parameters"}


def test_missing_figure_fails_naming_the_chapter(tmp_path):
    src = chapter(tmp_path, FIGURE.format(scale_marker="2"), figures=2, name="figs")
    with pytest.raises(BookBuildError, match="chapter 'figs' produced 1 figure\\(s\\) but declares 2"):
        execute_chapter(src, tmp_path / "out.ipynb", "smoke")


def test_agg_backend_renders_nothing_and_fails(tmp_path):
    body = '\n# %%\nimport matplotlib\nmatplotlib.use("Agg")\n' + FIGURE.format(scale_marker="2")
    src = chapter(tmp_path, body, figures=1, name="agg")
    with pytest.raises(BookBuildError, match="chapter 'agg' produced 0 figure"):
        execute_chapter(src, tmp_path / "out.ipynb", "smoke")


def test_raising_cell_fails_naming_chapter_and_cell(tmp_path):
    body = FIGURE.format(scale_marker="2") + '\n# %%\nraise ValueError("boom in chapter")\n'
    src = chapter(tmp_path, body, name="broken")
    with pytest.raises(BookBuildError, match=r"chapter 'broken' failed at scale 'smoke' in cell \d+ \('raise ValueError.*boom in chapter"):
        execute_chapter(src, tmp_path / "out.ipynb", "smoke")


def test_undeclared_figures_and_bad_scale_are_rejected(tmp_path):
    src = tmp_path / "nodecl.py"
    src.write_text('# %% tags=["parameters"]\nscale = "ci"\n')
    with pytest.raises(BookBuildError, match="does not declare its figures"):
        execute_chapter(src, tmp_path / "out.ipynb", "smoke")
    with pytest.raises(ValueError, match="scale must be one of"):
        execute_chapter(src, tmp_path / "out.ipynb", "huge")


def test_toc_entry_without_source_is_an_error(tmp_path):
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: ghost\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    with pytest.raises(BookBuildError, match="entry 'ghost' has no ghost.py or ghost.md"):
        read_toc(tmp_path)
