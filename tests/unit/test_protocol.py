"""The pure protocol rules (protocol/) against the worked examples of PROTOCOL.md §2, §3 and §5."""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

import protocol
from protocol import (
    GENESIS_HASH,
    NoticeNo,
    QrPayload,
    ScheduleRow,
    compute_amounts,
    event_hash,
    format_notice_no,
    luhn_check_digit,
    opinion_deadline,
    parse_notice_no,
    parse_qr_url,
    qr_signature,
    qr_url,
    reduced_amount,
    schedule_key,
    select_schedule,
    verify_qr,
)

KST = timezone(timedelta(hours=9))
QR_KEY = "3f" * 32
PAY_BASE = "https://pay.jingsu.example"
EXAMPLE_SIG = "ARSEEJOQ3QFKWGCT"
EXAMPLE_URL = f"{PAY_BASE}/p/111102600000012?a=40000&r=32000&d=20261209&s={EXAMPLE_SIG}"


def luhn_valid(number: str) -> bool:
    """Textbook Luhn validation of a full number (check digit last), written apart from the code under test."""
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


# --- notice numbers (§2) ------------------------------------------------------------------------------------------

NOTICE_EXAMPLES = [
    # (jurisdiction, year2, serial, notice number)
    ("11110", "26", 1, "111102600000012"),
    ("11680", "26", 1234, "116802600012348"),
]


@pytest.mark.parametrize(("jurisdiction", "year2", "serial", "number"), NOTICE_EXAMPLES)
def test_the_protocol_examples_format_to_their_notice_numbers(jurisdiction, year2, serial, number):
    assert format_notice_no(jurisdiction, year2, serial) == number


@pytest.mark.parametrize(("jurisdiction", "year2", "serial", "number"), NOTICE_EXAMPLES)
def test_the_protocol_examples_parse_back_to_their_parts(jurisdiction, year2, serial, number):
    assert parse_notice_no(number) == NoticeNo(jurisdiction=jurisdiction, year2=year2, serial=serial)
    assert str(parse_notice_no(number)) == number


@pytest.mark.parametrize(("payload", "check"), [("11110260000001", "2"), ("11680260001234", "8"), ("0", "0")])
def test_the_luhn_digit_doubles_from_the_rightmost_digit_of_the_payload(payload, check):
    assert luhn_check_digit(payload) == check
    assert luhn_valid(payload + check)


@pytest.mark.parametrize(
    ("jurisdiction", "year2", "serial"),
    [("11110", "26", 0), ("11110", 26, 9_999_999), ("11740", "05", 500), ("11000", "99", 4_321_987)],
)
def test_every_formatted_number_is_luhn_valid_and_parses_back(jurisdiction, year2, serial):
    number = format_notice_no(jurisdiction, year2, serial)
    assert len(number) == 15 and number.isascii() and number.isdigit()
    assert luhn_valid(number)
    assert parse_notice_no(number) == NoticeNo(jurisdiction, f"{int(year2):02d}", serial)


def test_a_year_given_as_one_digit_is_zero_padded():
    assert format_notice_no("11110", 5, 1)[5:7] == "05"


@pytest.mark.parametrize(
    ("jurisdiction", "serial"), [("1111", 1), ("111100", 1), ("1111a", 1), ("11110", -1), ("11110", 10_000_000)]
)
def test_formatting_refuses_a_bad_jurisdiction_or_a_serial_beyond_seven_digits(jurisdiction, serial):
    with pytest.raises(ValueError):
        format_notice_no(jurisdiction, "26", serial)


@pytest.mark.parametrize("number", [number for *_, number in NOTICE_EXAMPLES])
def test_changing_any_single_digit_of_a_notice_number_fails_the_check(number):
    for position in range(15):
        for digit in "0123456789":
            if digit == number[position]:
                continue
            changed = number[:position] + digit + number[position + 1 :]
            assert parse_notice_no(changed) is None, changed


@pytest.mark.parametrize(
    "value",
    [
        "11110260000001",  # 14 digits
        "1111026000000120",  # 16 digits
        "",
        "11111026000001 2",
        "11110260000001a",
        "-11110260000001",
        " 111102600000012",
        "111102600000012 ",
        "111102600000012\n",  # 16 characters: a trailing newline is not a digit
        "１１１１０２６００００００１２",  # full-width digits
        "١١١١٠٢٦٠٠٠٠٠٠١٢",  # Arabic-Indic digits
        None,
        111102600000012,
        b"111102600000012",
    ],
)
def test_anything_but_fifteen_ascii_digits_is_not_a_notice_number(value):
    assert parse_notice_no(value) is None


