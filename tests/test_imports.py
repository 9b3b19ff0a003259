"""The package's import graph has no circle, counting imports inside functions too (a deferred import only hides
a circle: the two modules still cannot be understood, tested or moved apart)."""

from __future__ import annotations

import ast
from pathlib import Path

import llmrec

PACKAGE = Path(llmrec.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_nodes(tree: ast.AST):
    """Every node but those under `if TYPE_CHECKING:` (annotations only: never imported when the code runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    """{module: llmrec modules it imports anywhere in its body}; `from llmrec.a import b` counts as importing
    llmrec.a.b when that is a module, else llmrec.a."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in files
                               else node.module for alias in node.names)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_circles_finds_a_deferred_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "llmrec.llm.train" in graph["llmrec.eval.audit_run"]  # imported only inside a function
    assert graph["llmrec.cli"], "cli imports its verbs inside functions; the walk must see them"


def test_llmrec_has_no_import_circle():
    graph = import_graph()
    found = circles(graph)
    detail = "; ".join(
        f"{' ↔ '.join(c)} (" + ", ".join(f"{a} → {b}" for a in c for b in sorted(graph[a] & set(c))) + ")"
        for c in found)
    assert not found, f"import circles: {detail}"


BACKBONES = ("llmrec.llm.backbone", "llmrec.classic.mf", "llmrec.classic.lightgcn")


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others (not `start` itself, unless in a circle)."""
    seen, stack = set(), [start]
    while stack:
        for target in graph[stack.pop()] - seen:
            seen.add(target)
            stack.append(target)
    return seen


def ensemble_imports(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """{backbone: the llmrec.ensemble modules it reaches}, for the backbones that reach any."""
    found = {}
    for backbone in BACKBONES:
        ensembles = sorted(m for m in reachable(graph, backbone) if m == "llmrec.ensemble"
                           or m.startswith("llmrec.ensemble."))
        if ensembles:
            found[backbone] = ensembles
    return found


def test_reachable_follows_imports_transitively():
    graph = {"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a"}}
    assert reachable(graph, "a") == {"b", "c"} and reachable(graph, "c") == set()
    broken = {**{m: set() for m in BACKBONES}, "llmrec.llm.backbone": {"llmrec.store"},
              "llmrec.store": {"llmrec.ensemble.llm"}, "llmrec.ensemble.llm": set()}
    assert ensemble_imports(broken) == {"llmrec.llm.backbone": ["llmrec.ensemble.llm"]}


def test_no_backbone_imports_the_ensembles():
    """Ensembles are built from single models (`llmrec.ensemble`), never the other way round: no backbone, nor any
    llmrec module it imports, imports the package."""
    graph = import_graph()
    assert set(BACKBONES) <= set(graph)
    found = ensemble_imports(graph)
    assert not found, "backbones importing llmrec.ensemble: " + "; ".join(
        f"{b} → {', '.join(m)}" for b, m in found.items())
