"""Fixtures of the integration tier (the domain on PostgreSQL, inside the rolled-back transaction of ``db_session``).

issue  function  ``issue(notice_no)``: a 40,000 won P01 parking notice issued by a freshly registered device
                 (``tests.factories.parking_command``), observed at ``tests.factories.OBSERVED``
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from models import notices
from models.base import Actor
from models.devices import RegisterDevice, register_device
from models.users import User
from tests.factories import CIPHER, OBSERVED, parking_command


@pytest.fixture
def issue(db_session) -> Callable[[str], notices.Notice]:
    device, _ = register_device(db_session, RegisterDevice("11110", "결제 시험 단말"), Actor.system(), OBSERVED,
                                timedelta(hours=1))  # fmt: skip
    officer = db_session.scalar(select(User).where(User.login == "officer.11110.1"))

    def make(notice_no: str) -> notices.Notice:
        cmd = parking_command(notice_no, device.id, officer.id)
        notice = notices.issue_notice(db_session, cmd, Actor(device_id=device.id), OBSERVED, CIPHER)
        assert notice is not None
        return notice

    return make
