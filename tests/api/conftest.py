"""Fixtures for API tests: the real app, in process, inside a transaction that is rolled back after each test.

connection  function  (tests/conftest.py) a Connection in an outer transaction rolled back after the test
app         function  create_app(test_config, bind=connection): each request's unit of work commits to a
                      savepoint (Runtime uses join_transaction_mode="create_savepoint" for a Connection bind)
client      function  httpx.Client over WSGITransport on ``app``; base_url http://localhost, so payment QR URLs
                      printed with the test pay_base_url (http://localhost) resolve against it
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from flask import Flask
from sqlalchemy import Connection

from server import create_app
from server.config import Config


@pytest.fixture
def app(connection: Connection, test_config: Config) -> Flask:
    return create_app(test_config, bind=connection)


@pytest.fixture
def client(app: Flask) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://localhost") as http:
        yield http
