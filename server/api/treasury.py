"""Treasury (금고), ``/api/v1/treasury``: the bank's receipts from SEN and the daily file, the exception queue and the
daily reconciliation report (``models.treasury``).

- ``POST /api/v1/treasury/sen`` — the bank's real-time feed, authenticated only by its signature: headers
  ``X-SEN-Timestamp`` (unix seconds, within 5 minutes of our clock) and ``X-SEN-Signature`` (hex HMAC-SHA256 with
  ``JINGSU_SEN_KEY`` over ``"<timestamp>." + body``); otherwise 401 ``signature_invalid``. One receipt per message
  (``models.treasury.sen``); the answer says what it did (``posted``, ``suspense``, ``split``, ``reversed``,
  ``held``, ``confirmed``, ``repeated``, ``mismatch``). Sending it again is harmless.
- ``POST /api/v1/treasury/files`` ``{"name", "content"}`` — city staff import a daily file (it covers every
  district; a district's clerk gets 403 ``forbidden_scope``) (``models.treasury.daily_file``);
  a file with any bad line is refused whole: 422 ``file_invalid``, ``errors.content`` listing each
  ``line <n>: <field>: <what is wrong>``.
- ``GET /api/v1/treasury/exceptions?status=&date=&reason=&after=&limit=`` — the exception queue of the caller's
  jurisdiction (rows with no jurisdiction: city roles only), keyset-paginated by id.
- ``POST /api/v1/treasury/exceptions/<id>/resolve`` ``{"note"}`` — a clerk records how it was settled.
- ``GET /api/v1/treasury/reconciliation?date=YYYY-MM-DD[&format=csv]`` — the daily report.

Also the CLI: ``treasury-import FILE`` and ``reconciliation-report --date`` (``treasury_command``).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

import click
from flask import Flask, Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy.orm import Session

from models.base import Actor
from models.errors import DomainError, NotFound
from models.treasury import daily_file, exceptions, matching, queries, report, sen
from models.treasury.message import BankReport
from models.treasury.tables import OPEN, RESOLVED
from server import auth
from server.api.schemas import Page, keyset_page
from server.errors import ApiError
from server.jsonbody import MalformedJson, strict_loads
from server.runtime import chunk_transactions, runtime, unit_of_work
from services import treasury
from services.uow import transactions
from sync.schemas import Text

blp = Blueprint("treasury", __name__, url_prefix="/api/v1/treasury", description="Treasury receipts (금고 수납)")

READERS = ("admin", "clerk", "approver", "auditor")
CLERKS = ("admin", "clerk")
_ID = re.compile(r"[1-9][0-9]{0,17}")
MAX_FILE_CHARS = 6 * 1024 * 1024


class TreasurySenMessage(Schema):
    bank_code = fields.String(required=True, metadata={"example": "088"})
    receipt_id = fields.String(required=True, metadata={"description": "the bank's receipt id, 1–20 characters"})
    kind = fields.String(required=True, validate=validate.OneOf(["deposit", "cancel"]))
    channel = fields.String(required=True, validate=validate.OneOf(["virtual_account", "bank", "settlement"]))
    reference = fields.String(
        metadata={"description": "virtual account, 19-digit 전자납부번호, or settlement <gateway>:<YYYYMMDD>"}
    )
    amount = fields.Integer(required=True)
    received_at = fields.String(required=True, metadata={"description": "ISO 8601 with offset"})
    original_receipt_id = fields.String(allow_none=True, metadata={"description": "the receipt a cancel cancels"})


class TreasurySenAnswer(Schema):
    result = fields.String()
    receipt_id = fields.String()


class TreasuryFileIn(Schema):
    name = Text(line=True, required=True, validate=validate.Length(min=1, max=200))
    content = fields.String(required=True, validate=validate.Length(min=1, max=MAX_FILE_CHARS))


class TreasuryFileOut(Schema):
    """Dumps ``matching.FileImport``."""

    file_id = fields.Integer(attribute="file.id")
    bank_code = fields.String(attribute="file.bank_code")
    file_date = fields.Date(attribute="file.file_date")
    lines = fields.Integer(attribute="file.lines")
    total = fields.Integer(attribute="file.total")
    outcomes = fields.Dict(keys=fields.String(), values=fields.Integer())
    exceptions = fields.Dict(keys=fields.String(), values=fields.Integer())


class TreasuryExceptionQuery(Schema):
    status = fields.String(load_default=OPEN, validate=validate.OneOf([OPEN, RESOLVED, "all"]))
    date = fields.Date()
    reason = fields.String(validate=validate.OneOf(exceptions.REASONS))
    after = fields.String(validate=validate.Regexp(r"^[0-9]{1,18}$", error="must be a cursor from `next`"))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class TreasuryExceptionOut(Schema):
    """Dumps ``queries.ExceptionLine``."""

    id = fields.Integer(attribute="exception.id")
    reason = fields.String(attribute="exception.reason")
    amount = fields.Integer(attribute="exception.amount")
    held = fields.Integer(
        attribute="exception.held", metadata={"description": "bank money only this exception accounts for (signed)"}
    )
    jurisdiction = fields.String(attribute="exception.jurisdiction", allow_none=True)
    detail = fields.String(attribute="exception.detail")
    status = fields.String(attribute="exception.status")
    bank_code = fields.String(attribute="receipt.bank_code")
    receipt_id = fields.String(attribute="receipt.receipt_id")
    kind = fields.String(attribute="receipt.kind")
    channel = fields.String(attribute="receipt.channel")
    reference = fields.String(attribute="receipt.reference")
    receipt_amount = fields.Integer(attribute="receipt.bank_amount")
    received_at = fields.DateTime(attribute="receipt.received_at")
    business_date = fields.Date(attribute="receipt.business_date")
    outcome = fields.String(attribute="receipt.outcome")
    notice_no = fields.String(attribute="receipt.notice_no", allow_none=True)
    created_at = fields.DateTime(attribute="exception.created_at")
    resolved_by = fields.String(attribute="exception.resolved_label", allow_none=True)
    resolved_at = fields.DateTime(attribute="exception.resolved_at", allow_none=True)
    resolution = fields.String(attribute="exception.resolution", allow_none=True)


class TreasuryExceptionList(Schema):
    items = fields.List(fields.Nested(TreasuryExceptionOut))
    next = fields.String(allow_none=True)


class TreasuryResolveIn(Schema):
    note = Text(required=True, validate=validate.Length(min=1, max=300))


class ReconciliationQuery(Schema):
    date = fields.Date(required=True)
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


class ReconciliationRowOut(Schema):
    """Dumps ``report.ReportRow``."""

    jurisdiction = fields.String(allow_none=True)
    revenue_item = fields.String(allow_none=True)
    receipts = fields.Integer()
    bank = fields.Integer()
    ledger = fields.Integer()
    gateway = fields.Integer()
    suspense = fields.Integer()
    held = fields.Integer()
    open_exceptions = fields.Integer()
    difference = fields.Integer()


class ReconciliationOut(Schema):
    """Dumps ``report.Reconciliation``."""

    business_date = fields.Date()
    rows = fields.List(fields.Nested(ReconciliationRowOut))
    total = fields.Nested(ReconciliationRowOut)


@dataclass(frozen=True)
class SenAnswer:
    result: str  # what the receipt did
    receipt_id: str


def _sen_message() -> BankReport:
    """This request's SEN message: its signature verified, its body parsed (401, 400 or 422 otherwise)."""
    rt = runtime()
    raw = request.get_data(cache=True)
    timestamp = request.headers.get("X-SEN-Timestamp")
    if not sen.verify(rt.config.sen_key, timestamp, request.headers.get("X-SEN-Signature"), raw, rt.clock()):
        raise ApiError(401, "signature_invalid", "the SEN message's signature does not verify or is stale")
    try:
        body = strict_loads(raw) if raw else None
    except MalformedJson:
        raise ApiError(400, "malformed_json", "the request body is not valid JSON") from None
    try:
        return sen.parse_message(body)
    except sen.SenError as exc:
        raise ApiError(422, "validation_failed", "the SEN message is malformed", errors=exc.errors) from None


