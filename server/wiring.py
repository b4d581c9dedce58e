"""What the application services (``services``) need, built from the configuration of a ``Runtime``: no request
and no app context needed, so the worker and the commands build them as a request does.

The settings dataclasses are filled from ``Config`` here and nowhere else; the services never see ``Config``.
"""

from __future__ import annotations

from datetime import timedelta

from adapters.gateway import HttpGateway
from models import payment_refs
from models.outbox import OutboxPolicy
from server.runtime import Runtime
from services.jobs import JobInputs, JobSettings
from services.mailing import Mailroom
from services.outbox import Outside
from services.payment_links import LinkSettings, PaymentLinks
from services.payments import PaySettings
from services.uow import Transactions, transactions


def payment_links(rt: Runtime) -> PaymentLinks:
    c = rt.config
    bank = payment_refs.Bank(code=c.va_bank_code, name=c.va_bank_name, prefix=c.va_prefix)
    return PaymentLinks(LinkSettings(c.pay_base_url, bank, c.va_account_holder), rt.cipher)


def gateway(rt: Runtime) -> HttpGateway:
    return rt.gateway()


def pay_settings(rt: Runtime) -> PaySettings:
    c = rt.config
    return PaySettings(c.gateway_name, c.pay_base_url, timedelta(hours=c.payment_abandon_hours))


def mailroom(rt: Runtime, transaction: Transactions | None = None) -> Mailroom:
    """A print run's needs; ``transaction``: the request's unit of work (default: a new session each)."""
    return Mailroom(
        transaction=transaction or transactions(rt.sessions),
        clock=rt.clock,
        cipher=rt.cipher,
        links=payment_links(rt),
        postal=rt.postal,
        directory=rt.config.var_dir / "print-runs",
        chunk=rt.config.print_run_chunk,
        lease=timedelta(seconds=rt.config.job_lease_seconds),
    )


def job_inputs(rt: Runtime) -> JobInputs:
    c = rt.config
    settings = JobSettings(
        tombstone_age=timedelta(days=c.tombstone_days),
        superseded_age=timedelta(days=c.superseded_days),
        suspense_refund_after=timedelta(days=c.suspense_refund_days),
        gateway_name=c.gateway_name,
        payment_sweep_after=timedelta(minutes=c.payment_sweep_minutes),
        payment_abandon_after=timedelta(hours=c.payment_abandon_hours),
        outbox_keep=timedelta(days=c.outbox_keep_days),
    )
    return JobInputs(settings, rt.cipher, mailroom=mailroom(rt))


def outside(rt: Runtime) -> Outside:
    """What the outbox's deliveries call: the adapters the configuration names, and the cipher."""
    return Outside(rt.cipher, registry=rt.registry, approval=rt.approval, gateway=lambda: gateway(rt), postal=rt.postal)


def outbox_policy(rt: Runtime) -> OutboxPolicy:
    c = rt.config
    return OutboxPolicy(
        lease=timedelta(seconds=c.outbox_lease_seconds),
        max_attempts=c.outbox_max_attempts,
        backoff=timedelta(seconds=c.outbox_backoff_seconds),
        backoff_cap=timedelta(seconds=c.outbox_backoff_cap_seconds),
    )
