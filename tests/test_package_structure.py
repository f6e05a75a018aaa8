"""The shape of the package: layers that import downwards only, no import circles, rooms of modest size, and each
method's name spelled in its own modules only."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

from ebmctl.recipes import RECIPES

PACKAGE = Path(__file__).resolve().parents[1] / "ebmctl"
# Each package's layer: a module imports from its own package and lower layers only.
LAYERS = {
    "ebmctl": 0, "errors": 0, "console": 0, "checkpoints": 0, "run_lock": 0, "runs": 0, "samples_file": 0,
    "data": 1, "nets": 1, "losses": 1, "specs": 1, "released": 1,
    "samplers": 2,
    "methods": 3, "evaluation": 3,
    "recipes": 4,
    "services": 5,
    "cli": 6,
    "__main__": 7,
}
MAX_LINES = 420
# Where a method's name may be a string literal besides its own modules: names that are something else too.
NOT_A_METHOD = {
    ("evaluation/probe.py", "cebm"), ("evaluation/probe.py", "ebclr"),  # the probe protocols, named after papers
    ("services/probe.py", "cebm"), ("services/probe.py", "ebclr"),  # ... and offered as --protocol choices
    ("specs/nets.py", "sngan"), ("recipes/blocks.py", "sngan"),  # the SN-GAN generator architecture
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Every ebmctl module each module imports, at any depth of its code."""
    edges: dict[str, set[str]] = collections.defaultdict(set)
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ebmctl"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    edges[name].add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                edges[name] |= {a.name for a in node.names if a.name.startswith("ebmctl")}
    return edges


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_package_has_a_layer():
    assert {_package(m) for m in _modules()} == set(LAYERS)


def test_imports_go_down_the_layers():
    upward = [f"{a} imports {b}" for a, targets in _imports(_modules()).items() for b in targets
              if LAYERS[_package(b)] > LAYERS[_package(a)]]
    assert upward == []


def test_no_import_circles():
    modules = _modules()
    edges = _imports(modules)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            # a package's __init__ re-exporting its own modules is not a circle through them
            if target not in modules or target.startswith(f"{module}."):
                continue
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_no_room_is_large():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {room: n for room, n in sizes.items() if n > MAX_LINES} == {}


def test_a_method_name_is_spelled_in_its_own_modules_only():
    names = set(RECIPES)
    stray = []
    for path in PACKAGE.rglob("*.py"):
        room = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef) and node.body
                      and isinstance(node.body[0], ast.Expr)}
        protocols = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                     and any(isinstance(t, ast.Name) and t.id == "probe_protocol" for t in node.targets)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and node.value in names) or id(node) in docstrings | protocols:
                continue
            if path.stem != node.value and (room, node.value) not in NOT_A_METHOD:
                stray.append(f"{room}:{node.lineno} {node.value!r}")
    assert stray == []
