"""Build the companion book: execute every chapter, check it, and run Jupyter Book.

Pipeline (``python -m compressible.reproduction.bookbuild build --scale ci``, which ``make book`` calls):

1. read ``_toc.yml``; an entry ``book/<name>`` is a chapter when ``book/<name>.py`` exists
   (jupytext percent format) and a plain page when ``book/<name>.md`` exists;
2. stage the book sources into ``_build/source/`` (config, toc, bibliography, pages);
3. convert each chapter to a notebook and execute it with papermill (``-p scale <scale>``, kernel
   ``python3``, an execution timeout), writing ``_build/source/book/<name>.ipynb``. The kernel
   runs quietly (:data:`KERNEL_ENVIRONMENT` and a startup file that turns every tqdm bar
   off): progress bars and loading reports belong in a terminal or an interactive session, not in
   the published pages, so they stay on for the CLI and for Jupyter;
4. check every executed notebook (:func:`check_notebook`): no ``error`` output; no output holding
   progress-bar text, a raw traceback or a warning; no ``stderr`` stream at all, except the few
   harmless lines of :data:`HARMLESS_STDERR`, which are dropped (stderr is what nobody chose to
   show a reader: anything a chapter means to show it prints or displays); and exactly as many
   ``image/png`` figures as the chapter declares in its header (``compressible: figures: N``) --
   a chapter whose figures do not render (``matplotlib.use("Agg")``, a deleted ``plt.show()``)
   fails the build by name;
5. hide the parameter cells (``remove-cell`` on the ``parameters`` and ``injected-parameters``
   cells) and build the HTML with ``jupyter-book build -W -n --keep-going`` into ``_build/html``;
   MathJax comes from the ``sphinx-mathjax-offline`` package (pip only, no network at read time).

Timings of every step are written to ``_build/timings.json``. The module is also a small Sphinx
extension (:func:`setup`, listed in ``_config.yml``) for the API page.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..scales import check_scale

__all__ = [
    "BookBuildError",
    "Chapter",
    "ChapterRun",
    "read_toc",
    "execute_chapter",
    "check_notebook",
    "output_problems",
    "quiet_kernel",
    "KERNEL_ENVIRONMENT",
    "HARMLESS_STDERR",
    "PROGRESS_BAR",
    "TRACEBACK",
    "build_book",
    "setup",
    "main",
]

ROOT_FILES = ("_config.yml", "_toc.yml", "references.bib")
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
# Written by compressible.reproduction.bookbuild for the kernels that execute the book's chapters.
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
    return figures, errors


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


def stage_sources(root: Path, staging: Path) -> None:
    """Copy the book's static sources (config, toc, bibliography, pages, images) to ``staging``."""
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "book").mkdir(parents=True)
    for name in ROOT_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, staging / name)
    for path in (root / "book").rglob("*"):
        if path.is_file() and path.suffix not in {".py", ".ipynb", ".pyc"} and "__pycache__" not in path.parts:
            target = staging / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _drop_empty_parts(toc_file: Path) -> None:
    """Jupyter Book rejects a part without chapters; parts fill up as chapters are written."""
    import yaml

    toc = yaml.safe_load(toc_file.read_text())
    if "parts" in toc:
        toc["parts"] = [part for part in toc["parts"] if part.get("chapters")]
    toc_file.write_text(yaml.safe_dump(toc, sort_keys=False))


