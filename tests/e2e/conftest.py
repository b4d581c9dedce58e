"""Fixtures of the end-to-end tier.

module_live_server  module  one LiveServer (gunicorn -w 2) on its own cloned database, shared by a module whose
                            tests do not interfere (each enrolls its own devices); stopped and dropped afterwards
gateway             function  the payment gateway sandbox on a free port: (base URL, its signing key)
server              function  a LiveServer paying through that gateway (tests.support.story)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import DbAdmin, LiveServer
from tests.support.story import gateway, server  # noqa: F401  (fixtures: the gateway sandbox, a server using it)


@pytest.fixture(scope="module")
def module_live_server(
    db_admin: DbAdmin, _template_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    name = db_admin.create("jingsu_m_", template=_template_name)
    live = LiveServer(db_admin.url_for(name), tmp_path_factory.mktemp("live"))
    try:
        yield live.start()
    finally:
        live.stop()
        db_admin.drop(name)
