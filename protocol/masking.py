"""Masking of personal data for display and print (DESIGN.md §7): names, 주민등록번호 and plates, the same on the
server, in documents and on the device."""

from __future__ import annotations


def mask_name(name: str) -> str:
    """A name where the person may not be the reader: the first and last characters kept, the middle as ``*``
    (``홍길동`` → ``홍*동``, ``남궁민수`` → ``남**수``); two characters keep the first (``홍길`` → ``홍*``), one
    stays."""
    name = name.strip()
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_rrn(rrn: str) -> str:
    """900101-1234567 → 900101-1******; anything that is not 13 digits becomes all ``*``."""
    digits = "".join(ch for ch in rrn if ch.isdigit())
    if len(digits) != 13:
        return "*" * len(rrn)
    return f"{digits[:6]}-{digits[6]}******"


def mask_plate(plate: str) -> str:
    """12가3456 → 12가34**: the citizen page shows no more than this."""
    plate = plate.strip()
    if len(plate) <= 2:
        return "*" * len(plate)
    return plate[:-2] + "**"
