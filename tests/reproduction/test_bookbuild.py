"""Tests of compressible.reproduction.bookbuild: the API page and the Sphinx hook (executing a chapter:
test_execute.py)."""


def test_api_page_documents_every_module():
    """What users call, and only that: every module of the package except the chapters' tables and figures
    (and the figures' colours); a package appears by its docstring."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    package = root / "src" / "compressible"
    paths = [path for path in package.rglob("*.py") if path.name != "__init__.py"]
    name = lambda path: "compressible." + ".".join(path.relative_to(package).with_suffix("").parts)  # noqa: E731
    helpers = {name(p) for p in paths if p.stem in ("tables", "figures", "views") and "experiments" in p.parts}
    helpers.add("compressible.experiments.style")
    modules = {name(p) for p in paths} - helpers
    packages = {name(p.parent / "x")[:-2] for p in package.rglob("__init__.py") if p.parent != package}
    documented = {line.split("::", 1)[1].strip() for line in (root / "book" / "api.md").read_text().splitlines()
                  if line.startswith(".. automodule::")}
    assert sorted(modules - documented) == []
    assert sorted(documented - modules - packages) == [] and not documented & helpers


def test_attribute_docstrings_stay_prose_around_napoleon():
    from types import SimpleNamespace

    from sphinx.ext.napoleon import Config, _process_docstring

    from compressible.reproduction import bookbuild

    app = SimpleNamespace(config=Config(napoleon_google_docstring=True, napoleon_numpy_docstring=False))
    text = ["Lines a kernel may write: blank lines and", "a font-cache note."]
    napoleon_alone = list(text)
    _process_docstring(app, "data", "m.X", None, {}, napoleon_alone)
    assert ":type: Lines a kernel may write" in napoleon_alone  # what the hook prevents
    lines = list(text)
    for handler in (bookbuild._keep_attribute_docstring, _process_docstring, bookbuild._restore_attribute_docstring):
        handler(app, "data", "m.X", None, {}, lines)
    assert lines == text
    function = ["Run it.", "", "Args:", "    x: the input."]
    for handler in (bookbuild._keep_attribute_docstring, _process_docstring, bookbuild._restore_attribute_docstring):
        handler(app, "function", "m.f", None, {}, function)
    assert ":param x: the input." in function  # functions still get napoleon's sections
