"""Execute one chapter of the book and check what a reader will see (used by :mod:`.bookbuild`).

- :func:`read_toc`: every entry of ``_toc.yml`` resolved to its source; ``book/<name>.py`` (jupytext
  percent format) is a chapter, ``book/<name>.md`` a plain page;
- :func:`execute_chapter`: convert a chapter to a notebook and execute it with papermill
  (``-p scale <scale>``, kernel ``python3``, an execution timeout). The kernel runs quietly
  (:data:`KERNEL_ENVIRONMENT` and a startup file that turns every tqdm bar off, :func:`quiet_kernel`):
  progress bars and loading reports belong in a terminal or an interactive session, not in the
  published pages, so they stay on for the CLI and for Jupyter;
- :func:`check_notebook`: no ``error`` output; no output holding progress-bar text, a raw traceback or
  a warning (:func:`output_problems`); no ``stderr`` stream at all, except the few harmless lines of
  :data:`HARMLESS_STDERR`, which are dropped (stderr is what nobody chose to show a reader: anything a
  chapter means to show it prints or displays); and exactly as many ``image/png`` figures as the
  chapter declares in its header (``compressible: figures: N``) -- a chapter whose figures do not
  render (``matplotlib.use("Agg")``, a deleted ``plt.show()``) fails by name; and every key that a
  markdown cell pastes with MyST-NB's glue roles is glued by a cell of the same chapter
  (:func:`glue_problems`; jupyter-book would otherwise fail on it only at the HTML build). The parameter
  cells are tagged ``remove-cell``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..scales import check_scale

__all__ = [
    "BookBuildError",
    "Chapter",
    "ChapterRun",
    "read_toc",
    "execution_order",
    "execute_chapter",
    "check_notebook",
    "glue_problems",
    "output_problems",
    "quiet_kernel",
    "KERNEL_ENVIRONMENT",
    "HARMLESS_STDERR",
    "PROGRESS_BAR",
    "TRACEBACK",
]

HIDE_TAGS = {"parameters", "injected-parameters"}


class BookBuildError(RuntimeError):
    """A chapter failed to execute or did not produce what it declares."""


@dataclass(frozen=True)
class Chapter:
    """An entry of the table of contents: ``name`` is the toc file (``book/<name>``)."""

    name: str
    source: Path
    executable: bool


@dataclass
class ChapterRun:
    """What executing one chapter produced."""

    name: str
    scale: str
    seconds: float
    figures: int
    expected_figures: int
    output: str
    errors: list[str] = field(default_factory=list)


def read_toc(root: Path) -> list[Chapter]:
    """Every file of ``root/_toc.yml`` in order, resolved to its ``.py`` or ``.md`` source."""
    import yaml

    toc_path = root / "_toc.yml"
    with open(toc_path) as handle:
        toc = yaml.safe_load(handle)

    files: list[str] = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(toc)
    chapters = []
    for entry in files:
        stem = root / entry
        for suffix, executable in ((".py", True), (".md", False), (".ipynb", False)):
            candidate = stem.with_suffix(suffix)
            if candidate.is_file():
                chapters.append(Chapter(entry, candidate, executable))
                break
        else:
            raise BookBuildError(f"{toc_path}: entry {entry!r} has no {entry}.py or {entry}.md")
    return chapters


def execution_order(chapters: list[Chapter]) -> list[Chapter]:
    """``chapters`` in toc order, except that a chapter runs after the chapters its header names in
    ``compressible: needs: [<name>, ...]`` (whose saved summaries it reads). Raises :class:`BookBuildError`
    for a name that is not an executable chapter of the toc, or for chapters that need each other."""
    import jupytext

    names = {Path(c.name).name: c for c in chapters if c.executable}
    needs = {}
    for name, chapter in names.items():
        wanted = jupytext.read(chapter.source).metadata.get("compressible", {}).get("needs", [])
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise BookBuildError(f"chapter {name!r} needs {unknown}, which are not executable chapters of the toc; "
                                 f"valid: {sorted(names)}")
        needs[name] = list(wanted)
    ordered: list[Chapter] = []
    placing: list[str] = []

    def place(name: str) -> None:
        if any(Path(c.name).name == name for c in ordered):
            return
        if name in placing:
            raise BookBuildError(f"chapters need each other: {' -> '.join(placing + [name])}")
        placing.append(name)
        for wanted in needs[name]:
            place(wanted)
        placing.pop()
        ordered.append(names[name])

    for chapter in chapters:
        if chapter.executable:
            place(Path(chapter.name).name)
        else:
            ordered.append(chapter)
    return ordered


def _expected_figures(notebook, name: str, scale: str) -> int:
    """The figures a chapter declares: ``compressible: figures: N``, or a mapping from scale to N
    (``figures: {smoke: 4, ci: 3, paper: 4}``) when a part is not run at some scale."""
    meta = notebook.metadata.get("compressible", {})
    if "figures" not in meta:
        raise BookBuildError(
            f"chapter {name!r} does not declare its figures: add `compressible: figures: N` to the "
            f"jupytext header (under `jupyter:`)"
        )
    value = meta["figures"]
    if isinstance(value, dict):
        if scale not in value:
            raise BookBuildError(f"chapter {name!r}: `figures` gives {sorted(value)} but not the scale {scale!r}")
        value = value[scale]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BookBuildError(f"chapter {name!r}: `figures` must be a whole number >= 0 (or one per scale), got {value!r}")
    return value


def _cell_label(cell, index: int) -> str:
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"cell {index} ({first[:60]!r})"


KERNEL_ENVIRONMENT = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "DATASETS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}
"""Environment of the kernel that executes a chapter for the book: no progress bars, no loading
chatter from Hugging Face libraries (their errors still show)."""

KERNEL_STARTUP = '''\
# Written by compressible.reproduction.execute for the kernels that execute the book's chapters.
# tqdm's TQDM_DISABLE only changes a default, and the library passes `disable=not progress`
# explicitly: force every bar off, whatever the caller asked for.
import functools as _functools
import warnings as _warnings

import tqdm.std as _tqdm_std

_warnings.filterwarnings("ignore", message="IProgress not found")
_tqdm_init = _tqdm_std.tqdm.__init__


@_functools.wraps(_tqdm_init)
def _quiet_init(self, *args, **kwargs):
    kwargs["disable"] = True
    _tqdm_init(self, *args, **kwargs)


_tqdm_std.tqdm.__init__ = _quiet_init
'''


@contextlib.contextmanager
def quiet_kernel() -> Iterator[None]:
    """Kernels started inside this block run with :data:`KERNEL_ENVIRONMENT` and a startup file
    that disables every tqdm bar (a private ``IPYTHONDIR``); the environment is restored after."""
    with tempfile.TemporaryDirectory(prefix="compressible-ipython-") as ipython_dir:
        startup = Path(ipython_dir) / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-quiet.py").write_text(KERNEL_STARTUP)
        changes = {**KERNEL_ENVIRONMENT, "IPYTHONDIR": ipython_dir}
        saved = {key: os.environ.get(key) for key in changes}
        os.environ.update(changes)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


HARMLESS_STDERR = (
    re.compile(r"\s*"),
    re.compile(r"Matplotlib is building the font cache; this may take a moment\."),
)
"""Lines a kernel may write to stderr that tell a reader nothing and are dropped: blank lines and
matplotlib's one-time note on a fresh machine. Any other stderr line fails the check."""

