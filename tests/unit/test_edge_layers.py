"""The outbound edges keep to their layers: ``adapters`` imports nothing of ours but ``protocol``; the sandboxes
(gateway, registry, e-approval, their shared module and the launcher) only ``protocol``, ``printing`` and
``sandboxes``, so a mistake cannot pass on both sides of the wire. Imports are read with ``ast`` at any depth
(inside functions too), with ``importlib.import_module`` / ``__import__`` of literal names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"protocol", "printing", "models", "adapters", "services", "sync", "server", "sandboxes", "pda_client"}
# sandboxes.devrun and sandboxes.embedded_db are dev tooling: they may import anything
DEV_TOOLING = frozenset({"devrun.py", "embedded_db.py"})


def imported(path: Path) -> set[str]:
    """The top-level packages of ours that ``path`` imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module"))
            )
        ):
            names.add(node.args[0].value)
    return {name.split(".")[0] for name in names} & OURS


def violations(folder: Path, allowed: set[str], skip: frozenset[str] = frozenset()) -> list[str]:
    return sorted(
        f"{path.relative_to(folder.parent)} imports {bad}"
        for path in folder.rglob("*.py")
        if path.name not in skip
        for bad in imported(path) - allowed - {folder.name}
    )


def test_adapters_import_only_protocol() -> None:
    assert violations(ROOT / "adapters", {"protocol"}) == []


def test_sandboxes_import_only_protocol_printing_and_themselves() -> None:
    assert violations(ROOT / "sandboxes", {"protocol", "printing"}, DEV_TOOLING) == []


@pytest.mark.parametrize(
    "source",
    [
        "from server.config import Config\n",
        "def f():\n    import models.ledger\n",
        "import importlib\nimportlib.import_module('adapters.gateway')\n",
        "__import__('sync.reconcile')\n",
    ],
)
def test_a_planted_violation_is_found(tmp_path: Path, source: str) -> None:
    folder = tmp_path / "sandboxes"
    folder.mkdir()
    (folder / "planted.py").write_text(source, encoding="utf-8")
    assert len(violations(folder, {"protocol", "printing"})) == 1
