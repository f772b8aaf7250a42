"""One fingerprint of code for every cache: a hash of some modules of `src` and of all
the `src` modules they import, read from the files.

The model cache keys trained models by `fingerprint(TRAINING)`, so a model is trained
again exactly when code it runs changes; the Makefile keys the executed chapters by
`python -m src.shared.fingerprint` (all of `src`).
"""

from __future__ import annotations

import ast
import hashlib
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
# What trains, feeds and builds a cached model; `fingerprint` adds what they import.
TRAINING = ("src.recipes.copy_task", "src.recipes.numbers", "src.recipes.translation")


def module_file(name: str) -> Path:
    """The file of module `name` of `src` (a package's `__init__.py`)."""
    path = SRC.parent.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def src_imports(name: str) -> set[str]:
    """The `src` modules that module `name` imports, with the packages they are in."""
    found = set()
    for node in ast.walk(ast.parse(module_file(name).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("src"):
            base = node.module
            found |= {f"{base}.{a.name}" for a in node.names} | {base}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("src")}
    prefixes = {n.rsplit(".", i)[0] for n in found for i in range(n.count(".") + 1)}
    return {n for n in prefixes if module_file(n).is_file()}


def closure(roots: tuple[str, ...]) -> list[str]:
    """`roots` and every `src` module they import, directly or not, sorted."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(src_imports(name) - seen)
    return sorted(seen)


def fingerprint(roots: tuple[str, ...] | None = None) -> str:
    """sha256 of the files of `closure(roots)`, names included (None: all of `src`)."""
    if roots is None:
        names = sorted(p.relative_to(SRC.parent).with_suffix("").as_posix()
                       for p in SRC.rglob("*.py"))  # fmt: skip
        roots = tuple(n.replace("/", ".").removesuffix(".__init__") for n in names)
    h = hashlib.sha256()
    for name in closure(roots):
        h.update(name.encode() + b"\0" + module_file(name).read_bytes())
    return h.hexdigest()


if __name__ == "__main__":
    print(fingerprint(tuple(sys.argv[1:]) or None)[:16])
