"""Tests of compressible.reproduction.execute: a broken chapter fails the build and says where."""

import os
import textwrap

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from compressible.reproduction.execute import (
    KERNEL_ENVIRONMENT,
    BookBuildError,
    check_notebook,
    glue_problems,
    execute_chapter,
    execution_order,
    quiet_kernel,
    read_toc,
)

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


def _toc_with(tmp_path, needs: dict[str, list[str]]):
    entries = "".join(f"  - file: {name}\n" for name in needs)
    (tmp_path / "_toc.yml").write_text(f"format: jb-book\nroot: intro\nchapters:\n{entries}")
    (tmp_path / "intro.md").write_text("# Intro\n")
    for name, wanted in needs.items():
        line = f"#     needs: [{', '.join(wanted)}]\n" if wanted else ""
        header = HEADER.format(figures=0).replace("#     figures: 0\n", "#     figures: 0\n" + line)
        (tmp_path / f"{name}.py").write_text(header + "\n# %%\nx = 1\n")
    return read_toc(tmp_path)


def test_a_chapter_runs_after_the_chapters_it_needs_and_otherwise_in_toc_order(tmp_path):
    order = execution_order(_toc_with(tmp_path, {"a": [], "b": ["d"], "c": [], "d": []}))
    assert [c.name for c in order] == ["intro", "a", "d", "b", "c"]


@pytest.mark.parametrize("needs, message", [
    ({"a": ["ghost"]}, r"chapter 'a' needs \['ghost'\], which are not executable chapters of the toc; valid: \['a'\]"),
    ({"a": ["b"], "b": ["a"]}, r"chapters need each other: a -> b -> a"),
])
def test_needs_that_cannot_be_met_are_errors(tmp_path, needs, message):
    with pytest.raises(BookBuildError, match=message):
        execution_order(_toc_with(tmp_path, needs))


def stream(name, text):
    return new_output("stream", name=name, text=text)


def test_check_notebook_names_each_cell_that_shows_what_a_reader_should_not_see():
    nb = new_notebook(cells=[
        new_code_cell("fit()", outputs=[stream("stderr", "train:  40%|████      | 4/10 [00:01<00:02, 3.1it/s]\r")]),
        new_code_cell("show()", outputs=[stream("stdout", "loss 0.1\n"),
                                         new_output("display_data", data={"text/plain": "step 3 [00:01, 2.50it/s]"})]),
        new_code_cell("load()", outputs=[stream("stdout", "Traceback (most recent call last):\n  File x\n")]),
        new_code_cell("old()", outputs=[stream("stdout", "/x.py:3: FutureWarning: use y\n  warnings.warn(\n")]),
        new_code_cell("fine()", outputs=[stream("stdout", "100 % of runs converged | done\n"),
                                         new_output("display_data", data={"text/plain": "a table", "image/png": "AA=="})]),
    ])
    figures, problems = check_notebook(nb, "toy")
    assert figures == 1
    assert problems[0].startswith("cell 0 ('fit()') writes to stderr ('train:  40%")
    assert "cell 0 ('fit()') shows progress-bar text ('0%|')" in problems
    assert "cell 1 ('show()') shows progress-bar text ('2.50it/s]')" in problems
    assert "cell 2 ('load()') shows a raw traceback" in problems
    assert "cell 3 ('old()') shows a warning ('/x.py:3: FutureWarning: use y')" in problems
    assert not any(p.startswith("cell 4") for p in problems)
    assert len(problems) == 5


def test_harmless_stderr_is_dropped_and_everything_else_on_stderr_fails():
    nb = new_notebook(cells=[
        new_code_cell("import matplotlib", outputs=[
            stream("stderr", "Matplotlib is building the font cache; this may take a moment.\n\n"),
            stream("stdout", "ok\n"),
        ]),
        new_code_cell("log()", outputs=[stream("stderr", "\nINFO loaded 3 runs\n")]),
    ])
    _, problems = check_notebook(nb, "toy")
    assert nb.cells[0].outputs == [stream("stdout", "ok\n")]
    assert problems == ["cell 1 ('log()') writes to stderr ('INFO loaded 3 runs')"]


def _glued(key):
    """The output MyST-NB's ``glue(key, value, display=False)`` leaves in a notebook."""
    return new_output("display_data", data={"application/papermill.record/text/plain": "1"},
                      metadata={"scrapbook": {"name": key, "mime_prefix": "application/papermill.record/"}})


def test_a_glue_key_that_no_cell_glues_is_named_with_its_cell():
    nb = new_notebook(cells=[
        new_code_cell("glue('a', 1)", outputs=[_glued("a"), _glued("b")]),
        new_markdown_cell("A {glue:text}`a:.3f`, B {glue:md}`b:myst`, C {glue}`c`, D {glue:text}`other::d`."),
        new_markdown_cell("# Title\n\nE {glue:md}`e`"),
    ])
    assert glue_problems(nb) == [
        "cell 1 ('A {glue:text}`a:.3f`, B {glue:md}`b:myst`, C {glue}`c`, D {g') pastes the glue key 'c', "
        "which no cell of this chapter glues",
        "cell 2 ('# Title') pastes the glue key 'e', which no cell of this chapter glues",
    ]
    _, problems = check_notebook(nb, "toy")
    assert problems == glue_problems(nb)


def test_quiet_kernel_sets_and_restores_the_environment(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "0")
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    with quiet_kernel():
        assert all(os.environ[k] == v for k, v in KERNEL_ENVIRONMENT.items())
        startup = os.path.join(os.environ["IPYTHONDIR"], "profile_default", "startup", "00-quiet.py")
        assert os.path.isfile(startup)
    assert os.environ["TQDM_DISABLE"] == "0" and "TRANSFORMERS_VERBOSITY" not in os.environ
    assert not os.path.exists(startup)


def test_chapter_runs_without_bars_and_a_chapter_writing_to_stderr_fails(tmp_path):
    body = """
    # %%
    from tqdm.auto import tqdm
    total = sum(i for i in tqdm(range(50), disable=False, desc="explicitly on"))
    print("total", total)
    """ + FIGURE.format(scale_marker="2")
    run = execute_chapter(chapter(tmp_path, body, name="bars"), tmp_path / "bars.ipynb", "smoke")
    assert run.errors == []
    nb = nbformat.read(tmp_path / "bars.ipynb", as_version=4)
    texts = [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]
    assert "total 1225\n" in texts and not any("explicitly on" in t for t in texts)

    body = FIGURE.format(scale_marker="2") + '\n# %%\nimport sys\nprint("careful", file=sys.stderr)\n'
    with pytest.raises(BookBuildError, match="chapter 'noisy' has outputs a reader should not see: "
                                             "cell \\d+ \\('import sys'\\) writes to stderr \\('careful'\\)"):
        execute_chapter(chapter(tmp_path, body, name="noisy"), tmp_path / "noisy.ipynb", "smoke")
