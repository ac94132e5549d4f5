"""Build the companion book: execute every chapter, check it, and run Jupyter Book.

Pipeline (``python -m compressible.reproduction.bookbuild build --scale ci``, which ``make book`` calls):

1. read ``_toc.yml``; an entry ``book/<name>`` is a chapter when ``book/<name>.py`` exists
   (jupytext percent format) and a plain page when ``book/<name>.md`` exists;
2. stage the book sources into ``_build/source/`` (config, toc, bibliography, pages);
3. convert each chapter to a notebook and execute it with papermill (``-p scale <scale>``, kernel
   ``python3``, an execution timeout), writing ``_build/source/book/<name>.ipynb``;
4. check every executed notebook: no ``error`` output, and exactly as many ``image/png`` figures as
   the chapter declares in its header (``compressible: figures: N``) -- a chapter whose figures do
   not render (``matplotlib.use("Agg")``, a deleted ``plt.show()``) fails the build by name;
5. hide the parameter cells (``remove-cell`` on the ``parameters`` and ``injected-parameters``
   cells) and build the HTML with ``jupyter-book build -W -n --keep-going`` into ``_build/html``.

Timings of every step are written to ``_build/timings.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
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
    "build_book",
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


def _expected_figures(notebook, name: str) -> int:
    meta = notebook.metadata.get("compressible", {})
    if "figures" not in meta:
        raise BookBuildError(
            f"chapter {name!r} does not declare its figures: add `compressible: figures: N` to the "
            f"jupytext header (under `jupyter:`)"
        )
    value = meta["figures"]
    if not isinstance(value, int) or value < 0:
        raise BookBuildError(f"chapter {name!r}: `figures` must be a whole number >= 0, got {value!r}")
    return value


def _cell_label(cell, index: int) -> str:
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"cell {index} ({first[:60]!r})"


def check_notebook(notebook, name: str) -> tuple[int, list[str]]:
    """Count ``image/png`` outputs and collect ``error`` outputs of an executed notebook."""
    figures, errors = 0, []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"{_cell_label(cell, index)}: {output.get('ename')}: {output.get('evalue')}")
            elif "image/png" in output.get("data", {}):
                figures += 1
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
        BookBuildError: naming the chapter (and the cell) when a cell raises, when an ``error``
            output is present, or when the number of figures differs from the declared one.
    """
    import jupytext
    import nbformat
    import papermill

    check_scale(scale)
    source = Path(source)
    name = source.stem
    notebook = jupytext.read(source)
    expected = _expected_figures(notebook, name)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    unexecuted = output.with_suffix(".input.ipynb")
    nbformat.write(notebook, unexecuted)
    _prefer_environment_kernel()
    start = time.perf_counter()
    try:
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
    nbformat.write(executed, output)
    figures, errors = check_notebook(executed, name)
    run = ChapterRun(name, scale, seconds, figures, expected, str(output), errors)
    if errors:
        raise BookBuildError(f"chapter {name!r} has error outputs: " + "; ".join(errors))
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


MATHJAX_SPEC = "mathjax@3"


def vendor_mathjax(staging: Path, cache: Path) -> Path:
    """Put MathJax 3 (its ``es5`` bundle, from the npm registry) at ``staging/_vendor/mathjax``.

    The tarball is fetched once with ``npm pack`` into ``cache`` and reused; the HTML then loads
    ``_static/mathjax/tex-mml-chtml.js`` (see ``mathjax_path`` in ``_config.yml``), so formulas
    are typeset without any network access.
    """
    import tarfile

    bundle = cache / "mathjax" / "es5"
    if not (bundle / "tex-mml-chtml.js").is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise BookBuildError("npm is needed to vendor MathJax (install Node.js/npm, e.g. apt-get install npm)")
        cache.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [npm, "pack", MATHJAX_SPEC, "--pack-destination", str(cache), "--silent"],
            capture_output=True, text=True, cwd=cache,
        )
        if result.returncode != 0:
            raise BookBuildError(f"npm pack {MATHJAX_SPEC} failed: {result.stderr.strip()}")
        tarball = cache / result.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith("package/es5/")]
            archive.extractall(cache / "extract", members=members, filter="data")
        if bundle.parent.exists():
            shutil.rmtree(bundle.parent)
        (cache / "extract" / "package").rename(bundle.parent)
        shutil.rmtree(cache / "extract", ignore_errors=True)
        tarball.unlink(missing_ok=True)
    target = staging / "_vendor" / "mathjax"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(bundle, target)
    return target


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
    runs = []
    for chapter in chapters:
        if not chapter.executable or (only and Path(chapter.name).name not in only):
            continue
        print(f"[book] executing {chapter.name} at {scale} scale ...", flush=True)
        run = execute_chapter(chapter.source, staging / f"{chapter.name}.ipynb", scale, timeout, cwd=staging / "book")
        print(f"[book]   {chapter.name}: {run.seconds:.1f} s, {run.figures} figure(s)", flush=True)
        timings[f"chapter {Path(chapter.name).name}"] = run.seconds
        runs.append(run)
    if html:
        t0 = time.perf_counter()
        vendor_mathjax(staging, build_dir / "vendor")
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
        if result.returncode != 0:
            raise BookBuildError(f"jupyter-book build failed (exit {result.returncode}); see the warnings above")
        timings["jupyter-book build"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - start
    (build_dir / "timings.json").write_text(
        json.dumps({"scale": scale, "timings": timings, "chapters": [asdict(r) for r in runs]}, indent=1)
    )
    return runs


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
