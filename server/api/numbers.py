"""Number accounting, ``/api/v1/numbers``: how every allocated notice number of a device was used, and its gaps."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from models import numbers
from server import auth
from server.runtime import unit_of_work
from sync.schemas import Text

blp = Blueprint("numbers", __name__, url_prefix="/api/v1/numbers", description="Number accounting")


class ReportQuery(Schema):
    device = Text(line=True, required=True, validate=validate.Length(min=1, max=64))


class GapOut(Schema):
    first = fields.String()
    last = fields.String()
    count = fields.Integer()


class BlockOut(Schema):
    block_id = fields.Integer()
    first = fields.String()
    last = fields.String()
    count = fields.Integer()
    status = fields.String()
    allocated_at = fields.DateTime()
    expires_at = fields.DateTime()
    issued = fields.Integer()
    voided = fields.Integer()
    cancelled_notices = fields.Integer(metadata={"description": "issued, then cancelled by a clerk (직권취소)"})
    spoiled = fields.Integer()
    cancelled = fields.Integer(metadata={"description": "unused numbers of a cancelled block"})
    unused = fields.Integer()
    gaps = fields.List(fields.Nested(GapOut))


class ReportOut(Schema):
    """Dumps ``numbers.NumberReport``."""

    device_id = fields.String()
    jurisdiction = fields.String()
    blocks = fields.List(fields.Nested(BlockOut))
    totals = fields.Dict(keys=fields.String(), values=fields.Integer())


@blp.route("/report")
class NumberReport(MethodView):
    @auth.staff("admin", "clerk", "auditor", "approver")
    @blp.arguments(ReportQuery, location="query")
    @blp.response(200, ReportOut)
    def get(self, query: dict[str, Any]) -> numbers.NumberReport:
        """Every block of a device: issued, voided, spoiled, cancelled and unused numbers, and the gaps."""
        with unit_of_work() as session:
            scope = auth.scope_of(session, auth.current_principal())
            return numbers.number_report(session, scope, query["device"])