# What a reader must not see; the browser check searches the built pages for the same patterns.
# (No docstrings here on purpose: the API page would then show these very strings and fail it.)
# PROGRESS_BAR: a tqdm bar's percentage or rate, its block character, or a terminal escape sequence.
PROGRESS_BAR = re.compile(r"\d%\||[\d.?]+ ?(?:it|s)/(?:s|it)\]|█|\x1b\[[\d;]*[A-Za-z]")
TRACEBACK = "Traceback (most recent call last)"
WARNING = re.compile(r"\b[A-Z]\w*Warning: |^\s*warnings\.warn\(|^WARNING\b", re.MULTILINE)


def _output_texts(output) -> Iterator[str]:
    if output.get("output_type") == "stream":
        yield output.get("text", "")
    for mime in ("text/plain", "text/html", "text/markdown"):
        value = output.get("data", {}).get(mime)
        if value:
            yield value if isinstance(value, str) else "".join(value)


def output_problems(output) -> list[str]:
    """What a reader should not see in one output: stderr, progress bars, tracebacks, warnings."""
    problems = []
    if output.get("output_type") == "stream" and output.get("name") == "stderr":
        first = next(line for line in output.get("text", "").splitlines() if line.strip())
        problems.append(f"writes to stderr ({first.strip()[:80]!r})")
    for text in _output_texts(output):
        if match := PROGRESS_BAR.search(text):
            problems.append(f"shows progress-bar text ({match.group()!r})")
        if TRACEBACK in text:
            problems.append("shows a raw traceback")
        if match := WARNING.search(text):
            line = text[text.rfind("\n", 0, match.start()) + 1:].split("\n", 1)[0]
            problems.append(f"shows a warning ({line.strip()[:80]!r})")
    return problems


