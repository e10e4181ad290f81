"""The package's shape (docs/ARCHITECTURE.md): layers, no import circles, engines in one place.

Reads every module of ``jpasbatch/`` with :mod:`ast` (nothing is imported, so
this costs a fraction of a second) and checks every first-party import, at the
top of a module or inside a function alike:

* it points down the layers ``cli -> pipeline -> domain -> {physics,
  distribute} -> core`` (or stays in its own folder);
* the modules, and the folders, import each other without a circle;
* only ``distribute/`` (and ``bench/``, which measures the engines) imports
  Dask or Ray.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jpasbatch"

#: Folder -> layer; a module may import its own folder and the layers below its own.
LAYERS = {
    "core": 0,
    "physics": 1,
    "distribute": 1,
    "catalog": 2,
    "sim": 2,
    "mocks": 2,
    "templatefit": 2,
    "classify": 2,
    "foundation": 2,
    "spectra": 2,
    "vac": 2,
    "bench": 2,
    "pipeline": 3,
    "cli": 4,
    "": 5,  # jpasbatch/__init__.py: the notebook user's few functions
}
#: Layers whose folders may import each other (acyclically): the domain kernels.
SHARED = {2}
#: The engines, imported only by the distribution layer (and the benchmarks).
ENGINES = {"dask", "distributed", "dask_cuda", "dask_jobqueue", "ray"}
ENGINE_FOLDERS = {"distribute", "bench"}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _folder(module: str) -> str:
    """The top-level folder of ``jpasbatch`` a module is in ('' for the package root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _resolve(name: str) -> str | None:
    """The first-party module an imported name lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> tuple[set[str], set[str]]:
    """First-party modules and third-party top-level packages ``module`` imports."""
    ours, theirs = set(), set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # `from pkg import sub` imports the submodule; `from mod import name` the module
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]  # fmt: skip
        else:
            continue
        for name in names:
            if name.split(".")[0] == "jpasbatch":
                target = _resolve(name)
                if target and target != module:
                    ours.add(target)
            else:
                theirs.add(name.split(".")[0])
    return ours, theirs


GRAPH: dict[str, set[str]] = {}
THIRD_PARTY: dict[str, set[str]] = {}
for _m, _p in MODULES.items():
    GRAPH[_m], THIRD_PARTY[_m] = _imports(_m, _p)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_folder_has_a_layer():
    assert {_folder(m) for m in MODULES} <= set(LAYERS), "add the new folder to LAYERS"


def _against_layers(graph: dict[str, set[str]]) -> list[str]:
    """The imports of ``graph`` that point up the layers, or sideways out of a folder."""
    wrong = []
    for module, targets in sorted(graph.items()):
        here = _folder(module)
        for target in sorted(targets):
            there = _folder(target)
            if there == here or LAYERS[there] < LAYERS[here]:
                continue
            if LAYERS[there] == LAYERS[here] and LAYERS[here] in SHARED:
                continue  # domain to domain: allowed, circles are caught below
            wrong.append(f"{module} -> {target}")
    return wrong


def test_imports_point_down_the_layers():
    wrong = _against_layers(GRAPH)
    assert not wrong, "imports against the layers (docs/ARCHITECTURE.md):\n" + "\n".join(wrong)


def test_no_import_circles_between_modules():
    assert not _cycles(GRAPH)


def _package(module: str) -> str:
    """A module's folder: its package (sub-packages count as folders of their own)."""
    return module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]


def test_no_import_circles_between_folders():
    folders: dict[str, set[str]] = defaultdict(set)
    for module, targets in GRAPH.items():
        here = _package(module)
        for there in map(_package, targets):
            # a folder and its own sub-folders are one unit here
            if not (there + ".").startswith(here + ".") and not here.startswith(there + "."):
                folders[here].add(there)
    assert not _cycles(folders)


def test_only_the_distribution_layer_imports_the_engines():
    wrong = {
        m: sorted(THIRD_PARTY[m] & ENGINES)
        for m in MODULES
        if THIRD_PARTY[m] & ENGINES and _folder(m) not in ENGINE_FOLDERS
    }
    assert not wrong, f"Dask / Ray outside jpasbatch.distribute: {wrong}"


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [("core.errors", "catalog.ingest", False), ("catalog.ingest", "pipeline.runner", False),
     ("physics.noise", "distribute.dask", False), ("distribute.dask", "physics.filters", False),
     ("pipeline.runner", "core.errors", True), ("vac.infer", "classify.evaluate", True),
     ("cli.app", "cli.job", True)],
)  # fmt: skip
def test_the_rule_catches_an_upward_import(source, target, ok):
    graph = {f"jpasbatch.{source}": {f"jpasbatch.{target}"}}
    assert (not _against_layers(graph)) == ok
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
