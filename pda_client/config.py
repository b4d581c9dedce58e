"""The device's configuration, from ``PDA_*`` environment variables (the only place the device reads them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class PdaConfig:
    home: Path = Path.home() / ".jingsu-pda"
    timeout_s: float = 30.0
    model: str = "jingsu-pda-cli"
    app_version: str = "0.1"
    fault: str | None = None  # fault injection for tests (see pda_client.engine)
    font_path: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PdaConfig:
        env = os.environ if environ is None else environ
        config = cls()
        if env.get("PDA_HOME"):
            config = replace(config, home=Path(env["PDA_HOME"]))
        if env.get("PDA_TIMEOUT_S"):
            config = replace(config, timeout_s=float(env["PDA_TIMEOUT_S"]))
        if env.get("PDA_FAULT"):
            config = replace(config, fault=env["PDA_FAULT"])
        if env.get("PDA_FONT_PATH"):
            config = replace(config, font_path=env["PDA_FONT_PATH"])
        return config

    def with_home(self, home: Path) -> PdaConfig:
        return replace(self, home=home)