# --- amounts and deadlines (§2) -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "rate", "unit", "expected"),
    [
        (40_000, "0.20", 10, 32_000),  # PROTOCOL.md / P01 car
        (50_000, "0.20", 10, 40_000),  # P01 van, P02 car
        (60_000, "0.20", 10, 48_000),  # P02 van
        (80_000, "0.20", 10, 64_000),  # P03 car before 2021-05-11, P04, P05
        (90_000, "0.20", 10, 72_000),
        (120_000, "0.20", 10, 96_000),  # P03 car from 2021-05-11
        (130_000, "0.20", 10, 104_000),
        (100_000, "0.20", 10, 80_000),  # S01
        (12_345, "0.20", 10, 9_870),  # 9,876 truncated to 10 won, never rounded up
        (12_349, "0.20", 10, 9_870),  # 9,879.2 still truncates
        (33_335, "0.15", 10, 28_330),  # 28,334.75
        (33_335, "0.15", 1_000, 28_000),
        (100, "0.9", 10, 10),  # float would give 9.999… and truncate to 0
        (40_000, "0.2000", 10, 32_000),  # as NUMERIC(5,4) comes back from the database
        (40_000, Decimal("0.20"), 10, 32_000),
        (40_000, "0", 10, 40_000),
        (40_000, "1", 10, 0),
    ],
)
def test_the_reduced_amount_is_exact_decimal_truncated_to_the_rounding_unit(amount, rate, unit, expected):
    assert reduced_amount(amount, rate, unit) == expected


@pytest.mark.parametrize("rate", ["-0.01", "1.01"])
def test_a_reduction_rate_outside_zero_to_one_is_refused(rate):
    with pytest.raises(ValueError):
        reduced_amount(40_000, rate, 10)


def test_a_rounding_unit_that_is_not_positive_is_refused():
    with pytest.raises(ValueError):
        reduced_amount(40_000, "0.20", 0)


@pytest.mark.parametrize(
    ("observed_at", "days", "deadline"),
    [
        ("2026-11-25T14:03:00+09:00", 14, date(2026, 12, 9)),  # the QR example's d=20261209
        ("2026-11-25T16:30:00+00:00", 14, date(2026, 12, 10)),  # UTC 25th is already the 26th in Seoul
        ("2026-11-25T14:59:59+00:00", 14, date(2026, 12, 9)),  # 23:59:59 in Seoul
        ("2026-11-25T15:00:00+00:00", 14, date(2026, 12, 10)),  # midnight in Seoul
        ("2026-11-25T23:30:00-05:00", 14, date(2026, 12, 10)),  # any offset is accepted
        ("2026-12-25T09:00:00+09:00", 14, date(2027, 1, 8)),  # across the year
        ("2028-02-20T12:00:00+09:00", 10, date(2028, 3, 1)),  # leap year
    ],
)
def test_the_opinion_deadline_counts_from_the_seoul_date_of_the_observation(observed_at, days, deadline):
    assert opinion_deadline(datetime.fromisoformat(observed_at), days) == deadline


def test_an_observation_time_without_an_offset_is_refused():
    with pytest.raises(ValueError):
        opinion_deadline(datetime(2026, 11, 25, 14, 3), 14)


def test_compute_amounts_prints_the_amount_the_reduced_amount_the_deadline_and_the_row_key():
    row = ScheduleRow("P01", 40_000, Decimal("0.20"), 10, 14, date(2008, 6, 22), vehicle_type="car")
    amounts = compute_amounts(row, datetime(2026, 11, 25, 14, 3, tzinfo=KST))
    assert amounts == protocol.Amounts(40_000, 32_000, date(2026, 12, 9), "P01:car:-@2008-06-22")


# --- fine schedule (§3) ---------------------------------------------------------------------------------------------

SINCE = date(2008, 6, 22)
SCHOOL_ZONE_RAISE = date(2021, 5, 11)


def row(code, amount, valid_from, valid_to=None, vehicle_type=None, zone=None, rate="0.20"):
    return ScheduleRow(code, amount, Decimal(rate), 10, 14, valid_from, valid_to, vehicle_type, zone)


DEMO_ROWS = [
    row("P01", 40_000, SINCE, vehicle_type="car"),
    row("P01", 50_000, SINCE, vehicle_type="van"),
    row("P03", 80_000, SINCE, SCHOOL_ZONE_RAISE, vehicle_type="car"),
    row("P03", 90_000, SINCE, SCHOOL_ZONE_RAISE, vehicle_type="van"),
    row("P03", 120_000, SCHOOL_ZONE_RAISE, vehicle_type="car"),
    row("P03", 130_000, SCHOOL_ZONE_RAISE, vehicle_type="van"),
    row("S01", 100_000, SINCE),
]


