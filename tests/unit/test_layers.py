"""The house: one layer per folder, each importing only the layers below it (README "Layout", DESIGN.md §2).

The rules are read from the source with ``ast``: ``import``, ``from … import`` (relative ones resolved),
``importlib.import_module("…")`` and ``__import__("…")`` with literal names, at any depth (inside functions too).
Each rule is also shown to fail on a planted violation in a copy of the tree (``test_a_planted_…``), so that a
checker that sees nothing cannot pass.
"""

from __future__ import annotations

import ast
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# what each top-level folder may import of ours (besides itself); README's layout table says the same
ALLOWED: dict[str, frozenset[str]] = {
    "protocol": frozenset(),
    "printing": frozenset({"protocol"}),
    "models": frozenset({"protocol"}),
    "adapters": frozenset({"protocol"}),
    "sync": frozenset({"models", "protocol"}),
    "services": frozenset({"models", "adapters", "printing", "protocol"}),
    "server": frozenset({"services", "sync", "models", "adapters", "printing", "protocol"}),
    "pda_client": frozenset({"protocol", "printing"}),
    "fleet": frozenset({"pda_client", "protocol", "printing"}),
    "sandboxes": frozenset({"protocol", "printing"}),
    "wsgi": frozenset({"server"}),
}
EVERYTHING = frozenset(ALLOWED) | {"tests", "bench"}
# dev tooling: may import anything (it runs the server, migrations and demo data for a developer)
DEV_TOOLING = ("sandboxes.devrun", "sandboxes.embedded_db")
# entry points kept where they were before the move (`python -m server.embedded_db`, `python -m server.sandboxes.X`):
# each only hands over to the module that moved
ENTRY_SHIMS = ("server.embedded_db", "server.devrun", "server.sandboxes")
FLASK_ALLOWED = ("server", "sandboxes")
HANDLER_FOLDERS = ("server",)
HANDLER_MAX_LINES = 15
HTTP_METHODS = frozenset({"get", "post", "put", "patch", "delete", "head"})
# handlers longer than HANDLER_MAX_LINES, each explained in README ("Handlers longer than 15 lines")
LONG_HANDLERS: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (the deepest one of ours that exists), or the name as written
    line: int
    path: Path


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if rel[0] not in EVERYTHING and path.stem != "wsgi":
            continue
        if any(part in {".venv", "var", "node_modules", "__pycache__"} for part in rel) or "versions" in rel:
            continue
        yield path