def _ascii(content: str) -> bytes:
    try:
        return content.encode("ascii")
    except UnicodeEncodeError:
        raise ApiError(422, "file_invalid", "the file is not ASCII", errors={"content": ["not ASCII"]}) from None


def _check_city(session: Session, principal: auth.Principal) -> None:
    """The bank's file covers every district: the city imports it, districts work their exceptions."""
    if auth.scope_of(session, principal).jurisdictions is not None:
        raise ApiError(403, "forbidden_scope", "the treasury's daily file is imported by city staff")


@blp.route("/sen")
class SenFeed(MethodView):
    @blp.doc(
        security=[],
        requestBody={
            "required": True,
            "content": {"application/json": {"schema": TreasurySenMessage}},
            "description": "one receipt, signed: headers X-SEN-Timestamp and X-SEN-Signature",
        },
    )
    @blp.response(200, TreasurySenAnswer)
    @blp.alt_response(401, description="signature_invalid: missing, wrong or stale signature")
    @blp.alt_response(422, description="validation_failed")
    def post(self) -> SenAnswer:
        """The treasury bank's real-time receipt (SEN): posted once, confirmed by later reports."""
        received = _sen_message()
        actor = Actor(address=request.remote_addr, label=f"sen:{received.bank_code}")
        with unit_of_work() as session:
            return SenAnswer(
                matching.record_receipt(session, received, matching.SEN, actor, runtime().clock()),
                received.receipt_id,
            )


