"""The import rules of ARCHITECTURE.md, checked on the source with ``ast`` (nothing is imported).

Walks every module of ``crm_ml/``, ``actions/``, ``bot/``, ``console/``,
``bench/`` and ``scripts/`` (tests are left out) and fails, naming file and
line, on:

- an upward import (see :data:`FORBIDDEN`): crm_ml is the bottom layer and
  never imports Rasa; actions, bot and console sit beside each other on top of
  it and never import one another; no product package imports the benchmark,
  the scripts or the tests;
- a private (``_``-prefixed) crm_ml name used from actions/, bot/ or console/,
  imported (``from crm_ml.x import _y``) or reached as an attribute
  (``crm_ml.x._y``, ``x._y`` after ``from crm_ml import x``);
- a module over :data:`MAX_LINES` lines (migrations aside);
- an import cycle among project modules, counting the imports that run at
  import time (module and class bodies, not functions nor ``if TYPE_CHECKING``).
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crm_ml", "actions", "bot", "console", "bench", "scripts")
MAX_LINES = 500
SIZE_EXEMPT = ("crm_ml/migrations/",)
NOT_PRODUCT = {"bench", "scripts", "tests"}
RASA = {"rasa", "rasa_sdk"}
# layer -> the top-level packages it must not import
FORBIDDEN: dict[str, set[str]] = {
    "crm_ml": {"actions", "bot", "console"} | NOT_PRODUCT | RASA,
    "actions": {"bot", "console"} | NOT_PRODUCT,
    "console": {"actions", "bot"} | NOT_PRODUCT,
    "bot": {"actions", "console"} | NOT_PRODUCT,
}
# layers that may use crm_ml's public names only
CRM_ML_CLIENTS = {"actions", "bot", "console"}


@dataclass(frozen=True)
class Import:
    """One import statement (or ``importlib.import_module("...")`` call) in a module."""

    module: str  # absolute dotted name imported from
    names: tuple[str, ...]  # ``from module import names``; empty for ``import module``
    line: int
    at_import_time: bool  # runs when the module is imported (not in a function)
    typing_only: bool  # inside ``if TYPE_CHECKING:``


@dataclass
class Module:
    """A project module: its dotted name, file and parsed source."""

    name: str
    path: Path
    rel: str  # the file relative to the repository root
    tree: ast.Module
    lines: int

    @property
    def layer(self) -> str:
        """The top-level package (``crm_ml``, ``actions``, ...)."""
        return self.name.split(".")[0]

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]


def is_private(name: str) -> bool:
    """``_x`` is private; ``__all__``, ``__version__`` and the like are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def module_name(path: Path, root: Path = ROOT) -> str:
    """``crm_ml/db/__init__.py`` -> ``crm_ml.db``; ``bench/run.py`` -> ``bench.run``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def load_modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Module]:
    """Every ``.py`` file below ``packages``, parsed."""
    out: dict[str, Module] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            name = module_name(path, root)
            out[name] = Module(name, path, path.relative_to(root).as_posix(),
                               ast.parse(text, filename=str(path)), len(text.splitlines()))
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    if node.level > 1:
        base = base[:-(node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(module: Module) -> list[Import]:
    """Every import of ``module``, with where it runs."""
    out: list[Import] = []

    def visit(node: ast.AST, at_import_time: bool, typing_only: bool) -> None:
        if isinstance(node, ast.Import):
            out.extend(Import(a.name, (), node.lineno, at_import_time, typing_only)
                       for a in node.names)
            return
        if isinstance(node, ast.ImportFrom):
            out.append(Import(_resolve(module, node), tuple(a.name for a in node.names),
                              node.lineno, at_import_time, typing_only))
            return
        if (isinstance(node, ast.Call) and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
                and (getattr(node.func, "attr", None) == "import_module"
                     or getattr(node.func, "id", None) in {"import_module", "__import__"})):
            out.append(Import(node.args[0].value, (), node.lineno, at_import_time, typing_only))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            at_import_time = False
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, at_import_time, True)
            for child in node.orelse:
                visit(child, at_import_time, typing_only)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, at_import_time, typing_only)

    visit(module.tree, True, False)
    return out


def targets(imp: Import, modules: dict[str, Module]) -> Iterator[str]:
    """The project modules an import loads by name (``from a import b``: ``a.b`` if a module)."""
    candidates = [f"{imp.module}.{n}" for n in imp.names] if imp.names else [imp.module]
    for name in candidates:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            yield name


# --------------------------------------------------------------------------- the checks


def upward_imports(modules: dict[str, Module]) -> list[str]:
    """``file:line: layer imports x`` for every import :data:`FORBIDDEN` forbids."""
    found = []
    for m in modules.values():
        banned = FORBIDDEN.get(m.layer, set())
        for imp in imports(m):
            top = imp.module.split(".")[0]
            if top in banned:
                found.append(f"{m.rel}:{imp.line}: {m.layer} imports {imp.module}")
    return sorted(found)


def private_crm_ml_names(modules: dict[str, Module]) -> list[str]:
    """``file:line: name`` for every private crm_ml name actions/, bot/ or console/ use."""
    found = []
    for m in modules.values():
        if m.layer not in CRM_ML_CLIENTS:
            continue
        bound: dict[str, str] = {}  # local name -> the crm_ml path it stands for
        for imp in imports(m):
            if imp.module.split(".")[0] != "crm_ml":
                continue
            paths = [f"{imp.module}.{n}" for n in imp.names] if imp.names else [imp.module]
            for path in paths:
                if any(is_private(part) for part in path.split(".")):
                    found.append(f"{m.rel}:{imp.line}: imports {path}")
        for node in ast.walk(m.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "crm_ml":
                        if a.asname:
                            bound[a.asname] = a.name
                        else:
                            bound["crm_ml"] = "crm_ml"
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(m, node)
                if base.split(".")[0] == "crm_ml":
                    for a in node.names:
                        bound[a.asname or a.name] = f"{base}.{a.name}"
        for node in ast.walk(m.tree):
            if not isinstance(node, ast.Attribute) or not is_private(node.attr):
                continue
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                path = ".".join([bound[value.id], *reversed(chain)])
                found.append(f"{m.rel}:{node.lineno}: uses {path}")
    return sorted(set(found))


def oversized(modules: dict[str, Module]) -> list[str]:
    """``file: n lines`` for every module over :data:`MAX_LINES`, migrations aside."""
    return sorted(f"{m.rel}: {m.lines} lines" for m in modules.values()
                  if m.lines > MAX_LINES and not m.rel.startswith(SIZE_EXEMPT))


def import_graph(modules: dict[str, Module]) -> dict[str, dict[str, int]]:
    """module -> {project module it imports at import time -> line}, typing-only aside."""
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for m in modules.values():
        for imp in imports(m):
            if imp.at_import_time and not imp.typing_only:
                for target in targets(imp, modules):
                    if target != m.name:
                        graph[m.name].setdefault(target, imp.line)
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def one_cycle(graph: dict[str, dict[str, int]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth first)."""
    start, members = component[0], set(component)
    parent: dict[str, str] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    return component