def build_book(
    root: Path,
    scale: str,
    build_dir: Path | None = None,
    only: list[str] | None = None,
    timeout: int = 3600,
    html: bool = True,
) -> list[ChapterRun]:
    """Execute every chapter of ``root/_toc.yml`` at ``scale`` and build the HTML book.

    Stops at the first chapter that fails (the error names it). Returns the chapter runs.
    """
    check_scale(scale)
    root = Path(root).resolve()
    build_dir = Path(build_dir or root / "_build").resolve()
    staging = build_dir / "source"
    chapters = read_toc(root)
    if only:
        unknown = sorted(set(only) - {Path(c.name).name for c in chapters})
        if unknown:
            raise BookBuildError(f"unknown chapter(s) {unknown}; the toc has {[Path(c.name).name for c in chapters]}")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    stage_sources(root, staging)
    _drop_empty_parts(staging / "_toc.yml")
    (build_dir / "timings.json").unlink(missing_ok=True)
    runs = []

    def write_timings(**extra) -> None:  # after every step, so that a failed build still shows where its time went
        (build_dir / "timings.json").write_text(json.dumps(
            {"scale": scale, "timings": timings, "chapters": [asdict(r) for r in runs], **extra}, indent=1))

    for chapter in chapters:
        if not chapter.executable or (only and Path(chapter.name).name not in only):
            continue
        print(f"[book] executing {chapter.name} at {scale} scale ...", flush=True)
        run = execute_chapter(chapter.source, staging / f"{chapter.name}.ipynb", scale, timeout, cwd=staging / "book")
        print(f"[book]   {chapter.name}: {run.seconds:.1f} s, {run.figures} figure(s)", flush=True)
        timings[f"chapter {Path(chapter.name).name}"] = run.seconds
        runs.append(run)
        write_timings(finished=False)
    if html:
        t0 = time.perf_counter()
        html_dir = build_dir / "html"
        if html_dir.exists():
            shutil.rmtree(html_dir)
        command = [
            str(Path(sys.executable).parent / "jupyter-book"), "build", str(staging),
            "--path-output", str(build_dir.parent),
            "-W", "-n", "--keep-going",
        ]
        if build_dir.name != "_build":
            raise BookBuildError(f"the build folder must be named _build (jupyter-book writes <path-output>/_build), got {build_dir}")
        print("[book] " + " ".join(command), flush=True)
        result = subprocess.run(command, cwd=staging)
        timings["jupyter-book build"] = time.perf_counter() - t0
        if result.returncode != 0:
            write_timings(finished=False)
            raise BookBuildError(f"jupyter-book build failed (exit {result.returncode}); see the warnings above")
    timings["total"] = time.perf_counter() - start
    write_timings(finished=True)
    return runs


_ATTRIBUTE_KINDS = ("attribute", "data", "property")
_attribute_docstrings: dict[str, list[str]] = {}


def _keep_attribute_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    if what in _ATTRIBUTE_KINDS:
        _attribute_docstrings[name] = list(lines)


def _restore_attribute_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    if what in _ATTRIBUTE_KINDS and name in _attribute_docstrings:
        lines[:] = _attribute_docstrings.pop(name)


def setup(app) -> dict:
    """Sphinx extension hook: attribute docstrings stay prose.

    napoleon reads "Some text: more text" on the first line of an attribute's docstring as
    "type: description"; this package gives types by annotation only, so the docstring of an
    attribute is kept as written (saved before napoleon runs, restored after it).
    """
    app.connect("autodoc-process-docstring", _keep_attribute_docstring, priority=400)
    app.connect("autodoc-process-docstring", _restore_attribute_docstring, priority=600)
    return {"parallel_read_safe": False, "parallel_write_safe": True}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compressible.reproduction.bookbuild", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="execute all chapters and build the HTML book")
    build.add_argument("--scale", default="ci", choices=["smoke", "ci", "paper"])
    build.add_argument("--root", default=".", help="folder holding _toc.yml (default: .)")
    build.add_argument("--only", nargs="*", help="execute only these chapters (names without book/)")
    build.add_argument("--no-html", action="store_true", help="execute and check, but do not run jupyter-book")
    build.add_argument("--timeout", type=int, default=3600, help="per-cell execution timeout in seconds")
    one = sub.add_parser("execute", help="execute and check one chapter")
    one.add_argument("chapter", help="path to book/<name>.py")
    one.add_argument("--scale", default="smoke", choices=["smoke", "ci", "paper"])
    one.add_argument("--output", default=None, help="executed notebook (default: _build/chapters/<name>.ipynb)")
    one.add_argument("--timeout", type=int, default=3600)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build_book(Path(args.root), args.scale, only=args.only, timeout=args.timeout, html=not args.no_html)
        else:
            source = Path(args.chapter)
            output = Path(args.output or Path("_build") / "chapters" / f"{source.stem}.ipynb")
            run = execute_chapter(source, output, args.scale, args.timeout)
            print(f"{run.name}: {run.seconds:.1f} s, {run.figures} figure(s), written to {run.output}")
    except BookBuildError as error:
        print(f"[book] FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