@blp.route("/files")
class DailyFiles(MethodView):
    @auth.staff(*CLERKS)
    @blp.arguments(TreasuryFileIn)
    @blp.response(200, TreasuryFileOut)
    @blp.alt_response(422, description="file_invalid: errors.content lists every bad line; nothing imported")
    def post(self, body: dict[str, Any]) -> matching.FileImport:
        """Import the treasury bank's daily file: each line posts once or confirms what SEN reported."""
        rt, principal = runtime(), auth.current_principal()
        data = _ascii(body["content"])
        with unit_of_work(writes_changes=False) as session:
            _check_city(session, principal)
        try:
            return treasury.import_daily_file(chunk_transactions(), data, body["name"], principal.actor(),
                                              rt.clock(), bank_code=rt.config.va_bank_code)  # fmt: skip
        except daily_file.DailyFileError as exc:
            raise ApiError(
                422, "file_invalid", f"{len(exc.errors)} bad lines; nothing was imported", errors=line_errors(exc)
            ) from None


def line_errors(exc: daily_file.DailyFileError) -> dict[str, list[str]]:
    """Every bad line under ``content``, each ``line <n>: <field>: <what is wrong>``."""
    return {"content": [str(e) for e in exc.errors]}


@blp.route("/exceptions")
class Exceptions(MethodView):
    @auth.staff(*READERS)
    @blp.arguments(TreasuryExceptionQuery, location="query")
    @blp.response(200, TreasuryExceptionList)
    def get(self, args: dict[str, Any]) -> Page[queries.ExceptionLine]:
        """The exception queue: receipts a clerk must look at, oldest first, within the caller's jurisdiction."""
        limit = args["limit"]
        with unit_of_work() as session:
            found = queries.exception_lines(
                session,
                auth.scope_of(session, auth.current_principal()),
                status=None if args["status"] == "all" else args["status"],
                on=args.get("date"),
                reason=args.get("reason"),
                after=int(args["after"]) if "after" in args else None,
                limit=limit + 1,
            )
            return keyset_page(found, limit, lambda line: line.exception.id)


@blp.route("/exceptions/<exception_id>/resolve")
class ResolveException(MethodView):
    @auth.staff(*CLERKS)
    @blp.arguments(TreasuryResolveIn)
    @blp.response(200, TreasuryExceptionOut)
    @blp.alt_response(404, description="not_found")
    @blp.alt_response(409, description="invalid_transition: resolved already")
    def post(self, body: dict[str, Any], exception_id: str) -> queries.ExceptionLine:
        """Record how an exception was settled (who, when, the note)."""
        if not _ID.fullmatch(exception_id):
            raise NotFound("no such treasury exception", field="exception_id")
        with unit_of_work() as session:
            principal = auth.current_principal()
            scope = auth.scope_of(session, principal)
            exceptions.resolve_exception(
                session, int(exception_id), body["note"], scope, principal.actor(), runtime().clock()
            )
            return queries.exception_line(session, int(exception_id), scope)