def _literal_module(call: ast.Call) -> str | None:
    """The literal name of ``importlib.import_module("x")`` / ``import_module("x")`` / ``__import__("x")``."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in {"import_module", "__import__"} or not call.args:
        return None
    first = call.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


@cache  # by text: the planted copies share all but a file or two with the tree
def _parse(text: str) -> ast.Module:
    return ast.parse(text)


def raw_imports(root: Path, path: Path) -> Iterator[tuple[str, int]]:
    """Every imported name of ``path`` as ``a.b.c`` (``from a.b import c`` gives ``a.b.c``), with its line."""
    module = module_name(root, path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(_parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            for alias in node.names:
                yield (f"{stem}.{alias.name}" if alias.name != "*" else stem), node.lineno
        elif isinstance(node, ast.Call):
            name = _literal_module(node)
            if name:
                yield name, node.lineno


def read_imports(root: Path) -> list[Import]:
    files = list(python_files(root))
    modules = {module_name(root, path) for path in files}
    found: list[Import] = []
    for path in files:
        source = module_name(root, path)
        for name, line in raw_imports(root, path):
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            found.append(Import(source, target or name, line, path))
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def _within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def layer_violations(root: Path) -> list[str]:
    """Imports of ours that a folder may not make (ALLOWED), and imports of ``sandboxes`` from outside dev tooling."""
    problems = []
    for imp in read_imports(root):
        source, target = _top(imp.source), _top(imp.target)
        if target not in EVERYTHING or target == source or source in {"tests", "bench"}:
            continue
        if _within(imp.source, DEV_TOOLING):
            continue
        if target == "sandboxes" and _within(imp.source, ENTRY_SHIMS):
            continue
        if target not in ALLOWED.get(source, frozenset()):
            problems.append(f"{imp.path.relative_to(root)}:{imp.line}: {imp.source} imports {imp.target}")
    return problems


def flask_violations(root: Path) -> list[str]:
    return [
        f"{imp.path.relative_to(root)}:{imp.line}: {imp.source} imports {imp.target}"
        for imp in read_imports(root)
        if _top(imp.target) in {"flask", "flask_smorest", "werkzeug"}
        and _top(imp.source) not in {*FLASK_ALLOWED, "tests", "bench"}
    ]


def import_cycles(root: Path) -> list[list[str]]:
    """Strongly connected components of more than one module in the graph of our imports (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for imp in read_imports(root):
        if _top(imp.target) in EVERYTHING and imp.target != imp.source:
            graph.setdefault(imp.source, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(start: str) -> None:  # iterative, so a deep graph cannot exhaust the recursion limit
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for succ in edges:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
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
                        cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _is_method_view(cls: ast.ClassDef) -> bool:
    return any(
        (base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")) == "MethodView"
        for base in cls.bases
    )


def _is_route(func: ast.FunctionDef) -> bool:
    for deco in func.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        if isinstance(target, ast.Attribute) and target.attr in {"route", *HTTP_METHODS}:
            return True
    return False


def _body_lines(func: ast.FunctionDef) -> int:
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring is the OpenAPI summary, not code
    if not body:
        return 0
    return (func.end_lineno or body[-1].lineno) - body[0].lineno + 1


def handlers(root: Path) -> Iterator[tuple[str, int]]:
    """Every HTTP handler of the server (``module:Class.method`` or ``module:function``) with its body's lines."""
    for path in python_files(root):
        module = module_name(root, path)
        if _top(module) not in HANDLER_FOLDERS or _within(module, ENTRY_SHIMS):
            continue
        for node in ast.walk(_parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and _is_method_view(node):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name in HTTP_METHODS:
                        yield f"{module}:{node.name}.{item.name}", _body_lines(item)
            elif isinstance(node, ast.FunctionDef) and _is_route(node):
                yield f"{module}:{node.name}", _body_lines(node)


def long_handlers(root: Path, allowed: frozenset[str] = LONG_HANDLERS) -> list[str]:
    return [
        f"{name}: {lines} lines" for name, lines in handlers(root) if lines > HANDLER_MAX_LINES and name not in allowed
    ]


# --- the rules, on our tree ---------------------------------------------------------------------------------------


def test_every_folder_imports_only_the_layers_below_it() -> None:
    assert layer_violations(ROOT) == []


def test_flask_is_imported_only_by_the_server_and_the_sandboxes() -> None:
    assert flask_violations(ROOT) == []


def test_no_module_imports_itself_back_through_others() -> None:
    assert import_cycles(ROOT) == []


def test_handlers_are_fifteen_lines_or_fewer_unless_readme_says_why() -> None:
    assert long_handlers(ROOT) == []
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [name for name in LONG_HANDLERS if name not in readme] == []


def test_the_readers_see_the_tree() -> None:
    """A checker that read nothing would pass every rule: it reads the handlers and the layers it guards."""
    found = read_imports(ROOT)
    tops = {_top(imp.source) for imp in found}
    assert {"protocol", "printing", "models", "sync", "server", "pda_client"} <= tops
    assert sum(1 for _ in handlers(ROOT)) > 50


# --- each rule fails on a planted violation -----------------------------------------------------------------------


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """A copy of our Python tree to plant violations in."""
    for path in python_files(ROOT):
        target = tmp_path / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return tmp_path


def plant(tree: Path, relative: str, code: str) -> None:
    path = tree / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if not (path.parent / "__init__.py").exists():
        (path.parent / "__init__.py").write_text("")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(text + "\n" + code + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("relative", "code", "expected"),
    [
        # the shared rules import nothing of ours
        ("protocol/qr.py", "from models import base", "protocol.qr imports models.base"),
        ("protocol/numbers.py", "def f():\n    import printing.slip", "protocol.numbers imports printing.slip"),
        # the device imports only the shared rules and printing
        ("pda_client/store.py", "from models.ledger import post", "pda_client.store imports models.ledger"),
        (
            "pda_client/cli.py",
            "import importlib\nimportlib.import_module('sync.changes')",
            "pda_client.cli imports sync.changes",
        ),
        # the domain imports no server, sync engine, services, adapters or printing
        ("models/ledger.py", "def f():\n    from server.config import Config", "models.ledger imports server.config"),
        ("models/notices.py", "from ..sync import changes", "models.notices imports sync.changes"),
        ("models/payments.py", "__import__('printing.pdf')", "models.payments imports printing.pdf"),
        # printing imports no models
        ("printing/pdf.py", "from models import crypto", "printing.pdf imports models.crypto"),
        # nothing imports the sandboxes but dev tooling and tests
        ("models/demo.py", "import sandboxes", "models.demo imports sandboxes"),
        ("server/cli.py", "def f():\n    from sandboxes import common", "server.cli imports sandboxes.common"),
    ],
)
def test_a_planted_layer_violation_is_found(tree: Path, relative: str, code: str, expected: str) -> None:
    assert not [problem for problem in layer_violations(tree) if problem.endswith(expected)]
    plant(tree, relative, code)
    assert [problem for problem in layer_violations(tree) if problem.endswith(expected)], layer_violations(tree)


def test_a_planted_flask_import_outside_the_server_is_found(tree: Path) -> None:
    before = flask_violations(tree)
    plant(tree, "services/mail.py", "def f():\n    from flask import current_app")
    plant(tree, "models/base.py", "import flask")
    added = [p.rpartition(": ")[2] for p in flask_violations(tree) if p not in before]
    assert added == ["models.base imports flask", "services.mail imports flask.current_app"]


def test_a_planted_cycle_is_found_even_behind_a_function_level_import(tree: Path) -> None:
    assert not any({"models.ledger", "models.payments"} <= set(cycle) for cycle in import_cycles(tree))
    plant(tree, "models/ledger.py", "def f():\n    from models import payments")
    plant(tree, "models/payments.py", "from models import ledger")
    assert any({"models.ledger", "models.payments"} <= set(cycle) for cycle in import_cycles(tree))


def test_a_planted_long_handler_is_found(tree: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(HANDLER_MAX_LINES)) + "\n        return x0"
    plant(
        tree,
        "server/api/planted.py",
        f"from flask.views import MethodView\n\nclass Planted(MethodView):\n    def get(self):\n"
        f'        """A summary."""\n{body}\n',
    )
    plant(tree, "server/api/planted_route.py", f"@blp.route('/x')\ndef planted():\n{body}\n")
    found = {line.partition(":")[0] + ":" + line.split(":")[1] for line in long_handlers(tree)}
    assert {"server.api.planted:Planted.get", "server.api.planted_route:planted"} <= found
    assert re.search(r"Planted\.get: 16 lines", "\n".join(long_handlers(tree)))
