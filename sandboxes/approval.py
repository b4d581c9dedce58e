"""Sandbox e-approval (전자결재): the dev/test stand-in for the office approval system, run as its own process.

    python -m sandboxes.approval --host 127.0.0.1 --port 5003 --secret HEX [--state FILE]
                                 [--auto-approve-after SECONDS] [--public-url URL]

It speaks the contract of ``docs/approval.md`` over HTTP, as ``adapters.approval.HttpApproval`` expects: Jingsu
submits a document with a signed request; an approver (결재권자) opens ``/approvals/<id>`` and approves or rejects it
(or ``POST /approvals/<id>/decide`` with JSON); the service then POSTs a signed, timestamped callback to the
document's ``callback_url``; Jingsu confirms with a signed status query. A submission with an ``Idempotency-Key``
is created (an effect) once per key and answered the same way again (``sandboxes.common``: ``/sandbox/idempotency``,
``/sandbox/hold``).

State lives in memory and, with ``--state FILE``, in a JSON file rewritten atomically after every change, so a
restart keeps submissions, decisions and delivery attempts. ``--auto-approve-after N`` approves every pending
submission N seconds after it arrived, for demos without a person at the approver's page.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Flask, Response, render_template_string, request

from sandboxes.common import (
    RecordStore,
    SandboxError,
    arg_parser,
    base_app,
    callback_routes,
    check_stamped,
    deliver,
    deliveries,
    error_json,
    hex_secret,
    json_object,
    json_response,
    page_template,
    serve,
    sign_stamped,
    utc_now,
)

REQUEST_TIMESTAMP_HEADER = "X-Jingsu-Timestamp"
REQUEST_SIGNATURE_HEADER = "X-Jingsu-Signature"
CALLBACK_TIMESTAMP_HEADER = "X-Approval-Timestamp"
CALLBACK_SIGNATURE_HEADER = "X-Approval-Signature"
MAX_SKEW_S = 300
MAX_AMOUNT = 10**15
AUTO_APPROVER = "자동결재(샌드박스)"

_ID_RE = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces
_TYPE_RE = re.compile(r"^[a-z][a-z_]{0,39}$")
DECISIONS = {"approve": "approved", "reject": "rejected"}


# --- state ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSubmission:
    """A validated ``POST /v1/submissions`` body."""

    title: str
    document_type: str
    reference_id: str
    amount_total: int
    count: int
    requested_by: str
    callback_url: str


@dataclass
class Submission:
    """One document in the approval system; ``callback_body`` is the exact text of the decision callback."""

    submission_id: str
    title: str
    document_type: str
    reference_id: str
    amount_total: int
    count: int
    requested_by: str
    callback_url: str
    submitted_at: str
    submitted_ts: float
    status: str = "pending"  # pending → approved | rejected
    decided_by: str | None = None
    decided_at: str | None = None
    comment: str = ""
    callback_body: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def request(self) -> NewSubmission:
        return NewSubmission(
            self.title,
            self.document_type,
            self.reference_id,
            self.amount_total,
            self.count,
            self.requested_by,
            self.callback_url,
        )

    def public(self) -> dict[str, Any]:
        """The status-query answer and the callback body (docs/approval.md)."""
        return {
            "submission_id": self.submission_id,
            "reference_id": self.reference_id,
            "document_type": self.document_type,
            "amount_total": self.amount_total,
            "count": self.count,
            "status": self.status,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "comment": self.comment,
        }


def check_signature(key: bytes, timestamp: str | None, signature: str | None, payload: bytes) -> None:
    """Raise ``SandboxError(401, "bad_signature" | "stale_timestamp")`` unless the request is signed and fresh."""
    check_stamped(
        key, MAX_SKEW_S, timestamp, signature, payload, headers=(REQUEST_TIMESTAMP_HEADER, REQUEST_SIGNATURE_HEADER)
    )


class SandboxApproval:
    """The approval system's state machine: submissions by id and by reference id, under one lock, optionally kept
    in a file. Callbacks are delivered outside the lock, so Jingsu may query the service while it handles one.
    """

    def __init__(self, key: bytes, state_path: Path | None = None) -> None:
        if not key:
            raise ValueError("the approval secret must not be empty")
        self.key = key
        self.state_path = state_path
        self._store: RecordStore[Submission] = RecordStore(
            state_path,
            "submissions",
            Submission,
            lambda r: r.submission_id,
            lambda r: r.reference_id,
            "no such submission",
        )

    def submit(self, new: NewSubmission) -> tuple[Submission, bool]:
        """The submission for ``new.reference_id``, created if new; ``(submission, created)``.

        Raises ``SandboxError(409, "reference_conflict")`` when the reference id exists with other content.
        """
        with self._store.lock:
            existing = self._store.by_key.get(new.reference_id)
            if existing is not None:
                sub = self._store.records[existing]
                if sub.request() != new:
                    raise SandboxError(
                        409, "reference_conflict", "this reference_id was already submitted with other content"
                    )
                return self._store.snapshot(sub), False
            sub = Submission(
                submission_id=f"apv_{secrets.token_hex(12)}",
                submitted_at=utc_now(),
                submitted_ts=time.time(),
                **asdict(new),
            )
            self._store.add(sub)
            self._store.save()
            return self._store.snapshot(sub), True

    def get(self, submission_id: str) -> Submission:
        """A snapshot. Raises ``SandboxError(404, "not_found")``."""
        with self._store.lock:
            return self._store.snapshot(self._store.get(submission_id))

    def all(self) -> list[Submission]:
        """Every submission, newest first."""
        with self._store.lock:
            return [
                self._store.snapshot(s) for s in sorted(self._store.records.values(), key=lambda s: -s.submitted_ts)
            ]

    def attempts(self, submission_id: str) -> list[dict[str, Any]]:
        """Every callback delivery attempt, oldest first. Raises ``SandboxError(404, "not_found")``."""
        return self._store.attempts(submission_id)

    def decide(self, submission_id: str, decision: str, approver: str, comment: str) -> tuple[Submission, bool]:
        """Approve or reject a pending submission and call Jingsu back once; ``(submission, changed)``.

        ``decision`` is "approve" or "reject". The same decision again changes nothing and sends nothing. Raises
        ``SandboxError(404)``, ``SandboxError(409, "already_decided")`` for the other decision. A failed delivery
        is recorded and does not undo the decision.
        """
        status = DECISIONS[decision]
        with self._store.lock:
            sub = self._store.get(submission_id)
            if sub.status == status:
                return self._store.snapshot(sub), False
            if sub.status != "pending":
                raise SandboxError(409, "already_decided", f"the document is already {sub.status}")
            sub.status, sub.decided_by, sub.decided_at, sub.comment = status, approver, utc_now(), comment
            sub.callback_body = json.dumps(sub.public(), ensure_ascii=False, separators=(",", ":"))
            self._store.save()
            snapshot = self._store.snapshot(sub)
        self._deliver(snapshot)
        return snapshot, True

    def resend(self, submission_id: str) -> int | None:
        """Deliver the decision callback again (same body, fresh timestamp and signature); Jingsu's HTTP status, or
        None. Raises ``SandboxError(404)``, or ``SandboxError(409, "no_callback")`` while pending."""
        sub = self.get(submission_id)
        if sub.callback_body is None:
            raise SandboxError(409, "no_callback", "the document is still pending: no callback was sent yet")
        return self._deliver(sub)

    def due_for_auto_approval(self, after: float) -> list[str]:
        """Pending submissions that arrived at least ``after`` seconds ago."""
        now = time.time()
        with self._store.lock:
            return [
                s.submission_id
                for s in self._store.records.values()
                if s.status == "pending" and now - s.submitted_ts >= after
            ]

    def _deliver(self, sub: Submission) -> int | None:
        assert sub.callback_body is not None
        body = sub.callback_body.encode()
        timestamp = str(int(time.time()))
        headers = {
            CALLBACK_TIMESTAMP_HEADER: timestamp,
            CALLBACK_SIGNATURE_HEADER: sign_stamped(self.key, timestamp, body),
        }
        attempt = deliver(sub.callback_url, body, headers)
        return self._store.record_attempt(sub.submission_id, attempt)


def auto_approver(service: SandboxApproval, after: float, stop: threading.Event) -> threading.Thread:
    """A daemon thread approving, as ``AUTO_APPROVER``, what has waited ``after`` seconds (until ``stop`` is set)."""

    def run() -> None:
        while not stop.wait(min(0.2, after)):
            for submission_id in service.due_for_auto_approval(after):
                try:
                    service.decide(submission_id, "approve", AUTO_APPROVER, f"{after:g}초 후 자동 승인 (샌드박스)")
                except SandboxError as exc:
                    if exc.code != "already_decided":
                        raise
                    # a person rejected it in the meantime: their decision stands

    thread = threading.Thread(target=run, name="auto-approver", daemon=True)
    thread.start()
    return thread


# --- parsing --------------------------------------------------------------------------------------------------------


def parse_submission(raw: bytes) -> NewSubmission:
    """Validate a ``POST /v1/submissions`` body. Raises ``SandboxError(400, "invalid_request")`` naming the field."""
    body = json_object(raw)

    def text(name: str, max_len: int) -> str:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > max_len:
            raise SandboxError(400, "invalid_request", f"{name}: a non-empty string of at most {max_len} characters")
        return value

    def number(name: str, low: int, high: int) -> int:
        value = body.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise SandboxError(400, "invalid_request", f"{name}: an integer from {low} to {high}")
        return value

    document_type = text("document_type", 40)
    if not _TYPE_RE.match(document_type):
        raise SandboxError(400, "invalid_request", "document_type: lowercase letters and _, e.g. imposition_batch")
    reference_id = text("reference_id", 64)
    if not _ID_RE.match(reference_id):
        raise SandboxError(400, "invalid_request", "reference_id: 1-64 printable ASCII characters, no spaces")
    callback_url = text("callback_url", 2000)
    parts = urlsplit(callback_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SandboxError(400, "invalid_request", "callback_url: an absolute http(s) URL is required")
    return NewSubmission(
        title=text("title", 200),
        document_type=document_type,
        reference_id=reference_id,
        amount_total=number("amount_total", 0, MAX_AMOUNT),
        count=number("count", 1, 10**9),
        requested_by=text("requested_by", 64),
        callback_url=callback_url,
    )


def parse_decision(form: dict[str, Any]) -> tuple[str, str, str]:
    """``(decision, approver, comment)`` from the approver's form or JSON. Raises ``SandboxError(400)``."""
    decision, approver, comment = form.get("decision"), form.get("approver"), form.get("comment", "")
    if decision not in DECISIONS:
        raise SandboxError(400, "invalid_request", "decision: approve or reject")
    if not isinstance(approver, str) or not approver.strip() or len(approver) > 64:
        raise SandboxError(400, "invalid_request", "approver: the approver's name, at most 64 characters")
    if not isinstance(comment, str) or len(comment) > 1000:
        raise SandboxError(400, "invalid_request", "comment: at most 1000 characters")
    if decision == "reject" and not comment.strip():
        raise SandboxError(400, "invalid_request", "comment: a reason is required to reject (반려 사유)")
    return decision, approver.strip(), comment.strip()