def _drop_harmless_stderr(cell) -> None:
    outputs = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            lines = output.get("text", "").splitlines(keepends=True)
            kept = [line for line in lines if not any(p.fullmatch(line.rstrip("\n")) for p in HARMLESS_STDERR)]
            if not kept:
                continue
            output["text"] = "".join(kept)
        outputs.append(output)
    if "outputs" in cell:
        cell["outputs"] = outputs


def check_notebook(notebook, name: str) -> tuple[int, list[str]]:
    """Count ``image/png`` outputs and list the problems of an executed notebook, each naming its
    cell: ``error`` outputs and whatever :func:`output_problems` finds. Harmless stderr lines
    (:data:`HARMLESS_STDERR`) are removed from ``notebook`` first."""
    figures, errors = 0, []
    for index, cell in enumerate(notebook.cells):
        _drop_harmless_stderr(cell)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"{_cell_label(cell, index)}: {output.get('ename')}: {output.get('evalue')}")
                continue
            if "image/png" in output.get("data", {}):
                figures += 1
            errors += [f"{_cell_label(cell, index)} {problem}" for problem in output_problems(output)]
    return figures, errors + glue_problems(notebook)


_GLUE_ROLE = re.compile(r"\{glue(?::[a-z]+)?\}`([^`]+)`")


def glue_problems(notebook) -> list[str]:
    """Each markdown cell's use of a glue key (``{glue}`key```, ``{glue:text}`key:.3f```, ``{glue:md}`key```)
    that no output of ``notebook`` glues, naming the cell and the key. Keys of another document
    (``path::key``) are not checked."""
    glued = {output.get("metadata", {}).get("scrapbook", {}).get("name")
             for cell in notebook.cells for output in cell.get("outputs", [])}
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.get("cell_type") != "markdown":
            continue
        for reference in _GLUE_ROLE.findall(cell.get("source", "")):
            key = reference.split(":")[0]
            if "::" not in reference and key not in glued:
                problems.append(f"{_cell_label(cell, index)} pastes the glue key {key!r}, which no cell of this chapter glues")
    return problems


def _prefer_environment_kernel() -> None:
    """Make the ``python3`` kernel the interpreter running this build (this virtual environment),
    even when a user-level ``python3`` kernelspec points elsewhere."""
    own = str(Path(sys.prefix) / "share" / "jupyter")
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if own not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([own, *paths])


def execute_chapter(
    source: Path,
    output: Path,
    scale: str,
    timeout: int = 3600,
    cwd: Path | None = None,
) -> ChapterRun:
    """Execute one jupytext chapter with papermill and check it.

    Raises:
        BookBuildError: naming the chapter (and the cell) when a cell raises, when an output
            holds an error, stderr, a progress bar, a traceback or a warning, or when the number of figures differs from the declared one.
    """
    import jupytext
    import nbformat
    import papermill

    check_scale(scale)
    source = Path(source)
    name = source.stem
    notebook = jupytext.read(source)
    expected = _expected_figures(notebook, name, scale)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    unexecuted = output.with_suffix(".input.ipynb")
    nbformat.write(notebook, unexecuted)
    _prefer_environment_kernel()
    start = time.perf_counter()
    try:
        with quiet_kernel():
            papermill.execute_notebook(
                str(unexecuted),
                str(output),
                parameters={"scale": scale},
                kernel_name="python3",
                execution_timeout=timeout,
                cwd=str(cwd or source.parent),
                progress_bar=False,
                log_output=False,
            )
    except papermill.PapermillExecutionError as error:
        # papermill's cell_index can be off by the injected-parameters cell: locate the cell
        # that holds the error output instead.
        executed = nbformat.read(output, as_version=4)
        index = next(
            (i for i, c in enumerate(executed.cells)
             if any(o.get("output_type") == "error" for o in c.get("outputs", []))),
            error.cell_index,
        )
        raise BookBuildError(
            f"chapter {name!r} failed at scale {scale!r} in {_cell_label(executed.cells[index], index)}: "
            f"{error.ename}: {error.evalue}"
        ) from None
    finally:
        unexecuted.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    executed = nbformat.read(output, as_version=4)
    for cell in executed.cells:
        tags = set(cell.metadata.get("tags", []))
        if tags & HIDE_TAGS and "remove-cell" not in tags:
            cell.metadata["tags"] = sorted(tags | {"remove-cell"})
    figures, errors = check_notebook(executed, name)
    nbformat.write(executed, output)
    run = ChapterRun(name, scale, seconds, figures, expected, str(output), errors)
    if errors:
        raise BookBuildError(f"chapter {name!r} has outputs a reader should not see: " + "; ".join(errors))
    if figures != expected:
        raise BookBuildError(
            f"chapter {name!r} produced {figures} figure(s) but declares {expected}: a figure did not "
            f"render (missing plt.show(), a non-inline backend) or the declaration is out of date"
        )
    return run
