"""Run the Alembic migrations of ``models/migrations`` against a database URL.

``python -m models.migrate`` upgrades the database of the current configuration to head.
"""

from __future__ import annotations

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


def main() -> None:
    from server.config import Config

    config = Config.from_env()
    if not config.database_url:
        raise SystemExit("DATABASE_URL is not set and no embedded database is running (make run starts one)")
    upgrade(config.database_url)
    print("migrated to head")


if __name__ == "__main__":
    main()