@pytest.mark.parametrize(
    ("code", "vehicle_type", "on", "amount"),
    [
        ("P03", "car", date(2021, 5, 10), 80_000),  # the last day of the old row
        ("P03", "car", date(2021, 5, 11), 120_000),  # valid_to is exclusive, valid_from inclusive
        ("P03", "van", date(2021, 5, 10), 90_000),
        ("P03", "van", date(2021, 5, 11), 130_000),
        ("P03", "car", date(2008, 6, 22), 80_000),
        ("P01", "car", date(2026, 11, 25), 40_000),
        ("P01", "van", date(2026, 11, 25), 50_000),
        ("S01", None, date(2026, 11, 25), 100_000),
    ],
)
def test_the_schedule_row_in_force_on_the_day_is_selected(code, vehicle_type, on, amount):
    selected = select_schedule(DEMO_ROWS, code, vehicle_type, None, on)
    assert selected is not None
    assert selected.amount == amount


@pytest.mark.parametrize(
    ("code", "vehicle_type", "on"),
    [
        ("P01", "car", date(2008, 6, 21)),  # before the first row
        ("P99", "car", date(2026, 11, 25)),  # unknown code
        ("P01", "truck", date(2026, 11, 25)),  # no row for this vehicle type and no code-only row
        ("P01", None, date(2026, 11, 25)),
    ],
)
def test_no_schedule_row_in_force_selects_nothing(code, vehicle_type, on):
    assert select_schedule(DEMO_ROWS, code, vehicle_type, None, on) is None


SPECIFIC_ROWS = [
    row("X01", 10_000, date(2024, 1, 1)),  # code alone, and the newest row
    row("X01", 20_000, date(2020, 1, 1), zone="Z1"),
    row("X01", 30_000, date(2020, 1, 1), vehicle_type="car"),
    row("X01", 40_000, date(2020, 1, 1), vehicle_type="car", zone="Z1"),
    row("X01", 99_000, date(2020, 1, 1), vehicle_type="van", zone="Z9"),
]


@pytest.mark.parametrize(
    ("vehicle_type", "zone", "amount"),
    [
        ("car", "Z1", 40_000),  # code + vehicle type + zone
        ("car", None, 30_000),  # code + vehicle type
        ("car", "Z2", 30_000),  # a row for another zone does not apply
        ("van", "Z1", 20_000),  # code + zone
        (None, "Z1", 20_000),
        ("van", None, 10_000),  # code alone
        ("van", "Z2", 10_000),
    ],
)
def test_the_most_specific_matching_schedule_row_wins(vehicle_type, zone, amount):
    selected = select_schedule(SPECIFIC_ROWS, "X01", vehicle_type, zone, date(2026, 11, 25))
    assert selected is not None
    assert selected.amount == amount


def test_a_less_specific_row_applies_where_the_more_specific_one_has_ended():
    rows = [
        row("X02", 10_000, date(2020, 1, 1)),
        row("X02", 30_000, date(2020, 1, 1), date(2025, 1, 1), vehicle_type="car"),
    ]
    assert select_schedule(rows, "X02", "car", None, date(2024, 12, 31)).amount == 30_000
    assert select_schedule(rows, "X02", "car", None, date(2025, 1, 1)).amount == 10_000


@pytest.mark.parametrize(
    ("code", "vehicle_type", "zone", "valid_from", "key"),
    [
        ("P01", "car", None, date(2021, 5, 11), "P01:car:-@2021-05-11"),
        ("S01", None, None, date(2008, 6, 22), "S01:-:-@2008-06-22"),
        ("P03", "van", "Z11110-001", date(2021, 5, 11), "P03:van:Z11110-001@2021-05-11"),
        ("P03", None, "Z11110-001", date(2021, 5, 11), "P03:-:Z11110-001@2021-05-11"),
    ],
)
def test_the_schedule_key_names_code_vehicle_type_zone_and_valid_from(code, vehicle_type, zone, valid_from, key):
    assert schedule_key(code, vehicle_type, zone, valid_from) == key
    assert row(code, 1, valid_from, vehicle_type=vehicle_type, zone=zone).key == key


