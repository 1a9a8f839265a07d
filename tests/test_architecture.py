"""The layers of docs/architecture.md hold: the pure core imports no service, services never
import the write flow or an adapter, and no two modules import each other (lazy imports too)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "monitor"
PURE = {
    "monitor.sla.timer",
    "monitor.sla.policy",
    "monitor.sla.vocab",
    "monitor.calendars.calendar",
    "monitor.scoring.rules",
}
# Adapters and the flow sit on top: HTTP, the CLI, jobs, importers, exporters, the demo.
TOP = (
    "router",
    "jobs",
    "importer",
    "exporters",
    "app",
    "deps",
    "cli",
    "flow",
    "data",
    "runner",
    "__main__",
)

# What gathers every table or schema, and the adapters' own packages.
AGGREGATES = ("monitor.models", "monitor.schemas_export", "monitor.api", "monitor.web")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Every module's imports of other monitor modules, wherever in the file they stand."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = module_name(path)
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("monitor"):
                    found.add(node.module)
                    found |= {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("monitor")}
        graph[name] = found
    known = set(graph)
    return {name: {m for m in found if m in known and m != name} for name, found in graph.items()}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_two_modules_import_each_other() -> None:
    assert cycle(imports()) is None


def test_the_pure_core_imports_no_database_web_or_service_code() -> None:
    graph = imports()
    for name in PURE:
        others = {m for m in graph[name] if not m.startswith("monitor.core")}
        assert others <= PURE, f"{name} imports {sorted(others - PURE)}"


def test_services_never_import_the_write_flow_or_an_adapter() -> None:
    for name, found in imports().items():
        if name.rsplit(".", 1)[-1] in TOP or name.startswith(AGGREGATES):
            continue
        upward = sorted(
            m
            for m in found
            if m.rsplit(".", 1)[-1] in TOP or (".api." in m and m != "monitor.api.models")
        )
        assert not upward, f"{name} imports {upward}"
