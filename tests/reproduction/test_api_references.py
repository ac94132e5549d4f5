"""The API page is built with ``-n -W``: every cross-reference in a rendered module's docstrings must name
something the page documents, fully qualified or relative to its own module. This finds an unresolved one in
seconds instead of at the end of a book build."""

import ast
import importlib
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r":(?:func|class|data|meth|attr|mod|exc):`~?(compressible(?:\.\w+)+)`")
UNQUALIFIED = re.compile(r":(?:func|class|data|meth|attr|exc):`~?([A-Za-z_]\w*(?:\.\w+)*)`")
MODULES = re.compile(r":mod:`~?(\.?[A-Za-z_]\w*(?:\.\w+)*)`")
EXTERNAL = re.compile(_IGNORED := r"(compressible|torch|np|numpy|pd|pandas|nn|transformers|datasets|peft|os|pathlib|typing|"
                      r"collections|dataclasses|matplotlib|pydantic|scipy)\b")


def _documented_modules() -> set[str]:
    """The modules whose members the page documents (``automodule`` with ``:members:``; a package listed
    without them shows its docstring only, so names it re-exports resolve only where they are defined)."""
    api = (ROOT / "book" / "api.md").read_text()
    return set(re.findall(r"\.\. automodule:: (\S+)\n\s+:members:", api))


def _rendered_modules() -> set[str]:
    """Every module the page renders (its docstring's references are resolved), members or not."""
    api = (ROOT / "book" / "api.md").read_text()
    return set(re.findall(r"\.\. automodule:: (\S+)", api))


def _defined_in(module, name: str) -> bool:
    """Whether autodoc documents ``name`` (in ``__all__``) on ``module``'s page: a class or function always
    (it carries its docstring, even re-exported), a constant only where the module's source assigns it (its
    docstring is read from that source, so a re-exported constant has none and is left out; an undocumented
    one is left out too)."""
    obj = getattr(module, name)
    if inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj):
        return True
    source = inspect.getsource(module)
    lines = source.splitlines()
    body = ast.parse(source).body
    for node, after in zip(body, [*body[1:], None]):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            # autodoc shows a constant only with a docstring: a string right after the assignment, or a #: comment above
            comment = node.lineno > 1 and lines[node.lineno - 2].lstrip().startswith("#:")
            return comment or (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                               and isinstance(after.value.value, str))
    return False


def _documented(target: str, modules: set[str]) -> bool:
    """Whether ``target`` is a documented module or a public member of one (in its ``__all__``), or an
    attribute of such a member (a method, field or property)."""
    if target in modules:
        return True
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name, rest = ".".join(parts[:cut]), parts[cut:]
        if module_name not in modules:
            continue
        module = importlib.import_module(module_name)
        if rest[0] not in getattr(module, "__all__", ()) or not _defined_in(module, rest[0]):
            return False
        obj = getattr(module, rest[0])
        for name in rest[1:]:
            fields = getattr(obj, "__dataclass_fields__", {}) or getattr(obj, "model_fields", {})
            if not (hasattr(obj, name) or name in fields):
                return False
            obj = getattr(obj, name, None)
        return True
    return False


def test_every_qualified_docstring_reference_is_documented():
    modules, rendered = _documented_modules(), _rendered_modules()
    assert "compressible.finetune.classify.config" in modules  # the page is where the test expects it
    missing = []
    for path in sorted((ROOT / "src" / "compressible").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
        if module not in rendered:  # not rendered: its references are never resolved
            continue
        for target in REFERENCE.findall(path.read_text()):
            if target not in rendered and not _documented(target, modules):
                missing.append(f"{path.relative_to(ROOT)}: {target}")
    assert not missing, "references the API page cannot resolve (add to __all__ or to book/api.md):\n" + "\n".join(missing)


def _in_class_context(module_name: str, target: str) -> bool:
    """Whether ``target`` is a member of a class the module documents: Sphinx resolves an unqualified
    :meth:/:attr: inside that class's docstrings against it."""
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name, None)
        if isinstance(obj, type):
            fields = getattr(obj, "__dataclass_fields__", {}) or getattr(obj, "model_fields", {})
            if hasattr(obj, target.split(".")[0]) or target in fields:
                return True
    return False


def _resolves(module: str, target: str, modules: set[str]) -> bool:
    """How Sphinx finds an unqualified reference written in ``module``: ``module.target``, then
    ``target`` as a full name, then a member of one of the module's documented classes."""
    return (_documented(f"{module}.{target}", modules) or _documented(target, modules)
            or _in_class_context(module, target))


def test_every_unqualified_docstring_reference_resolves_in_its_module():
    """The reference that broke a CI build: ``:func:`cpu_execution``` left in ``fewshot_glue`` after the
    function moved to ``glue_runs``."""
    modules = _documented_modules()
    rendered = _rendered_modules()
    missing = []
    for path in sorted((ROOT / "src" / "compressible").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts)
        package = module.removesuffix(".__init__") if module.endswith(".__init__") else module.rpartition(".")[0]
        module = module.removesuffix(".__init__")
        if module not in rendered:
            continue
        text = path.read_text()
        for target in UNQUALIFIED.findall(text):
            if EXTERNAL.match(target):
                continue
            if not _resolves(module, target, modules):
                missing.append(f"{path.relative_to(ROOT)}: {target}")
        for target in MODULES.findall(text):  # a module must be on the page: full name, or relative to the package
            if target.startswith("compressible"):
                found = target in rendered
            else:
                found = target in rendered or f"{package}.{target.lstrip('.')}" in rendered
            if not found and not EXTERNAL.match(target.lstrip(".")):
                missing.append(f"{path.relative_to(ROOT)}: module {target}")
    assert not missing, "unqualified references that do not resolve in their module (qualify them):\n" + "\n".join(missing)


def test_a_reference_to_a_moved_function_does_not_resolve():
    modules = _documented_modules()
    # a constant re-exported by another module is documented only where it is defined (the build that failed
    # on :data:`COLLAPSED` in one module after it had moved to another)
    assert _resolves("compressible.experiments.fewshot_glue.probes", "COLLAPSED", modules)
    assert not _resolves("compressible.experiments.fewshot_tuning.plan", "COLLAPSED", modules)
    assert _resolves("compressible.experiments.glue_runs", "cpu_execution", modules)
    assert not _resolves("compressible.experiments.completion", "cpu_execution", modules)