def test_a_pulled_fine_schedule_change_becomes_the_same_rule_row():
    wire = {
        "code": "P03",
        "vehicle_type": "car",
        "amount": 80_000,
        "reduction_rate": "0.20",
        "rounding_unit": 10,
        "opinion_days": 14,
        "valid_from": "2008-06-22",
        "valid_to": "2021-05-11",
    }
    assert ScheduleRow.from_wire(wire) == DEMO_ROWS[2]
    open_ended = {k: v for k, v in wire.items() if k not in ("valid_to", "vehicle_type")}
    parsed = ScheduleRow.from_wire(open_ended)
    assert parsed.valid_to is None and parsed.vehicle_type is None and parsed.zone is None


# --- payment QR (§5) ------------------------------------------------------------------------------------------------


def test_the_qr_signature_matches_the_protocol_example():
    assert qr_signature(QR_KEY, "111102600000012", 40_000, 32_000, date(2026, 12, 9)) == EXAMPLE_SIG


def test_the_qr_signature_is_the_first_sixteen_base32_characters_of_the_hmac():
    import base64
    import hmac

    digest = hmac.new(QR_KEY.encode(), b"111102600000012|40000|32000|20261209", hashlib.sha256).digest()
    assert base64.b32encode(digest).decode()[:16] == EXAMPLE_SIG


@pytest.mark.parametrize("base", [PAY_BASE, PAY_BASE + "/"])
def test_the_qr_text_is_the_exact_payment_url(base):
    assert qr_url(base, QR_KEY, "111102600000012", 40_000, 32_000, date(2026, 12, 9)) == EXAMPLE_URL


def test_a_printed_qr_parses_back_to_its_signed_fields():
    assert parse_qr_url(EXAMPLE_URL) == QrPayload("111102600000012", 40_000, 32_000, date(2026, 12, 9), EXAMPLE_SIG)


def test_a_url_made_by_qr_url_round_trips_and_verifies():
    url = qr_url("https://pay.example/gu", QR_KEY, "116802600012348", 120_000, 96_000, date(2027, 1, 8))
    payload = parse_qr_url(url)
    assert payload is not None
    assert (payload.notice_no, payload.amount, payload.reduced_amount, payload.deadline) == (
        "116802600012348",
        120_000,
        96_000,
        date(2027, 1, 8),
    )
    assert verify_qr(QR_KEY, payload)


@pytest.mark.parametrize("sig", [EXAMPLE_SIG, EXAMPLE_SIG.lower(), "ArSeEjOq3qFkWgCt"])
def test_the_signature_is_compared_case_insensitively(sig):
    assert verify_qr(QR_KEY, QrPayload("111102600000012", 40_000, 32_000, date(2026, 12, 9), sig))


@pytest.mark.parametrize(
    "tampered",
    [
        {"notice_no": "116802600012348"},
        {"amount": 40_001},
        {"amount": 4_000},
        {"reduced_amount": 3_200},
        {"reduced_amount": 32_010},
        {"deadline": date(2026, 12, 10)},
        {"sig": "ARSEEJOQ3QFKWGCU"},
        {"sig": EXAMPLE_SIG[:15]},
        {"sig": EXAMPLE_SIG + "A"},
        {"sig": ""},
    ],
)
def test_a_tampered_field_fails_verification(tampered):
    fields = {
        "notice_no": "111102600000012",
        "amount": 40_000,
        "reduced_amount": 32_000,
        "deadline": date(2026, 12, 9),
        "sig": EXAMPLE_SIG,
    }
    assert not verify_qr(QR_KEY, QrPayload(**{**fields, **tampered}))