def import_cycles(modules: dict[str, Module]) -> list[str]:
    """One readable cycle (``a (a.py:3) -> b (b.py:7) -> a``) per tangle of modules."""
    graph = import_graph(modules)
    found = []
    for component in strongly_connected(graph):
        cycle = one_cycle(graph, component)
        steps = [f"{a} ({modules[a].rel}:{graph[a][b]})" for a, b in pairwise(cycle)]
        found.append(" -> ".join([*steps, cycle[-1]]) + f"  [{len(component)} modules tangled]")
    return found


# --------------------------------------------------------------------------- the tree


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return load_modules()


def _report(what: str, rule: str, found: list[str]) -> str:
    return f"{len(found)} {what} ({rule}; see ARCHITECTURE.md):\n  " + "\n  ".join(found)


def test_the_walk_sees_every_layer(modules: dict[str, Module]) -> None:
    assert {m.layer for m in modules.values()} == set(PACKAGES)
    assert "crm_ml.config" in modules and "bench.run" in modules


def test_no_upward_import(modules: dict[str, Module]) -> None:
    found = upward_imports(modules)
    assert not found, _report(
        "upward imports", "crm_ml imports no other layer nor Rasa; actions, bot and console "
        "import crm_ml, never one another; no product code imports bench, scripts or tests",
        found)


def test_no_private_crm_ml_name_outside_crm_ml(modules: dict[str, Module]) -> None:
    found = private_crm_ml_names(modules)
    assert not found, _report(
        "uses of private crm_ml names", "actions, bot and console use crm_ml's public names "
        "only: make the name public (and list it in __all__) or add a public function", found)


def test_no_module_over_the_size_limit(modules: dict[str, Module]) -> None:
    found = oversized(modules)
    assert not found, _report(
        f"modules over {MAX_LINES} lines", "split by responsibility, tests and migrations "
        "aside", found)


def test_no_import_cycle(modules: dict[str, Module]) -> None:
    found = import_cycles(modules)
    assert not found, _report(
        "import cycles", "imports that run at import time form no cycle: move the shared "
        "piece below both modules", found)


# --------------------------------------------------------------------------- the checker itself


def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Module]:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return load_modules(tmp_path, sorted({rel.split("/")[0] for rel in files}))


def test_the_checker_finds_what_it_should(tmp_path: Path) -> None:
    modules = _tree(tmp_path, {
        "crm_ml/__init__.py": "",
        "crm_ml/a.py": "from crm_ml import b\ndef f():\n    import rasa_sdk\n",
        "crm_ml/b.py": "from typing import TYPE_CHECKING\nfrom . import a\n"
                       "if TYPE_CHECKING:\n    from crm_ml import c\n",
        "crm_ml/c.py": "from crm_ml.b import __all__\ndef _hidden():\n    pass\n",
        "console/__init__.py": "",
        "console/x.py": "import crm_ml.c\nfrom crm_ml import c as cc\n"
                        "from crm_ml.c import _hidden\nimport actions\n"
                        "crm_ml.c._hidden()\ncc._hidden()\ncc.__name__\n",
        "bot/__init__.py": "\n" * (MAX_LINES + 1),
    })
    assert upward_imports(modules) == ["console/x.py:4: console imports actions",
                                       "crm_ml/a.py:3: crm_ml imports rasa_sdk"]
    assert private_crm_ml_names(modules) == [
        "console/x.py:3: imports crm_ml.c._hidden", "console/x.py:5: uses crm_ml.c._hidden",
        "console/x.py:6: uses crm_ml.c._hidden"]
    assert oversized(modules) == [f"bot/__init__.py: {MAX_LINES + 1} lines"]
    assert import_cycles(modules) == [
        "crm_ml.a (crm_ml/a.py:1) -> crm_ml.b (crm_ml/b.py:2) -> crm_ml.a"
        "  [2 modules tangled]"]
