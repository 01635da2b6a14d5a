"""No import cycle among siyu's modules: the module graph is a DAG. Imports inside functions count
(a lazy import that dodges a cycle is still a cycle); imports under TYPE_CHECKING do not."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import siyu

ROOT = Path(siyu.__file__).parent


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) and id(n) not in typing_only]


def import_graph() -> nx.DiGraph:
    modules = {_module(p): p for p in ROOT.rglob("*.py") if "migrations" not in p.parts}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            targets = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [f"{node.module}.{a.name}" for a in node.names] + [node.module or ""]
            )
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("siyu.") and not name.startswith(target + "."):
                    graph.add_edge(name, target)
    return graph


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert graph.number_of_nodes() > 100
    cycles = [c for c in nx.simple_cycles(graph) if len(c) > 1]
    assert sorted(" → ".join([*c, c[0]]) for c in cycles)[:10] == []