def test_another_devices_key_fails_verification():
    payload = parse_qr_url(EXAMPLE_URL)
    assert payload is not None
    assert not verify_qr("3e" * 32, payload)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a url",
        f"{PAY_BASE}/p/111102600000012",  # no query at all
        f"{PAY_BASE}/p/111102600000012?a=40000&r=32000&d=20261209",  # no signature
        f"{PAY_BASE}/p/111102600000012?r=32000&d=20261209&s={EXAMPLE_SIG}",  # no amount
        f"{PAY_BASE}/p/111102600000012?a=40000&d=20261209&s={EXAMPLE_SIG}",  # no reduced amount
        f"{PAY_BASE}/p/111102600000012?a=40000&r=32000&s={EXAMPLE_SIG}",  # no deadline
        f"{PAY_BASE}/p/111102600000012?a=40000&r=32000&d=20261209&s=",  # empty signature
        f"{PAY_BASE}/p/111102600000012?a=40000&r=32000&d=20261209&s={'A' * 65}",  # absurdly long signature
        f"{PAY_BASE}/p/111102600000012?a=-40000&r=32000&d=20261209&s={EXAMPLE_SIG}",
        f"{PAY_BASE}/p/111102600000012?a=4e4&r=32000&d=20261209&s={EXAMPLE_SIG}",
        f"{PAY_BASE}/p/111102600000012?a=40000.0&r=32000&d=20261209&s={EXAMPLE_SIG}",
        f"{PAY_BASE}/p/111102600000012?a=40000&r=&d=20261209&s={EXAMPLE_SIG}",
        f"{PAY_BASE}/p/111102600000012?a=40000&r=32000&d=2026129&s={EXAMPLE_SIG}",  # 7-digit date
        f"{PAY_BASE}/p/111102600000012?a=40000&r=32000&d=2026-12-09&s={EXAMPLE_SIG}",
        f"{PAY_BASE}/p/111102600000012?a=40000&r=32000&d=20261301&s={EXAMPLE_SIG}",  # no month 13
        f"{PAY_BASE}/p/111102600000012?a=40000&r=32000&d=20260230&s={EXAMPLE_SIG}",  # no 30 February
        f"{PAY_BASE}/p/111102600000012?a=40000&a=50000&r=32000&d=20261209&s={EXAMPLE_SIG}",  # ambiguous
        f"{PAY_BASE}/p/11110260000001?a=40000&r=32000&d=20261209&s={EXAMPLE_SIG}",  # 14-digit number
        f"{PAY_BASE}/p/1111026000001x?a=40000&r=32000&d=20261209&s={EXAMPLE_SIG}",
        f"{PAY_BASE}/p/111102600000012/x?a=40000&r=32000&d=20261209&s={EXAMPLE_SIG}",
        f"{PAY_BASE}/q/111102600000012?a=40000&r=32000&d=20261209&s={EXAMPLE_SIG}",
        f"{PAY_BASE}/p/111102600000012?a=４００００&r=32000&d=20261209&s={EXAMPLE_SIG}",  # full-width digits
        f"{PAY_BASE}/p/111102600000012?a=40000&r=٣٢٠٠٠&d=20261209&s={EXAMPLE_SIG}",  # Arabic-Indic digits
        f"{PAY_BASE}/p/111102600000012?a=40000&r=32000&d=２０２６１２０９&s={EXAMPLE_SIG}",
    ],
)
def test_a_malformed_payment_url_does_not_parse(text):
    assert parse_qr_url(text) is None


# --- the event hash chain (§2) --------------------------------------------------------------------------------------

# the canonical form written out by hand: keys sorted at every level, no spaces, Korean as UTF-8 (not \u escapes)
HAND_CANONICAL = (
    '{"data":{"place":{"address":"서울특별시 종로구 삼봉로 43"},"prev_hash":"' + "0" * 64 + '"},'
    '"event_id":"e-1","seq":1,"type":"notice.issued"}'
)
HAND_CANONICAL_SHA256 = "d3ea2679edfff16e7250210d46ea9538575a6e06f4eeafbbafbdad6e8383edb8"


def small_event() -> dict:
    return {
        "type": "notice.issued",
        "seq": 1,
        "event_id": "e-1",
        "data": {"prev_hash": GENESIS_HASH, "place": {"address": "서울특별시 종로구 삼봉로 43"}},
    }


def test_the_genesis_hash_is_sixty_four_zeros():
    assert GENESIS_HASH == "0" * 64


def test_the_event_hash_is_sha256_of_the_canonical_json_with_korean_unescaped():
    assert hashlib.sha256(HAND_CANONICAL.encode("utf-8")).hexdigest() == HAND_CANONICAL_SHA256
    assert protocol.canonical_json(small_event()) == HAND_CANONICAL.encode("utf-8")
    assert event_hash(small_event()) == HAND_CANONICAL_SHA256


def test_the_event_hash_does_not_depend_on_key_order():
    event = small_event()
    reordered = {key: event[key] for key in reversed(list(event))}
    reordered["data"] = {key: event["data"][key] for key in reversed(list(event["data"]))}
    assert event_hash(reordered) == event_hash(event)


def test_changing_any_part_of_an_event_changes_its_hash_and_so_the_next_link():
    first = small_event()
    second = {"type": "notice.voided", "seq": 2, "event_id": "e-2", "data": {"prev_hash": event_hash(first)}}
    altered = {**small_event(), "data": {**small_event()["data"], "place": {"address": "서울특별시 종로구 삼봉로 44"}}}
    assert event_hash(altered) != event_hash(first)
    assert second["data"]["prev_hash"] != event_hash(altered)
    assert len(event_hash(second)) == 64 and int(event_hash(second), 16) >= 0
