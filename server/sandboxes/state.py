"""A sandbox's state as one JSON file, written atomically after every change, so that it survives a restart."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_VERSION = 1


def save_state(path: Path | None, key: str, records: list[dict[str, Any]]) -> None:
    """Write ``{"version": …, key: records}`` to ``path`` atomically (a temporary file, fsync, rename); nothing when
    ``path`` is ``None`` (a sandbox kept in memory)."""
    if path is None:
        return
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump({"version": STATE_VERSION, key: records}, out, ensure_ascii=False, indent=1)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def load_state(path: Path, key: str) -> list[dict[str, Any]]:
    """The records ``save_state`` wrote under ``key``; ``ValueError`` naming the file when it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {data.get('version')!r}")
        records = data[key]
        if not isinstance(records, list):
            raise ValueError(f"{key} is not a list")
        return records
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"cannot read the state file {path}: {exc}") from exc