# --- web ------------------------------------------------------------------------------------------------------------

_PAGE = page_template(
    "전자결재 (샌드박스)",
    "전자결재 샌드박스 — 시험용입니다",
    "44rem",
    """ table, dl { background: #fff; border-radius: .6rem; padding: 1rem; width: 100%; }
 dl { display: grid; grid-template-columns: auto 1fr; gap: .5rem 1rem; box-sizing: border-box; }
 dt { color: #666; } dd { margin: 0; }
 td, th { padding: .3rem .5rem; text-align: left; }
 textarea, input { width: 100%; box-sizing: border-box; padding: .5rem; margin: .3rem 0 .8rem; }
 button { padding: .7rem 1.4rem; font-size: 1rem; border-radius: .5rem; border: 0; margin-right: .5rem; }
 .approve { background: #1b64da; color: #fff; } .reject { background: #e5e8eb; color: #333; }
""",
    """{% if message %}<p>{{ message }}</p>{% endif %}
{% if subs is not none %}
<table>
 <tr><th>상신일시</th><th>제목</th><th>건수</th><th>금액</th><th>상태</th></tr>
 {% for s in subs %}
 <tr><td>{{ s.submitted_at }}</td>
  <td><a href="{{ url_for('document', submission_id=s.submission_id) }}">{{ s.title }}</a></td>
  <td>{{ s.count }}</td><td>{{ "{:,}".format(s.amount_total) }}원</td><td>{{ labels[s.status] }}</td></tr>
 {% else %}
 <tr><td colspan="5">결재할 문서가 없습니다.</td></tr>
 {% endfor %}
</table>
{% endif %}
{% if sub %}
<dl>
 <dt>문서 종류</dt><dd>{{ sub.document_type }}</dd>
 <dt>참조 번호</dt><dd>{{ sub.reference_id }}</dd>
 <dt>기안자</dt><dd>{{ sub.requested_by }}</dd>
 <dt>상신일시</dt><dd>{{ sub.submitted_at }}</dd>
 <dt>건수</dt><dd>{{ sub.count }}건</dd>
 <dt>금액 합계</dt><dd>{{ "{:,}".format(sub.amount_total) }}원</dd>
 <dt>상태</dt><dd>{{ labels[sub.status] }}</dd>
 {% if sub.decided_by %}<dt>결재권자</dt><dd>{{ sub.decided_by }} ({{ sub.decided_at }})</dd>
 <dt>의견</dt><dd>{{ sub.comment }}</dd>{% endif %}
</dl>
{% if sub.status == "pending" %}
<form method="post" action="{{ url_for('decide', submission_id=sub.submission_id) }}">
 <label>결재권자 <input name="approver" required maxlength="64"></label>
 <label>의견 (반려 시 필수) <textarea name="comment" maxlength="1000"></textarea></label>
 <button type="submit" name="decision" value="approve" class="approve">승인</button>
 <button type="submit" name="decision" value="reject" class="reject">반려</button>
</form>
{% endif %}
<p><a href="{{ url_for('inbox') }}">결재함으로</a></p>
{% endif %}
""",
)

