"""The Flask app: ``create_app(config)`` wires configuration, the database, the API and the pages.

No work at import: ``wsgi.py`` is the only place that builds an app.
"""

from __future__ import annotations

import logging
import uuid

from flask import Flask, Response, g
from flask_smorest import Api
from sqlalchemy import Connection, Engine

from models.base import Clock
from server.config import Config
from server.runtime import Runtime, close_request_session


def create_app(
    config: Config | None = None, *, bind: Engine | Connection | None = None, clock: Clock | None = None
) -> Flask:
    """Build the app. ``bind`` (tests only) runs every request on a given engine or connection."""
    config = config or Config.from_env()
    app = Flask(__name__)
    app.config.update(
        API_TITLE="Jingsu 세외수입 징수 API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        # served from the swagger_ui_bundle wheel: the docs work on a closed network too
        OPENAPI_SWAGGER_UI_URL="/docs/static/",
        MAX_CONTENT_LENGTH=8 * 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions["jingsu"] = Runtime.build(config, bind=bind, clock=clock)

    api = Api(app)
    from server.api import attachments, backoffice, sync_api

    api.register_blueprint(backoffice.blp)
    api.register_blueprint(sync_api.blp)
    from server.api import review

    api.register_blueprint(review.blp)
    api.register_blueprint(attachments.blp)
    from server import payments_web

    api.register_blueprint(payments_web.api)
    from server.api import arrears, fines, numbers, outbox, print_runs, suspense, treasury

    api.register_blueprint(numbers.blp)
    api.register_blueprint(arrears.blp)
    api.register_blueprint(fines.blp)
    api.register_blueprint(suspense.blp)
    api.register_blueprint(print_runs.blp)
    api.register_blueprint(treasury.blp)
    api.register_blueprint(outbox.blp)
    app.register_blueprint(payments_web.bp)
    from server import citizen, pages

    app.register_blueprint(pages.bp)
    app.register_blueprint(citizen.bp)
    _serve_swagger_ui(app)

    from server import errors

    errors.register(app)
    app.teardown_request(close_request_session)
    app.after_request(pages.protect_citizen_pages)

    @app.before_request
    def _request_id() -> None:
        g.request_id = uuid.uuid4().hex

    from server import cli

    cli.register(app)
    logging.getLogger("jingsu").setLevel(logging.INFO)
    return app


def _serve_swagger_ui(app: Flask) -> None:
    from flask import send_from_directory
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/docs/static/<path:filename>")
    def swagger_ui_static(filename: str) -> Response:
        return send_from_directory(str(swagger_ui_path), filename, max_age=86400)
