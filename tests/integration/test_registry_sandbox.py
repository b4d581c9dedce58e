"""The vehicle registry sandbox process against ``HttpRegistry`` (docs/registry.md), over real HTTP. No database.

One sandbox process serves most tests; the test that stops it starts its own.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.registry import (
    Address,
    HttpRegistry,
    Owner,
    RegistryRefused,
    RegistrySettings,
    RegistryUnavailable,
    is_plate,
    normalize_plate,
    sign,
)
from sandboxes.launcher import start_registry as start_sandbox
from sandboxes.launcher import stop as stop_sandbox
from tests.conftest import free_port

KEY = "7a11" * 16
TODAY = date(2025, 11, 20)


class Sandbox:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Sandbox:
        self.proc = start_sandbox(self.port, KEY, log_path=self.log_path)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_sandbox(self.proc)

    def registry(self, key: str = KEY, *, timeout: float = 10.0, **kwargs: Any) -> HttpRegistry:
        return HttpRegistry(RegistrySettings(self.url, key, timeout=timeout), **kwargs)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path_factory.mktemp("registry")).start()
    yield box
    box.stop()


def test_a_demo_plate_finds_its_owner(sandbox: Sandbox) -> None:
    owner = sandbox.registry().lookup("12가3456", TODAY)

    assert owner == Owner(
        plate="12가3456",
        kind="person",
        name="김민준",
        rrn="850314-1234567",
        business_no=None,
        address=Address("06236", "서울특별시 강남구 테헤란로 152", "1203호"),
        vehicle_type="car",
        since=date(2019, 4, 2),
    )


def test_a_company_vehicle_has_a_business_number_and_no_rrn(sandbox: Sandbox) -> None:
    owner = sandbox.registry().lookup("78라1234", TODAY)

    assert owner is not None
    assert (owner.kind, owner.name, owner.rrn, owner.business_no) == ("company", "(주)한강물류", None, "214-81-12345")
    assert owner.vehicle_type == "truck"


def test_a_three_digit_plate_with_spaces_is_looked_up_normalized(sandbox: Sandbox) -> None:
    owner = sandbox.registry().lookup(" 123나 4567 ", TODAY)

    assert owner is not None
    assert owner.plate == "123나4567"
    assert owner.name == "홍지안"


def test_the_owner_is_the_one_registered_on_the_violation_date(sandbox: Sandbox) -> None:
    registry = sandbox.registry()
    transfer = date(2025, 3, 15)

    before = registry.lookup("34나5678", transfer - timedelta(days=1))
    on_the_day = registry.lookup("34나5678", transfer)

    assert before is not None and on_the_day is not None
    assert before.name == "이서연"
    assert (on_the_day.name, on_the_day.since) == ("박지훈", transfer)
    assert before.address != on_the_day.address


def test_a_deregistered_vehicle_has_an_owner_only_before_its_deregistration(sandbox: Sandbox) -> None:
    registry = sandbox.registry()

    assert registry.lookup("56다7890", date(2024, 6, 29)) is not None
    assert registry.lookup("56다7890", date(2024, 6, 30)) is None
    assert registry.lookup("56다7890", TODAY) is None


def test_before_its_first_registration_a_plate_has_no_owner(sandbox: Sandbox) -> None:
    assert sandbox.registry().lookup("123나4567", date(2024, 1, 31)) is None


@pytest.mark.parametrize("plate", ["12가3457", "99가9999", "45허0000", "123가0000"])
def test_an_unregistered_plate_is_none(sandbox: Sandbox, plate: str) -> None:
    assert sandbox.registry().lookup(plate, TODAY) is None


def test_any_other_well_formed_plate_gets_the_same_generated_owner_every_time(sandbox: Sandbox) -> None:
    registry = sandbox.registry()
    plates = [f"{10 + i % 90}{'가나다라마바사아자'[i % 9]}{i:04d}" for i in range(1, 41)] + ["서울12가9876"]

    owners = [registry.lookup(plate, TODAY) for plate in plates]

    assert all(owner is not None for owner in owners)
    assert owners == [registry.lookup(plate, TODAY) for plate in plates]
    kinds = {owner.kind for owner in owners if owner is not None}
    assert "person" in kinds
    for owner in owners:
        assert owner is not None
        assert owner.address.line1.startswith("서울특별시 ")
        assert len(owner.address.postal_code) == 5
        assert (owner.rrn is None) == (owner.kind == "company") == (owner.business_no is not None)
        assert date(2010, 1, 1) <= owner.since < date(2020, 1, 1)


def test_personal_data_stays_out_of_the_owners_repr(sandbox: Sandbox) -> None:
    owner = sandbox.registry().lookup("12가3456", TODAY)

    text = repr(owner)

    assert "12가3456" in text
    assert "김민준" not in text and "850314" not in text and "테헤란로" not in text


def test_a_lookup_signed_with_another_key_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(RegistryRefused) as refused:
        sandbox.registry(key="00" * 32).lookup("12가3456", TODAY)

    assert (refused.value.status, refused.value.code) == (401, "bad_signature")
    assert "김민준" not in str(refused.value)


def test_an_unsigned_lookup_is_refused(sandbox: Sandbox) -> None:
    body = json.dumps({"plate": "12가3456", "on": TODAY.isoformat()}).encode()

    response = httpx.post(f"{sandbox.url}/v1/lookups", content=body, trust_env=False)

    assert response.status_code == 401
    assert response.json()["code"] == "bad_signature"
    assert "김민준" not in response.text


def test_a_lookup_signed_with_a_stale_timestamp_is_refused(sandbox: Sandbox) -> None:
    an_hour_ago = time.time() - 3600

    with pytest.raises(RegistryRefused) as refused:
        sandbox.registry(clock=lambda: an_hour_ago).lookup("12가3456", TODAY)

    assert (refused.value.status, refused.value.code) == (401, "stale_timestamp")


@pytest.mark.parametrize("plate", ["", "12가", "ABC1234", "12가34567", "가123456"])
def test_a_malformed_plate_is_refused_not_found(sandbox: Sandbox, plate: str) -> None:
    assert not is_plate(plate)
    with pytest.raises(RegistryRefused) as refused:
        sandbox.registry().lookup(plate, TODAY)

    assert (refused.value.status, refused.value.code) == (400, "invalid_request")


def test_the_worked_example_of_the_contract_signs_as_documented() -> None:
    body = '{"plate":"12가3456","on":"2025-11-20"}'.encode()

    signature = sign(bytes.fromhex("00112233445566778899aabbccddeeff" * 2), "1764051669", body)

    assert signature == "3e5336f4c1b5e42c5ad1f625c59acd105a7b1d0ba82bbed204ff581406bfeda9"


def test_a_wrong_base_url_is_refused_and_never_reads_as_no_owner(sandbox: Sandbox) -> None:
    with pytest.raises(RegistryRefused) as refused:
        HttpRegistry(RegistrySettings(f"{sandbox.url}/wrong", KEY)).lookup("12가3456", TODAY)

    assert (refused.value.status, refused.value.code) == (404, "not_found")


def test_a_stopped_registry_is_unavailable(tmp_path: Path) -> None:
    box = Sandbox(tmp_path).start()
    assert box.registry().lookup("12가3456", TODAY) is not None

    box.stop()

    with pytest.raises(RegistryUnavailable):
        box.registry(timeout=2.0).lookup("12가3456", TODAY)


def test_neither_the_sandbox_log_nor_ours_names_an_owner(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    registry = sandbox.registry()
    owners = [registry.lookup(plate, TODAY) for plate in ("12가3456", "78라1234", "34나5678")]
    assert all(owners)

    logs = sandbox.log_path.read_text(encoding="utf-8", errors="replace") + caplog.text

    assert "POST /v1/lookups" in logs
    for owner in owners:
        assert owner is not None
        assert owner.name not in logs
        assert owner.plate not in logs
        for secret in (owner.rrn, owner.business_no, owner.address.line1):
            assert secret is None or secret not in logs


# --- answers outside the contract (no sandbox: the registry's faults are an edge we do not own) ---------------------


_GOOD: dict[str, Any] = {
    "plate": "12가3456",
    "on": "2025-11-20",
    "vehicle": {"type": "car", "registered_on": "2019-04-02"},
    "owner": {
        "kind": "person",
        "name": "김민준",
        "rrn": "850314-1234567",
        "business_no": None,
        "address": {"postal_code": "06236", "line1": "서울특별시 강남구 테헤란로 152", "line2": ""},
        "since": "2019-04-02",
    },
}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"code": "maintenance"}),
        (200, {**_GOOD, "plate": "12가3457"}),
        (200, {**_GOOD, "vehicle": {"type": "bus"}}),
        (200, {**_GOOD, "owner": {**_GOOD["owner"], "kind": "company"}}),
        (200, {**_GOOD, "owner": {**_GOOD["owner"], "since": "2026-01-01"}}),
        (200, {**_GOOD, "owner": None}),
        (200, ["not", "an", "object"]),
    ],
    ids=["5xx", "other-plate", "unknown-type", "company-with-rrn", "owner-since-after-date", "no-owner", "not-object"],
)
def test_a_5xx_or_an_answer_outside_the_contract_is_unavailable_and_quotes_no_personal_data(
    status: int, body: object
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    with httpx.Client(transport=transport) as client:
        registry = HttpRegistry(RegistrySettings("http://registry.invalid", KEY), client=client)

        with pytest.raises(RegistryUnavailable) as unavailable:
            registry.lookup("12가3456", TODAY)

    assert "김민준" not in str(unavailable.value) and "850314" not in str(unavailable.value)


def test_the_well_formed_answer_of_the_same_fake_is_accepted() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=_GOOD))
    with httpx.Client(transport=transport) as client:
        owner = HttpRegistry(RegistrySettings("http://registry.invalid", KEY), client=client).lookup("12가3456", TODAY)

    assert owner is not None and owner.name == "김민준"


def test_plates_are_normalized_before_they_are_judged() -> None:
    assert normalize_plate(" 12가 3456\t") == "12가3456"
    assert is_plate("서울 12가 3456")
    assert is_plate("123가4567")
