"""Back office, ``/api/v1/print-runs``: bulk print runs of mailed documents (issue 6; ``services.mailing``).

- ``POST /print-runs`` ``{"kind", "jurisdiction"?, "issued_from"?, "issued_to"?, "limit"?}``: take every document of
  the selection no run has printed yet and queue the run for the worker, which prints it into one PDF and an
  e-그린우편 manifest handed to the postal service; 202 at once with the run (``claimed``, or ``empty`` when nothing
  was left: a rerun prints nothing twice) and its URL in ``Location``.
- ``GET /print-runs``, ``GET /print-runs/<id>``: the caller's runs (a district sees its own; city staff all), each
  with its progress: ``claimed`` (waiting for a worker), ``printing`` (``rendered`` of ``documents``), ``printed``,
  ``failed`` (``error``).
- ``GET /print-runs/<id>/notices.pdf``, ``…/manifest``: the run's files. Both carry names and addresses: every
  download is logged (``print_run_exports``: who, from where, when).

Refusal order: 401/403 token and role, 422 body (unknown ``kind``, bad dates, ``issued_to`` before
``issued_from``), 404 a jurisdiction or run outside the caller's scope, 409 ``not_printed`` for the files of a run
that has none.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from flask import Response, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from models import print_runs
from models.errors import Conflict, NotFound
from server import auth, wiring
from server.api.schemas import JURISDICTION
from server.runtime import runtime, unit_of_work
from services import mailing
from sync.schemas import Text

blp = Blueprint("print_runs", __name__, url_prefix="/api/v1", description="Bulk print runs of mailed documents")

READERS = ("admin", "clerk", "approver", "auditor")
PRINTERS = ("admin", "clerk")
_ID = re.compile(r"[1-9][0-9]{0,17}")
DATES = validate.Range(min=date(2000, 1, 1), max=date(2999, 12, 31))
CHUNK = 64 * 1024


class NotPrinted(Conflict):
    """The run has no files (it printed nothing, or failed)."""

    code = "not_printed"


# --- schemas (shape only) -------------------------------------------------------------------------------------------


class PrintRunIn(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(print_runs.KINDS))
    jurisdiction = Text(line=True, validate=JURISDICTION, metadata={"description": "default: the caller's"})
    issued_from = fields.Date(validate=DATES)
    issued_to = fields.Date(validate=DATES)
    limit = fields.Integer(strict=True, validate=validate.Range(min=1, max=print_runs.MAX_RUN))


class PrintRunOut(Schema):
    id = fields.Integer()
    jurisdiction = fields.String()
    kind = fields.String()
    issued_from = fields.Date(allow_none=True)
    issued_to = fields.Date(allow_none=True)
    status = fields.String(
        metadata={"description": "claimed (queued for a worker), printing, printed, empty or failed"}
    )
    documents = fields.Integer(metadata={"description": "documents the run took"})
    rendered = fields.Integer(metadata={"description": "documents rendered so far (the progress while printing)"})
    pages = fields.Integer()
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    postal_name = fields.String(allow_none=True)
    postal_receipt = fields.String(
        allow_none=True,
        metadata={
            "description": "the post's receipt; null while the hand-over waits in the outbox (or before printing)"
        },
    )
    requested_by = fields.String(attribute="actor_label", allow_none=True)
    error = fields.String(allow_none=True, metadata={"description": "why a failed run failed"})
    pdf_url = fields.Method("_pdf_url", allow_none=True)
    manifest_url = fields.Method("_manifest_url", allow_none=True)

    def _pdf_url(self, run: print_runs.PrintRun) -> str | None:
        return f"/api/v1/print-runs/{run.id}/notices.pdf" if run.pdf_path else None

    def _manifest_url(self, run: print_runs.PrintRun) -> str | None:
        return f"/api/v1/print-runs/{run.id}/manifest" if run.manifest_path else None


class PrintRunQuery(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    after = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$", error="must be a cursor from `next`"))


class PrintRunList(Schema):
    items = fields.List(fields.Nested(PrintRunOut))
    next = fields.String(allow_none=True)


# --- helpers --------------------------------------------------------------------------------------------------------


def _run_id(value: str) -> int:
    if not _ID.fullmatch(value):
        raise NotFound("no such print run", field="run_id")
    return int(value)


def _selection(body: dict[str, Any], own: str) -> print_runs.PrintSelection:
    """The run's selection from the request (default jurisdiction: the caller's own)."""
    return print_runs.PrintSelection(
        kind=body["kind"],
        jurisdiction=body.get("jurisdiction") or own,
        issued_from=body.get("issued_from"),
        issued_to=body.get("issued_to"),
        limit=body.get("limit"),
    )


def _download(run_id: str, what: str) -> Response:
    """Log the export, then stream the file (never read whole into memory)."""
    rt = runtime()
    principal = auth.current_principal()
    with unit_of_work() as session:
        run = print_runs.get_run(session, auth.scope_of(session, principal), _run_id(run_id))
        path = run.pdf_path if what == print_runs.EXPORT_PDF else run.manifest_path
        if run.status != print_runs.PRINTED or not path or not Path(path).is_file():
            raise NotPrinted("this run has no files", field="run_id")
        print_runs.record_export(session, run, what, principal.actor(), rt.clock())
        number = run.id
    file = Path(path)

    def chunks() -> Any:
        with open(file, "rb") as handle:
            while data := handle.read(CHUNK):
                yield data

    if what == print_runs.EXPORT_PDF:
        mimetype, name = "application/pdf", f"print-run-{number}.pdf"
    else:
        mimetype, name = "text/plain; charset=utf-8", f"print-run-{number}-manifest.txt"
    return Response(
        stream_with_context(chunks()),
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(file.stat().st_size),
            "Cache-Control": "no-store",
        },
    )


# --- routes ---------------------------------------------------------------------------------------------------------


@blp.route("/print-runs")
class PrintRuns(MethodView):
    @auth.staff(*READERS)
    @blp.arguments(PrintRunQuery, location="query")
    @blp.response(200, PrintRunList)
    def get(self, query: dict[str, Any]) -> Any:
        """The caller's print runs, newest first; ``next`` is the cursor of the following page."""
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            before = int(query["after"]) if query.get("after") else None
            found = print_runs.list_runs(session, scope, limit=query["limit"] + 1, before=before)
            items = found[: query["limit"]]
            more = len(found) > query["limit"]
            return {"items": items, "next": str(items[-1].id) if more and items else None}

    @auth.staff(*PRINTERS)
    @blp.arguments(PrintRunIn)
    @blp.response(202, PrintRunOut, description="queued: the worker prints it; its progress at `Location`")
    @blp.alt_response(404, description="not_found: a jurisdiction outside the caller's")
    def post(self, body: dict[str, Any]) -> Any:
        """Queue a print run of every unprinted mailed document of the selection (one PDF and a manifest for the
        post); answers at once."""
        principal = auth.current_principal()
        with unit_of_work() as session:
            scope = auth.scope_of(session, principal)
        room = wiring.mailroom(runtime(), unit_of_work)
        run = mailing.start_run(room, _selection(body, principal.jurisdiction), scope, principal.actor())
        return run, 202, {"Location": f"/api/v1/print-runs/{run.id}"}


