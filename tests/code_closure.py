"""The library code a stage script runs, read from its imports (no execution): the modules of ``liser`` it
imports, the modules those import, and so on, with the packages they sit in."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "liser"


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """``liser/a/b.py`` or ``liser/a/b/__init__.py`` for ``liser.a.b``; None when neither exists."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path, root: Path) -> set[str]:
    """Names of the liser modules ``path`` imports anywhere in it (functions included), as ``a.b.c``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_name(path, root) if path.is_relative_to(root / PACKAGE) else ""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return {name for name in names if name == PACKAGE or name.startswith(PACKAGE + ".")}


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def direct_imports(path: Path, root: Path = ROOT) -> set[Path]:
    """The files of ``liser/`` that ``path`` imports itself (packages' ``__init__.py`` included)."""
    found = (module_file(module, root) for name in _imported(path, root) for module in _with_parents(name))
    return {file.relative_to(root) for file in found if file is not None}


@cache
def closure(script: Path, root: Path = ROOT) -> frozenset[Path]:
    """Every file of ``liser/`` that importing and running ``script`` executes, relative to ``root``."""
    seen: set[Path] = set()
    pending = [script]
    while pending:
        current = pending.pop()
        for name in _imported(current, root):
            for module in _with_parents(name):
                found = module_file(module, root)
                if found is not None and found not in seen:
                    seen.add(found)
                    pending.append(found)
    return frozenset(path.relative_to(root) for path in seen)


def is_inert(path: Path, root: Path = ROOT) -> bool:
    """A module whose whole body is its docstring: running it can change nothing a stage computes."""
    body = ast.parse((root / path).read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)


def covered(path: Path, deps: list[str]) -> bool:
    """Whether one of a stage's dependencies is ``path`` or a folder above it."""
    return any(path == Path(dep) or Path(dep) in path.parents for dep in deps)


def python_files(folder: Path, root: Path = ROOT) -> set[Path]:
    return {path.relative_to(root) for path in (root / folder).rglob("*.py")}


def code_listing(script: Path, root: Path = ROOT) -> list[str]:
    """What a stage running ``script`` should list as its code: the script and every module it runs (inert ones,
    a docstring only, left out), a folder in place of its files where it runs every one of them."""
    running = {module for module in closure(script, root) if not is_inert(module, root)}
    listed: set[Path] = set(running)
    folders = sorted({parent for module in running for parent in module.parents if parent != Path(".")}, key=len_parts)
    for folder in folders:
        inside = {f for f in python_files(folder, root) if not is_inert(f, root)}
        if inside and inside <= running and not any(parent in listed for parent in folder.parents):
            listed = {path for path in listed if folder not in path.parents} | {folder}
    return [str(script), *sorted(str(path) for path in listed)]


def len_parts(path: Path) -> int:
    return len(path.parts)
