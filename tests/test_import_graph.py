"""The import graph of the product packages, read with `ast` (nothing is imported to build it):
no cycles between modules, every arrow between packages allowed by DESIGN.md's table, the bot's
install free of torch and the trainer (also at run time, in a fresh interpreter), no module over
about 400 lines, and a docstring at the top of every module saying what it owns.

`python -m tests.test_import_graph` prints the package edges the test checks.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("catalog", "media", "models", "scraper", "trainer", "bot", "sandbox", "namae")

# DESIGN.md, "Packages": what each package may import of ours. A dotted name allows one module.
ALLOWED: dict[str, frozenset[str]] = {
    "catalog": frozenset(),
    "media": frozenset({"catalog.settings"}),
    "models": frozenset({"catalog", "media"}),
    "scraper": frozenset({"catalog", "media"}),
    "trainer": frozenset({"catalog", "media", "models"}),
    "bot": frozenset({"catalog", "media", "models"}),
    "sandbox": frozenset(),
    "namae": frozenset({"catalog", "media", "models", "scraper", "trainer", "bot", "sandbox"}),
}
# Third-party packages the bot's small install does not have.
NOT_IN_THE_BOT = ("torch", "torchvision", "onnx", "sklearn", "matplotlib", "asyncpraw", "trainer", "scraper")


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """Imports under `if TYPE_CHECKING:` exist for annotations only; they never run."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in node.body for child in ast.walk(child))
    return skipped


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every module name `module` imports (absolute), at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield submodule if submodule in modules() else source


def _ours(name: str) -> str | None:
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


@cache
def graph() -> dict[str, frozenset[str]]:
    """Module -> the modules of ours it imports (anywhere in the file)."""
    edges: dict[str, frozenset[str]] = {}
    for module, path in modules().items():
        targets = {_ours(name) for name in imported_names(module, path)}
        edges[module] = frozenset(t for t in targets if t is not None and t != module)
    return edges


def package_edges() -> dict[str, set[str]]:
    """Package -> what it imports of other packages (a package, or `catalog.settings` style modules
    where the rule is about single modules)."""
    out: dict[str, set[str]] = {}
    for module, targets in graph().items():
        package = module.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if other == package:
                continue
            module_rule = any("." in allowed for allowed in ALLOWED[package])
            out.setdefault(package, set()).add(target if module_rule else other)
    return out


def cycles(edges: Mapping[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
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


def test_the_graph_sees_the_packages() -> None:
    # A broken reader would pass every rule below with an empty graph.
    assert len(modules()) > 80
    assert "models" in {t.split(".")[0] for t in graph()["bot.inference"]}
    assert "catalog.settings" in graph()["media.decode"]


def test_no_cycles_between_modules() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = dict(graph())
    edges["catalog.errors"] = frozenset({"catalog.fsutil"})
    edges["catalog.fsutil"] = frozenset({"catalog.errors"})
    edges["media.boxes"] = frozenset({"media.faces"})
    edges["media.faces"] = frozenset({"media.decode"})
    edges["media.decode"] = frozenset({"media.boxes"})
    assert ["catalog.errors", "catalog.fsutil"] in cycles(edges)
    assert ["media.boxes", "media.decode", "media.faces"] in cycles(edges)


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_design_allows(package: str) -> None:
    allowed = ALLOWED[package]
    wrong = []
    for module, targets in graph().items():
        if module.split(".")[0] != package:
            continue
        for target in targets:
            other = target.split(".")[0]
            if other == package or other in allowed or target in allowed:
                continue
            wrong.append(f"{module} -> {target}")
    assert wrong == [], f"{package} may import only {sorted(allowed) or 'nothing of ours'}"


def _reachable_from(prefix: str) -> set[str]:
    seen = {m for m in graph() if m == prefix or m.startswith(prefix + ".")}
    todo = list(seen)
    while todo:
        for target in graph()[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_bot_never_imports_torch_or_the_trainer() -> None:
    """Statically, through every module the bot can reach, imports inside functions included."""
    reachable = _reachable_from("bot")
    assert not {m for m in reachable if m.split(".")[0] in ("trainer", "scraper", "sandbox", "namae")}
    offenders = []
    for module in sorted(reachable):
        for name in imported_names(module, modules()[module]):
            if name.split(".")[0] in NOT_IN_THE_BOT:
                offenders.append(f"{module} imports {name}")
    assert offenders == []


def test_importing_the_bot_loads_no_torch() -> None:
    """At run time too: a fresh interpreter that imports the bot and its cogs has no torch."""
    code = (
        "import sys, bot.app, bot.runner\n"
        "import bot.cogs.classify, bot.cogs.corrections, bot.cogs.moderation, bot.cogs.privacy\n"
        "import bot.cogs.settings\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({NOT_IN_THE_BOT!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


def test_only_namae_drives_the_sandbox() -> None:
    users = {
        module.split(".")[0]
        for module, targets in graph().items()
        if any(t.split(".")[0] == "sandbox" for t in targets)
    }
    assert users <= {"namae", "sandbox"}


@pytest.mark.parametrize("module", sorted(modules()))
def test_every_module_says_what_it_owns(module: str) -> None:
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring and len(docstring.split()) >= 3, f"{module} opens without a docstring"


# Issue 13: one job per module, about 400 lines at most. Migrations are generated history, not code
# anyone splits.
MAX_MODULE_LINES = 400


def test_no_module_grows_past_the_size_of_one_job() -> None:
    too_long = {
        module: lines
        for module, path in modules().items()
        if ".migrations." not in module
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"split these along their sections (over {MAX_MODULE_LINES} lines): {too_long}"


if __name__ == "__main__":
    for package, targets in sorted(package_edges().items()):
        print(f"{package} -> {', '.join(sorted(targets))}")
