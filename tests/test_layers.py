"""The package's layers point one way and its imports have no cycle (read from the source, not run).

Layers, lowest first: core (shared contracts and helpers), data, models, evaluation/serving, tasks, cli.
A module may import its own layer or a lower one. ``python tests/test_layers.py`` prints the graph.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "spark_recs"

#: Module prefix -> layer; the longest matching prefix wins.
LAYERS = {
    "spark_recs": 0,
    "spark_recs.core": 0,
    "spark_recs.runtime": 0,
    "spark_recs.progress": 0,
    "spark_recs.data": 1,
    "spark_recs.models": 2,
    "spark_recs.rl": 2,
    "spark_recs.rl.gym_agent": 3,  # scores PPO against baselines on the Gym (an evaluation)
    "spark_recs.rl.holdout": 3,
    "spark_recs.evaluation": 3,
    "spark_recs.serving": 3,
    "spark_recs.batch": 3,
    "spark_recs.transport": 3,
    "spark_recs.tracking": 3,
    "spark_recs.mlflow_pyfunc": 3,
    "spark_recs.tuning": 3,
    "spark_recs.tasks": 4,
    "spark_recs.config": 4,
    "spark_recs.gru4rec": 4,
    "spark_recs.cli": 5,
    "spark_recs.bundle": 5,
}
NAMES = ["core", "data", "models", "evaluation/serving", "tasks", "cli"]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _known(name: str, known: dict) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str, path: Path, known: dict) -> set[str]:
    """The package modules ``module`` imports anywhere in its source (functions included)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {_known(a.name, known) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found |= {_known(f"{base}.{a.name}", known) for a in node.names}
    return found - {None, module}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {module: imports(module, path, known) for module, path in known.items()}


def layer(module: str) -> int:
    return LAYERS[max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, targets in edges.items() for b in targets if layer(b) > layer(a))


def test_no_import_cycle():
    assert cycles(graph()) == []


def test_no_module_imports_a_higher_layer():
    found = [f"{a} ({NAMES[layer(a)]}) -> {b} ({NAMES[layer(b)]})" for a, b in upward(graph())]
    assert found == []


def test_the_checker_sees_cycles_and_upward_imports():
    edges = {"spark_recs.data.a": {"spark_recs.cli"}, "spark_recs.cli": {"spark_recs.data.a"}}
    assert cycles(edges) == [["spark_recs.cli", "spark_recs.data.a"]]
    assert upward(edges) == [("spark_recs.data.a", "spark_recs.cli")]


if __name__ == "__main__":
    edges = graph()
    print(f"{len(edges)} modules, {sum(map(len, edges.values()))} imports")
    print(f"cycles: {cycles(edges)}")
    print(f"upward imports ({len(upward(edges))}):")
    for a, b in upward(edges):
        print(f"  {a} -> {b}")
    if "-v" in sys.argv:
        for module in sorted(edges):
            print(module, "->", sorted(edges[module]))
