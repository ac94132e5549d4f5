"""Build the companion book: execute every chapter, check it, and run Jupyter Book.

Pipeline (``python -m compressible.reproduction.bookbuild build --scale ci``, which ``make book`` calls):

1. read ``_toc.yml`` (:func:`~compressible.reproduction.execute.read_toc`); an entry ``book/<name>`` is
   a chapter when ``book/<name>.py`` exists (jupytext percent format) and a plain page when
   ``book/<name>.md`` exists;
2. stage the book sources into ``_build/source/`` (config, toc, bibliography, pages; :func:`stage_sources`);
3. execute each chapter, in toc order except that a chapter runs after those its header ``needs``
   (:func:`~compressible.reproduction.execute.execution_order`), with papermill in a quiet kernel and check what a reader will see
   (:func:`~compressible.reproduction.execute.execute_chapter`: no errors, stderr, progress bars,
   tracebacks or warnings, and as many figures as the chapter declares), writing
   ``_build/source/book/<name>.ipynb`` with the parameter cells hidden;
4. build the HTML with ``jupyter-book build -W -n --keep-going`` into ``_build/html``;
   MathJax comes from the ``sphinx-mathjax-offline`` package (pip only, no network at read time).

Timings of every step are written to ``_build/timings.json``. The module is also a small Sphinx
extension (:func:`setup`, listed in ``_config.yml``) for the API page.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..scales import check_scale
from .execute import PROGRESS_BAR, TRACEBACK, BookBuildError, ChapterRun, execute_chapter, execution_order, read_toc  # noqa: F401

__all__ = ["stage_sources", "build_book", "setup", "main"]

ROOT_FILES = ("_config.yml", "_toc.yml", "references.bib")


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
    chapters = execution_order(read_toc(root))
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
    _import_package()
    return {"parallel_read_safe": False, "parallel_write_safe": True}


def _import_package() -> None:
    """Import every module of the package before autodoc documents any: autodoc rewrites a documented class's
    ``__annotations__`` (it records the types it shows), and a pydantic model defined afterwards on that class
    would inherit annotations it cannot resolve (a summary type in another chapter, e.g. ``Table1Task``)."""
    import importlib
    import pkgutil

    import compressible

    for module in pkgutil.walk_packages(compressible.__path__, "compressible."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)


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
