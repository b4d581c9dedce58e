"""Run the Alembic migrations of ``models/migrations`` against a database URL.

``python -m models.migrate [URL]`` upgrades the database at ``URL`` to head; without one it takes ``DATABASE_URL``,
then the URL the embedded database wrote to ``<JINGSU_VAR_DIR or var>/database_url``. It reads those itself rather
than through ``server.config.Config``, because ``models`` imports nothing of ours above ``protocol`` (the same two
places ``Config.from_env`` looks). ``flask --app wsgi migrate`` does the same through the app's configuration.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate ``database_url`` to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)


def database_url(argv: Sequence[str]) -> str:
    """The URL ``main`` migrates: the first argument, else ``DATABASE_URL``, else the embedded database's file;
    empty when none is there."""
    if argv:
        return argv[0]
    # read here, not through server.config.Config: models imports nothing of ours above protocol
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    var_dir = Path(os.environ.get("JINGSU_VAR_DIR") or MIGRATIONS.parent.parent / "var")
    url_file = var_dir / "database_url"
    return url_file.read_text().strip() if url_file.exists() else ""


def main(argv: Sequence[str] | None = None) -> None:
    url = database_url(sys.argv[1:] if argv is None else argv)
    if not url:
        raise SystemExit("DATABASE_URL is not set and no embedded database is running (make run starts one)")
    upgrade(url)
    print("migrated to head")


if __name__ == "__main__":
    main()