_LABELS = {"pending": "결재 대기", "approved": "승인", "rejected": "반려"}


def create_app(service: SandboxApproval, *, public_url: str | None = None) -> Flask:
    """The sandbox's Flask app over ``service``; ``public_url`` is the base of ``approval_url`` (default: the host
    Jingsu called)."""
    app = base_app(__name__, 64 * 1024)
    key = service.key

    def signed(payload: bytes) -> None:
        check_signature(
            key, request.headers.get(REQUEST_TIMESTAMP_HEADER), request.headers.get(REQUEST_SIGNATURE_HEADER), payload
        )

    def signed_path(method: str, submission_id: str, suffix: str = "") -> None:
        signed(f"{method} /v1/submissions/{quote(submission_id, safe='')}{suffix}".encode())

    def page(title: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("sub", None)
        context.setdefault("subs", None)
        html = render_template_string(_PAGE, title=title, labels=_LABELS, **context)
        return Response(html, status=status, mimetype="text/html")

    @app.errorhandler(SandboxError)
    def _sandbox_error(exc: SandboxError) -> Response:
        if request.path.startswith("/approvals") and not request.is_json:
            return page("결재할 수 없습니다", exc.status, message=exc.detail)
        return error_json(exc)

    keys = deliveries(app)

    def submitted(raw: bytes) -> tuple[Response, bool]:
        sub, created = service.submit(parse_submission(raw))
        base = public_url.rstrip("/") if public_url else request.host_url.rstrip("/")
        answer = {
            "submission_id": sub.submission_id,
            "status": sub.status,
            "approval_url": f"{base}/approvals/{sub.submission_id}",
        }
        return json_response(answer, 201 if created else 200), created

    @app.post("/v1/submissions")
    def submit() -> Response:
        raw = request.get_data(cache=False)
        signed(raw)
        return keys.answer(b"POST /v1/submissions\n" + raw, lambda: submitted(raw))

    @app.get("/v1/submissions/<submission_id>")
    def status(submission_id: str) -> Response:
        signed_path("GET", submission_id)
        return json_response(service.get(submission_id).public())

    callback_routes(app, "/v1/submissions", service, signed_path)

    @app.get("/approvals")
    def inbox() -> Response:
        return page("결재함", subs=service.all())

    @app.get("/approvals/<submission_id>")
    def document(submission_id: str) -> Response:
        sub = service.get(submission_id)
        return page(sub.title, sub=sub)

    @app.post("/approvals/<submission_id>/decide")
    def decide(submission_id: str) -> Response:
        form = request.get_json(silent=True) if request.is_json else request.form.to_dict()
        decision, approver, comment = parse_decision(form if isinstance(form, dict) else {})
        sub, _changed = service.decide(submission_id, decision, approver, comment)
        if request.is_json:
            return json_response(sub.public())
        return Response(status=303, headers={"Location": f"/approvals/{quote(submission_id, safe='')}"})

    return app


# --- process --------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Run the sandbox until interrupted; prints ``approval sandbox on http://host:port`` once it is listening."""
    parser = arg_parser("approval", "Sandbox e-approval (전자결재).", 5003)
    parser.add_argument("--secret", type=hex_secret("the secret"), required=True, help="the shared secret, hex")
    parser.add_argument("--state", type=Path, help="keep submissions in this JSON file across restarts")
    parser.add_argument(
        "--auto-approve-after", type=float, default=0.0, help="approve pending documents after this many seconds"
    )
    parser.add_argument("--public-url", help="base URL of the approver's pages as people see it")
    args = parser.parse_args(argv)

    try:
        service = SandboxApproval(args.secret, args.state)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    stop = threading.Event()
    if args.auto_approve_after > 0:
        auto_approver(service, args.auto_approve_after, stop)
    serve(create_app(service, public_url=args.public_url), args.host, args.port, "approval", on_stop=stop.set)


if __name__ == "__main__":
    main()
