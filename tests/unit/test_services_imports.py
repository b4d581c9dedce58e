"""``services/`` runs without Flask: its modules import no ``flask`` and nothing of ``server`` but the outbound
adapters (``server.adapters``, until they move to ``adapters/``), at any depth, functions included."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
ALLOWED = ("models", "printing", "protocol", "services", "server.adapters", "adapters")


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def ours(name: str) -> bool:
    return name.split(".")[0] in {"models", "printing", "protocol", "services", "server", "sync", "pda_client",
                                  "adapters", "sandboxes", "tests", "bench"}  # fmt: skip


def test_services_import_only_the_layers_below_them_and_no_flask() -> None:
    found = {
        f"{path.name}: {name}"
        for path in sorted(SERVICES.glob("*.py"))
        for name in imported(path)
        if name.split(".")[0] == "flask"
        or (ours(name) and not any(name == a or name.startswith(f"{a}.") for a in ALLOWED))
    }
    assert SERVICES.is_dir() and not found, found
