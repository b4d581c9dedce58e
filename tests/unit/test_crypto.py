"""Personal data at rest (models/crypto.py): AES-GCM values, keyed lookup hashes and the masks screens show."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from models.crypto import PiiCipher
from protocol.masking import mask_name, mask_plate, mask_rrn

PII_KEY = "11" * 32
LOOKUP_KEY = "22" * 32
OFFENDER = {"name": "홍길동", "birth_date": "1990-01-01", "rrn": "900101-1234567", "address": "서울특별시 종로구"}


@pytest.fixture
def cipher() -> PiiCipher:
    return PiiCipher(PII_KEY, LOOKUP_KEY)


def test_bytes_round_trip_through_encryption(cipher):
    blob = cipher.encrypt("홍길동".encode(), context=b"111102600000012")
    assert cipher.decrypt(blob, context=b"111102600000012") == "홍길동".encode()


def test_json_with_korean_text_round_trips(cipher):
    assert cipher.decrypt_json(cipher.encrypt_json(OFFENDER, context=b"n"), context=b"n") == OFFENDER
    assert cipher.open_text(cipher.seal_text(OFFENDER)) == OFFENDER


def test_the_ciphertext_holds_no_plaintext_and_differs_every_time(cipher):
    plaintext = b"900101-1234567"
    first, second = cipher.encrypt(plaintext), cipher.encrypt(plaintext)
    assert first != second
    assert plaintext not in first and plaintext not in second
    assert first[:1] == b"\x01"  # version byte, then a 12-byte nonce
    assert first[1:13] != second[1:13]


def test_another_key_cannot_decrypt(cipher):
    blob = cipher.encrypt(b"secret")
    with pytest.raises(InvalidTag):
        PiiCipher("12" * 32, LOOKUP_KEY).decrypt(blob)


def test_another_context_cannot_decrypt(cipher):
    blob = cipher.encrypt(b"secret", context=b"111102600000012")
    with pytest.raises(InvalidTag):
        cipher.decrypt(blob, context=b"116802600012348")


def test_a_tampered_ciphertext_is_refused(cipher):
    blob = bytearray(cipher.encrypt(b"secret"))
    blob[-1] ^= 0x01
    with pytest.raises(InvalidTag):
        cipher.decrypt(bytes(blob))


@pytest.mark.parametrize("blob", [b"", b"\x02" + b"\x00" * 40])
def test_an_unknown_ciphertext_version_is_refused(cipher, blob):
    with pytest.raises(ValueError):
        cipher.decrypt(blob)


@pytest.mark.parametrize("key", ["11" * 16, "11" * 33, ""])
def test_a_personal_data_key_that_is_not_32_bytes_is_refused(key):
    with pytest.raises(ValueError):
        PiiCipher(key, LOOKUP_KEY)


@pytest.mark.parametrize("key", ["", "22" * 16, "22" * 31])
def test_a_lookup_key_shorter_than_32_bytes_is_refused(key):
    with pytest.raises(ValueError):
        PiiCipher(PII_KEY, key)


def test_the_lookup_hash_is_stable_and_ignores_the_dash_of_an_rrn(cipher):
    assert cipher.lookup_hash("900101-1234567") == cipher.lookup_hash("9001011234567")
    assert cipher.lookup_hash("900101-1234567") == PiiCipher(PII_KEY, LOOKUP_KEY).lookup_hash("900101-1234567")
    assert cipher.lookup_hash(" 900101 - 1234567 ") == cipher.lookup_hash("9001011234567")
    assert len(cipher.lookup_hash("9001011234567")) == 32


def test_the_lookup_hash_normalises_case(cipher):
    assert cipher.lookup_hash("m12345678") == cipher.lookup_hash("M12345678")


def test_the_lookup_hash_tells_different_values_apart(cipher):
    assert cipher.lookup_hash("900101-1234567") != cipher.lookup_hash("900101-1234568")


def test_the_lookup_hash_depends_on_the_lookup_key(cipher):
    assert cipher.lookup_hash("9001011234567") != PiiCipher(PII_KEY, "33" * 32).lookup_hash("9001011234567")


@pytest.mark.parametrize(
    ("name", "masked"),
    [("홍길동", "홍*동"), ("김철", "김*"), ("남궁민수", "남**수"), ("김", "김"), (" 홍길동 ", "홍*동"), ("", "")],
)
def test_a_name_is_masked_but_for_its_first_and_last_characters(name, masked):
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("rrn", "masked"),
    [
        ("900101-1234567", "900101-1******"),
        ("9001011234567", "900101-1******"),
        ("020304-4123456", "020304-4******"),
        ("12345", "*****"),  # not an RRN: nothing of it is shown
        ("900101-123456", "*************"),
    ],
)
def test_an_rrn_shows_only_the_birth_date_and_the_gender_digit(rrn, masked):
    assert mask_rrn(rrn) == masked


@pytest.mark.parametrize(
    ("plate", "masked"),
    [("12가3456", "12가34**"), ("123가4567", "123가45**"), (" 12가3456 ", "12가34**"), ("12", "**"), ("", "")],
)
def test_a_plate_hides_its_last_two_characters(plate, masked):
    assert mask_plate(plate) == masked
