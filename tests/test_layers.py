"""The shape of the source tree: no import cycle, imports pointing one way through the layers, and every module
importable on its own (in a fresh interpreter state).

Imports are read from the source (`ast`), at module level and inside functions alike, except under
`if TYPE_CHECKING:` (hints only, never run). `from mcpsim.pkg import Name` through a lazy package face
(`mcpsim.faces.lazy_names`) counts as an import of the module the face takes `Name` from.
"""

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "mcpsim"

RANKS = {
    "mcpsim": 0,  # the facade: every import of a submodule runs it first; it imports only `faces` itself
    "mcpsim.errors": 0,
    "mcpsim.wire": 0,
    "mcpsim.faces": 0,
    "mcpsim.protocol": 1,
    "mcpsim.trajectory": 2,
    "mcpsim.proc": 3,
    "mcpsim.isolation": 4,
    "mcpsim.pool": 5,
    "mcpsim.server": 6,
    "mcpsim.client": 6,
    "mcpsim.ray": 6,
    "mcpsim.bench": 7,
    "mcpsim.export": 7,
    "mcpsim.gym": 7,
    "mcpsim.cli": 8,
}
"""A module may import modules of its own rank or below. Ranks: wire/errors -> protocol -> trajectory -> proc ->
isolation -> pool -> server | client | ray (which uses server) -> bench | export | gym -> cli."""
FORBIDDEN = {
    "mcpsim.client": ("mcpsim.server", "mcpsim.pool", "mcpsim.proc", "mcpsim.isolation"),
    "mcpsim.server": ("mcpsim.client", "mcpsim.ray"),
    "mcpsim.ray": ("mcpsim.client",),
    "mcpsim.export": ("mcpsim.server", "mcpsim.pool", "mcpsim.proc", "mcpsim.isolation"),
    "mcpsim.gym": ("mcpsim.server", "mcpsim.pool", "mcpsim.proc", "mcpsim.isolation"),
}
"""Beside the ranks: the client talks MCP to any server and knows nothing of mcpsim's own; the server is no client
and knows nothing of Ray; `mcpsim.ray` runs the server on every node and fronts it, and is no client either."""
ENVS_MAY_IMPORT = ("mcpsim.envs", "mcpsim.wire", "mcpsim.errors")
"""The production servers are ordinary MCP servers: they may share the wire constants and the error tree only."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if path.name != "__main__.py"}
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node, skipping the bodies of `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            yield from (n for stmt in child.orelse for n in [stmt, *_walk(stmt)])
            continue
        yield child
        yield from _walk(child)


def lazy_faces() -> dict[str, dict[str, str]]:
    """Package -> {exported name: module it comes from} for the faces built with `lazy_names` from a dict literal
    (the root `mcpsim` builds its own for the client API: imports of it are of `mcpsim` itself, rank 0)."""
    faces = {}
    for package in PACKAGES:
        tree = ast.parse(MODULES[package].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_names":
                try:
                    where = ast.literal_eval(node.args[1])
                except ValueError:
                    continue
                faces[package] = {name: f"{package}.{module}" for name, module in where.items()}
    return faces


FACES = lazy_faces()


def imports_of(name: str) -> set[str]:
    """The mcpsim modules `name` imports (resolved to modules, through lazy faces)."""
    found: set[str] = set()
    tree = ast.parse(MODULES[name].read_text())
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "mcpsim")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mcpsim":
            assert node.level == 0, f"{name}: relative import"
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if target in MODULES:
                    found.add(target)
                elif node.module in FACES and alias.name in FACES[node.module]:
                    found.add(FACES[node.module][alias.name])
                else:
                    found.add(node.module)
    found.discard(name)
    return {target for target in found if target in MODULES}


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer_of(name: str) -> str | None:
    """The entry of RANKS that `name` belongs to (the longest matching prefix), or None (envs)."""
    matches = [prefix for prefix in RANKS if name == prefix or name.startswith(prefix + ".")]
    return max(matches, key=len) if matches else None


def test_the_source_tree_is_read():
    assert len(MODULES) > 60 and "mcpsim.protocol.mux" in MODULES and GRAPH["mcpsim.protocol.mux"]
    assert "mcpsim.pool.pool" in GRAPH["mcpsim.server.fronts.sessions"]  # through the lazy face of mcpsim.pool


def test_no_import_cycle():
    assert cycles(GRAPH) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_point_down_the_layers():
    wrong = []
    for name, targets in GRAPH.items():
        layer = layer_of(name)
        for target in targets:
            if name.startswith("mcpsim.envs"):
                if not target.startswith(ENVS_MAY_IMPORT):
                    wrong.append(f"{name} -> {target} (envs may import only wire and errors)")
                continue
            if target.startswith("mcpsim.envs"):
                continue  # the env servers are leaves anyone may start (as processes or in-process)
            if layer is None:
                continue
            target_layer = layer_of(target)
            assert target_layer is not None, target
            if RANKS[target_layer] > RANKS[layer]:
                wrong.append(f"{name} -> {target} ({target_layer} is above {layer})")
            if target.startswith(FORBIDDEN.get(layer, ())):
                wrong.append(f"{name} -> {target} ({layer} may not import {target_layer})")
    assert wrong == []


def test_no_lazy_face_exports_a_name_that_is_also_one_of_its_modules():
    """Importing a submodule sets the package attribute of its name to the module, hiding an export so named."""
    clashes = [
        f"{package}.{name}" for package, names in FACES.items() for name in names if f"{package}.{name}" in MODULES
    ]
    assert clashes == []


IMPORT_EACH = """
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "mcpsim" or m.startswith("mcpsim.")]:
        del sys.modules[loaded]  # each module from a clean mcpsim state, so an import-time cycle shows
    try:
        importlib.import_module(name)
    except BaseException:
        failures[name] = traceback.format_exc(limit=6)
print(json.dumps(failures))
"""


@pytest.mark.timeout(300)
def test_every_module_imports_on_its_own():
    names = sorted(MODULES)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, json.dumps(names)], capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stderr[-3000:]
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert failures == {}, "\n".join(f"{name}:\n{trace}" for name, trace in failures.items())
