"""The API page is built with ``-n -W``: every fully qualified cross-reference in a docstring must name
something the page documents. This finds an unresolved one in seconds instead of at the end of a book build."""

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r":(?:func|class|data|meth|attr|mod|exc):`~?(compressible(?:\.\w+)+)`")


def _documented_modules() -> set[str]:
    api = (ROOT / "book" / "api.md").read_text()
    return set(re.findall(r"\.\. automodule:: (\S+)", api))


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
        if rest[0] not in getattr(module, "__all__", ()):
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
    modules = _documented_modules()
    assert "compressible.finetune.classify" in modules  # the page is where the test expects it
    missing = []
    for path in sorted((ROOT / "src" / "compressible").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts)
        if module not in modules:  # not rendered: its references are never resolved
            continue
        for target in REFERENCE.findall(path.read_text()):
            if not _documented(target, modules):
                missing.append(f"{path.relative_to(ROOT)}: {target}")
    assert not missing, "references the API page cannot resolve (add to __all__ or to book/api.md):\n" + "\n".join(missing)
