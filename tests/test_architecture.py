"""The shape of the package: public names, and which module may import which."""

from __future__ import annotations

import ast
from pathlib import Path

import nbclaude

PACKAGE = Path(nbclaude.__file__).parent


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """The package modules and the outside packages a module imports, anywhere in it.

    Imports inside functions and under ``TYPE_CHECKING`` count too: a lazy import is
    still a dependency.
    """
    inside: set[str] = set()
    outside: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                inside.add(node.module.split(".")[0])
            else:
                inside.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            outside.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
    return inside, outside


MODULES = {path.stem: imports_of(path) for path in sorted(PACKAGE.glob("*.py"))}


def test_public_names_are_pinned_and_each_resolves() -> None:
    assert nbclaude.__all__ == [
        "ClaudeError",
        "ClaudeMagics",
        "Replies",
        "Reply",
        "RequestError",
        "Run",
        "RunLog",
        "Session",
        "Settings",
        "UsageSummary",
        "__version__",
        "ask",
        "batch",
        "load_ipython_extension",
        "runs",
        "unload_ipython_extension",
    ]
    for name in nbclaude.__all__:
        assert getattr(nbclaude, name) is not None, name


def test_every_module_names_what_it_exports_and_it_exists() -> None:
    for name in MODULES:
        if name == "__init__":
            continue
        module = __import__(f"nbclaude.{name}", fromlist=["__all__"])
        for public in module.__all__:
            assert hasattr(module, public), f"nbclaude.{name}.{public}"


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = {name: inside - {"__init__"} for name, (inside, _) in MODULES.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for dependency in sorted(graph[name]):
            visit(dependency)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        if name != "__init__":
            visit(name)


def test_only_the_magic_touches_ipython_and_only_the_widget_view_ipywidgets() -> None:
    ipython = sorted(name for name, (_, outside) in MODULES.items() if "IPython" in outside)
    widgets = sorted(name for name, (_, outside) in MODULES.items() if "ipywidgets" in outside)
    # The widget view shows itself through IPython.display, the display system, and
    # never reaches the shell; the magic is the one module that does.
    assert ipython == ["magic", "widget"]
    assert widgets == ["widget"]
    widget_source = (PACKAGE / "widget.py").read_text(encoding="utf-8")
    assert "get_ipython" not in widget_source
    assert "from IPython.display import" in widget_source
