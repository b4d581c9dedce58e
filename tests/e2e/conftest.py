"""Fixtures of the end-to-end tier.

module_live_server  module  one LiveServer (gunicorn -w 2) on its own cloned database, shared by a module whose
                            tests do not interfere (each enrolls its own devices); stopped and dropped afterwards
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import DbAdmin, LiveServer


@pytest.fixture(scope="module")
def module_live_server(
    db_admin: DbAdmin, _template_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    name = db_admin.create("jingsu_m_", template=_template_name)
    server = LiveServer(db_admin.url_for(name), tmp_path_factory.mktemp("live"))
    try:
        yield server.start()
    finally:
        server.stop()
        db_admin.drop(name)
