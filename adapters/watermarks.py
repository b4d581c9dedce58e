"""The number allocator's high-water marks, kept outside the database so that they survive a restore of it.

One small JSON file (``var/number-watermarks.json`` by default; in production a path on storage that is not backed
up with the database). Each key ``<jurisdiction>:<year2>`` holds the next serial never handed out. It is raised
after the allocating transaction commits; a crash between the two leaves it behind, never ahead, so it can never
make a healthy database look restored.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path


class FileWatermarks:
    """``models.devices.Watermarks`` on a local file, safe across processes (flock) and crashes (fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {str(k): int(v) for k, v in data.items()}

    def get(self, jurisdiction: str, year2: str) -> int:
        return self._read().get(f"{jurisdiction}:{year2}", 0)

    def raise_to(self, jurisdiction: str, year2: str, next_serial: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            marks = self._read()
            key = f"{jurisdiction}:{year2}"
            if marks.get(key, 0) >= next_serial:
                return
            marks[key] = next_serial
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w") as out:
                json.dump(marks, out, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