@blp.route("/reconciliation")
class Reconciliation(MethodView):
    @auth.staff(*READERS)
    @blp.arguments(ReconciliationQuery, location="query")
    @blp.response(200, ReconciliationOut)
    def get(self, args: dict[str, Any]) -> Any:
        """The daily reconciliation: per jurisdiction and revenue item, bank totals beside where the money is."""
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            rec = report.daily_report(session, args["date"], scope)
        if args["format"] == "csv":
            return Response(
                report_csv(rec),
                mimetype="text/csv",
                headers={"Content-Disposition": f"attachment; filename=reconciliation-{rec.business_date}.csv"},
            )
        return rec


def report_csv(rec: report.Reconciliation) -> str:
    out = io.StringIO()
    names = [
        "jurisdiction",
        "revenue_item",
        "receipts",
        "bank",
        "ledger",
        "gateway",
        "suspense",
        "held",
        "open_exceptions",
        "difference",
    ]
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in rec.rows:
        writer.writerow(r.as_dict())
    writer.writerow({**rec.total.as_dict(), "jurisdiction": "total"})
    return out.getvalue()


# --- CLI ------------------------------------------------------------------------------------------------------------


def treasury_command(app: Flask) -> None:
    @app.cli.command("treasury-import")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    def treasury_import(path: str) -> None:
        """Import the treasury bank's daily file (checked whole, then a chunk of lines per transaction; run it again
        on the same file to resume one cut short) and print what each line did."""
        from pathlib import Path

        rt = runtime()
        data = Path(path).read_bytes()
        actor = Actor(label="cli:treasury-import")

        def progress(n: int, total: int) -> None:
            if n == total or n % 200 == 0:
                click.echo(f"\r{n:>7,}/{total:,} lines", nl=n == total, err=True)

        try:
            done = treasury.import_daily_file(transactions(rt.sessions), data, Path(path).name, actor, rt.clock(),
                                              bank_code=rt.config.va_bank_code, progress=progress)  # fmt: skip
            f = done.file
            summary = (f.id, f.bank_code, f.file_date, f.lines, f.total)
        except daily_file.DailyFileError as exc:
            click.echo(f"{path}: {len(exc.errors)} bad lines; nothing was imported", err=True)
            for e in exc.errors:
                click.echo(f"  line {e.line:>6}  {e.field:<20} {e.message}", err=True)
            raise SystemExit(1) from None
        except DomainError as exc:
            raise click.ClickException(exc.detail) from None
        file_id, bank_code, file_date, lines, total = summary
        click.echo(f"file {file_id}: bank {bank_code}, {file_date:%Y-%m-%d}, {lines:,} lines, net {total:,} won")
        click.echo(f"{'outcome':<22} {'lines':>8}")
        for name, count in sorted(done.outcomes.items()):
            click.echo(f"{name:<22} {count:>8,}")
        if done.exceptions:
            click.echo(f"{'exceptions raised':<22} {'count':>8}")
            for name, count in sorted(done.exceptions.items()):
                click.echo(f"{name:<22} {count:>8,}")

    @app.cli.command("reconciliation-report")
    @click.option("--date", "on", required=True, type=click.DateTime(formats=["%Y-%m-%d"]), help="YYYY-MM-DD")
    def reconciliation_report(on: Any) -> None:
        """Print the daily reconciliation (bank beside ledger, per jurisdiction and revenue item)."""
        from models.base import Scope

        with unit_of_work() as session:
            rec = report.daily_report(session, on.date(), Scope.everything())
        for line in report.table(rec):
            click.echo(line)
        if rec.total.difference:
            raise SystemExit(2)
