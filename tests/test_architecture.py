"""The package structure stays true: no import cycles, one import direction.

The layers (docs/architecture.md, "Layers"), lowest first; a module may
import its own package and any package of a lower layer, nothing else:

    0  monitor (top-level value types: results, outcome, errors, catalog, logs)
    1  config, http, simulator
    2  gateway, store (with migrations), spend, exporter
    3  probes, statuspage
    4  daemon
    5  cli

Every import counts, also one inside a function or under ``TYPE_CHECKING``:
a deferred import hides a cycle from Python, not from the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "monitor"

# group -> layer; a module's group is its first package below monitor
# ("core" for the top-level modules). Sibling groups of one layer may not
# import each other: gateway, store, spend and exporter stay independent.
LAYERS: dict[str, int] = {
    "core": 0,
    "config": 1,
    "http": 1,
    "simulator": 1,
    "gateway": 2,
    "store": 2,
    "spend": 2,
    "exporter": 2,
    "probes": 3,
    "statuspage": 3,
    "daemon": 4,
    "cli": 5,
}
SAME_GROUP = {"migrations": "store"}  # Alembic's scripts belong with the tables


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports (every import statement)."""
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    top = root.name
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        package = name if is_pkg else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = alias.name
                    while target and target not in files:
                        target = target.rpartition(".")[0]
                    if target.split(".")[0] == top:
                        deps.add(target)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != top:
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    deps.add(sub if sub in files else source)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def group_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and not (PACKAGE / parts[1]).is_dir()):
        return "core"
    return SAME_GROUP.get(parts[1], parts[1])


def layer_violations(graph: dict[str, set[str]], group=group_of) -> list[str]:
    """``src -> dst`` for every import of another group that is not lower."""
    bad = []
    for src, deps in sorted(graph.items()):
        for dst in sorted(deps):
            gs, gd = group(src), group(dst)
            if gs != gd and LAYERS[gd] >= LAYERS[gs]:
                bad.append(f"{src} ({gs}, layer {LAYERS[gs]}) -> {dst} ({gd}, layer {LAYERS[gd]})")
    return bad


def test_every_package_has_a_layer() -> None:
    groups = {group_of(m) for m in import_graph(PACKAGE)}
    assert groups <= set(LAYERS), f"place these packages in LAYERS: {groups - set(LAYERS)}"


def test_no_import_cycle_inside_monitor() -> None:
    assert cycles(import_graph(PACKAGE)) == []


def test_no_layer_imports_a_higher_or_sibling_layer() -> None:
    assert layer_violations(import_graph(PACKAGE)) == []


def test_architecture_doc_names_every_package() -> None:
    doc = (REPO / "docs" / "architecture.md").read_text()
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    missing = [p for p in packages if f"monitor/{p}/" not in doc]
    assert missing == []


# The checkers themselves, on a throwaway package: they must see what they guard.


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_checker_finds_a_cycle_through_a_deferred_import(tmp_path: Path) -> None:
    pkg = _write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg import b\n",
            "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n",
            "c.py": "def f():\n    from .a import x\n",
            "d.py": "import pkg.a\n",
        },
    )
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.b", "pkg.c"]]


@pytest.mark.parametrize(
    ("src_group", "dst_group", "allowed"),
    [
        ("daemon", "probes", True),
        ("probes", "daemon", False),
        ("store", "spend", False),
        ("store", "config", True),
        ("core", "http", False),
        ("store", "store", True),
    ],
)
def test_the_checker_finds_an_upward_import(src_group: str, dst_group: str, allowed: bool) -> None:
    graph = {"src": {"dst"}, "dst": set()}
    groups = {"src": src_group, "dst": dst_group}
    assert (layer_violations(graph, groups.__getitem__) == []) is allowed