@blp.route("/print-runs/<run_id>")
class PrintRunOne(MethodView):
    @auth.staff(*READERS)
    @blp.response(200, PrintRunOut)
    @blp.alt_response(404, description="not_found")
    def get(self, run_id: str) -> Any:
        """One print run: its selection, status, counts and the post's receipt."""
        with unit_of_work() as session:
            return print_runs.get_run(session, auth.scope_of(session, auth.current_principal()), _run_id(run_id))


@blp.route("/print-runs/<run_id>/notices.pdf")
class PrintRunPdf(MethodView):
    @auth.staff(*PRINTERS)
    @blp.response(200, content_type="application/pdf", description="the merged PDF (download logged)")
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="not_printed")
    def get(self, run_id: str) -> Any:
        """The run's merged PDF, a page per document in manifest order; the download is logged."""
        return _download(run_id, print_runs.EXPORT_PDF)


@blp.route("/print-runs/<run_id>/manifest")
class PrintRunManifest(MethodView):
    @auth.staff(*PRINTERS)
    @blp.response(200, content_type="text/plain", description="the e-그린우편 manifest (download logged)")
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="not_printed")
    def get(self, run_id: str) -> Any:
        """The run's e-그린우편 manifest (``adapters.postal``); the download is logged."""
        return _download(run_id, print_runs.EXPORT_MANIFEST)
