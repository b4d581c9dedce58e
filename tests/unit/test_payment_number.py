"""printing.payment_number: the 19-digit 전자납부번호 (LAW.md §3), built, parsed, checked and grouped for print.

The layout follows the one published sample (5-1-2-2-9); the check digit is our provisional Luhn (mod 10).
"""

from __future__ import annotations

import pytest

from protocol import payment_number
from protocol.payment_number import LAYOUT, LENGTH, InvalidPaymentNumberError, PaymentNumber

NUMBER = payment_number.build(agency="11110", kind=2, year=2026, item=41, serial=12)


def test_build_joins_the_segments_and_appends_the_check_digit() -> None:
    assert NUMBER == "111102264100000012" + payment_number.check_digit("111102264100000012")
    assert len(NUMBER) == LENGTH == 19 == sum(segment.width for segment in LAYOUT)
    assert payment_number.build(agency=11110, kind=2, year=26, item=41, serial="00000012") == NUMBER


def test_parse_splits_a_number_into_its_segments_with_or_without_separators() -> None:
    parts = payment_number.parse(NUMBER)
    assert parts == PaymentNumber(agency="11110", kind="2", year="26", item="41", serial="00000012", check=NUMBER[-1])
    assert parts.digits == NUMBER
    assert payment_number.parse(payment_number.format(NUMBER)) == parts
    assert payment_number.parse(" ".join([NUMBER[:5], NUMBER[5:10], NUMBER[10:]])) == parts


def test_format_groups_the_digits_like_the_published_sample() -> None:
    assert payment_number.format(NUMBER) == f"11110-2-26-41-00000012{NUMBER[-1]}"
    assert [len(group) for group in payment_number.format(NUMBER).split("-")] == [5, 1, 2, 2, 9]


def test_the_check_digit_is_luhn_mod_10() -> None:
    # the classic Luhn example 7992739871 → 3; leading zeros do not change a Luhn sum
    assert payment_number.check_digit("00000000" + "7992739871") == "3"
    assert payment_number.check_digit("0" * 18) == "0"


def test_every_single_digit_error_is_caught() -> None:
    for position in range(LENGTH):
        for digit in "0123456789":
            if digit == NUMBER[position]:
                continue
            wrong = NUMBER[:position] + digit + NUMBER[position + 1 :]
            assert not payment_number.check(wrong), wrong


def test_adjacent_transpositions_are_caught_except_09_and_90() -> None:
    number = payment_number.build(agency=48310, kind=2, year=23, item=41, serial=51066499)
    for position in range(LENGTH - 1):
        a, b = number[position], number[position + 1]
        if a == b or {a, b} == {"0", "9"}:
            continue
        swapped = number[:position] + b + a + number[position + 2 :]
        assert not payment_number.check(swapped), swapped


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (NUMBER[:-1], "must be 19 digits, got 18"),
        (NUMBER + "0", "must be 19 digits, got 20"),
        (NUMBER[:-1] + "X", "must be digits"),
        ("", "must be 19 digits, got 0"),
        ("１" * 19, "must be digits"),  # full-width digits are not ASCII digits
    ],
)
def test_parse_refuses_a_wrong_length_or_a_non_digit(text: str, message: str) -> None:
    with pytest.raises(InvalidPaymentNumberError) as raised:
        payment_number.parse(text)
    assert raised.value.field == "payment_no"
    assert message in str(raised.value)
    assert not payment_number.check(text)


def test_parse_refuses_a_wrong_check_digit_and_names_the_expected_one() -> None:
    wrong = NUMBER[:-1] + str((int(NUMBER[-1]) + 1) % 10)
    with pytest.raises(InvalidPaymentNumberError, match=f"expected {NUMBER[-1]}"):
        payment_number.parse(wrong)
    with pytest.raises(InvalidPaymentNumberError):
        payment_number.format(wrong)  # a number that fails its check is never printed


@pytest.mark.parametrize(
    ("segments", "field"),
    [
        ({"agency": 123456}, "agency"),
        ({"agency": "1111"}, "agency"),
        ({"kind": 12}, "kind"),
        ({"year": -1}, "year"),
        ({"item": "4a"}, "item"),
        ({"serial": 10**8}, "serial"),
        ({"serial": True}, "serial"),
    ],
)
def test_build_names_the_segment_that_does_not_fit(segments: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"agency": 11110, "kind": 2, "year": 26, "item": 41, "serial": 1}
    values.update(segments)
    with pytest.raises(InvalidPaymentNumberError) as raised:
        payment_number.build(**values)  # type: ignore[arg-type]
    assert raised.value.field == field


def test_check_never_raises() -> None:
    assert payment_number.check(NUMBER)
    assert not payment_number.check("not a number")
    assert not payment_number.check(None)  # type: ignore[arg-type]
