"""The bot's shape, read from its source: no import cycles (TYPE_CHECKING imports included), a
docstring on every module, and one place that sends (`bot.outgoing`)."""

from __future__ import annotations

import ast
from pathlib import Path

import bot

ROOT = Path(bot.__file__).parent
# Calls that put something on Discord; only bot/outgoing.py may make them.
SENDING = {"send_message", "send", "reply", "edit_message", "edit"}


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def _imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_in_the_bot() -> None:
    modules = _modules()
    graph = {name: _imports(name, tree, set(modules)) for name, tree in modules.items()}
    # `from bot import outgoing` names the package too; its __init__ imports nothing.
    graph = {name: targets - {"bot", "bot.cogs"} for name, targets in graph.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
    assert "bot.views" not in graph["bot.app"], "the bot must not import its views (views import the bot)"


def test_every_module_says_what_it_owns() -> None:
    for name, tree in _modules().items():
        if name.endswith("__init__") or not tree.body:
            continue
        assert ast.get_docstring(tree), f"{name} has no module docstring"


def test_only_outgoing_sends() -> None:
    offenders = []
    for name, tree in _modules().items():
        if name == "bot.outgoing":
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SENDING
            ):
                owner = ast.unparse(node.func.value)
                if owner != "outgoing":
                    offenders.append(f"{name}:{node.lineno} {ast.unparse(node.func)}")
    assert offenders == [], "send through bot.outgoing instead: " + ", ".join(offenders)


def test_cogs_are_found_by_type_not_by_name() -> None:
    """Views and cogs reach a cog through `NamaeBot.cog_of_type` (typed), never `get_cog("Name")`,
    which returns `Any` and breaks silently when a cog is renamed."""
    offenders = [
        f"{name}:{node.lineno}"
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get_cog"
    ]
    assert offenders == [], "use bot.cog_of_type(SomeBase) instead: " + ", ".join(offenders)
