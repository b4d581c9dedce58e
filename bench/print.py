"""``python -m bench.print``: citizen documents (issue 6), each figure beside a baseline measured in the same run.

- A4 notices/s: ``printing.a4.render_documents_pdf`` of N 부과 고지서 (window envelope, vector QR, embedded font)
  into ONE PDF; baseline: the very same pages with the QR left out (``Pen.qr`` patched to do nothing), so the
  ratio is the QR's share of the page cost. Target (DESIGN.md §9): ≥ 150/s.
- ESC/POS: ``printing.field.render_document_escpos`` of the 현장 사전통지 (80 and 58 mm) and the 80 mm 영수증, ms per
  job; baseline: CP949-encoding the same printed text (the floor of any ESC/POS renderer). Target: ≤ 5 ms.
- memory of a print run: how much the peak Python allocation (tracemalloc, untimed runs of N and 2N pages) grows
  per page, beside the PDF bytes per page: reportlab holds each finished page until it writes the file.

Ends with one machine-readable line: ``a4_per_s=… baseline_a4_per_s=… escpos_ms=… …``.

    python -m bench.print [--pages 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from unittest import mock

TARGETS = {"a4_per_s": 150.0, "escpos_ms": 5.0}
QR_TEXT = "http://127.0.0.1:5000/p/111102600000012?a=40000&r=32000&d=20261209&s=ARSEEJOQ3QFKWGCT"


def samples() -> dict[str, Any]:
    """One of each document, with realistic lengths (built here: bench imports nothing from tests)."""
    from printing.documents import (
        Addressee,
        Allocation,
        Authority,
        Facts,
        ImpositionNotice,
        PaymentInfo,
        PersonNotice,
        Receipt,
    )
    from protocol import payment_number

    authority = Authority(
        name="서울특별시 종로구청",
        head="서울특별시 종로구청장",
        department="주차관리과",
        address="서울특별시 종로구 삼봉로 43",
        postal_code="03153",
        phone="02-2148-1114",
    )
    payment = PaymentInfo(
        payment_no=payment_number.build(agency=11110, kind=2, year=2026, item=41, serial=12),
        bank_name="우리은행",
        account_no="1005-123-456789",
        account_holder="서울특별시 종로구",
        qr_text=QR_TEXT,
    )
    owner = Addressee(
        name="홍길동",
        address="서울특별시 종로구 종로 1, 101동 1001호 (종로동, 종로아파트)",
        postal_code="03154",
        rrn="900101-1876543",
    )
    facts = Facts(
        notice_no="111102600000012",
        violation_code="P01",
        violation_name="일반도로 주정차위반",
        observed_at=datetime(2026, 11, 25, 5, 3, tzinfo=UTC),
        place="서울특별시 종로구 세종대로 175 세종문화회관 앞",
        legal_basis="도로교통법 제32조, 제160조제3항",
        plate="12가3456",
        vehicle_type="car",
    )
    imposition = ImpositionNotice(
        document_no="주차관리과-2026-000000",
        issued_on=date(2026, 12, 20),
        authority=authority,
        addressee=owner,
        facts=facts,
        amount=40_000,
        due_date=date(2027, 2, 18),
        payment=payment,
        payment_methods=("전자납부번호(인터넷·모바일·은행)", "가상계좌", "QR코드", "신용·체크카드"),
        collector="시금고 우리은행 (전국 지점)",
        surcharge_percent=Decimal("3"),
        monthly_surcharge_percent=Decimal("1.2"),
        monthly_surcharge_max_months=60,
        measures=("재산 압류 등 체납처분", "관허사업 제한", "신용정보 제공", "감치", "자동차 등록번호판 영치"),
        objection_days=60,
        amount_after_due=41_200,
    )
    person = PersonNotice(
        authority=authority,
        offender=owner,
        facts=replace(facts, violation_code="S01", violation_name="금연구역 흡연", plate=None, vehicle_type=None),
        amount=100_000,
        reduced_amount=80_000,
        opinion_deadline=date(2026, 12, 9),
        hardship_reduction_percent=50,
        payment=payment,
        issued_at=datetime(2026, 11, 25, 5, 4, tzinfo=UTC),
        officer_name="김단속",
    )
    receipt = Receipt(
        receipt_no="R-2027-0000123",
        authority=authority,
        payer_name="홍길동",
        notice_no="111102600000012",
        revenue_item="과태료 (주정차위반)",
        paid_at=datetime(2027, 3, 12, 1, 30, tzinfo=UTC),
        method="가상계좌 입금 (우리은행)",
        amount_paid=30_000,
        allocations=(Allocation(head="가산금", amount=1_200), Allocation(head="과태료", amount=28_800)),
        balance=11_200,
        payment=payment,
    )
    return {"imposition": imposition, "person": person, "receipt": receipt}


def notices(template: Any, count: int) -> Iterator[Any]:
    """``count`` distinct notices (document number and QR differ), made lazily like a print run's query."""
    for n in range(count):
        payment = replace(template.payment, qr_text=f"{QR_TEXT[:-4]}{n:04d}")
        yield replace(template, document_no=f"주차관리과-2026-{n:06d}", payment=payment)


def per_call(fn: Callable[[], object], repeat: int = 5, number: int = 200) -> float:
    """Seconds per call, the median of ``repeat`` runs of ``number`` calls."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number)
    return statistics.median(runs)


def bench_a4(pages: int) -> dict[str, float]:
    from printing.a4 import render_documents_pdf
    from printing.pdf import Pen

    template = samples()["imposition"]
    render_documents_pdf(notices(template, 5))  # warm up: font registration, glyph widths
    ours, baseline, size = [], [], 0
    for _ in range(3):  # interleaved, best of three each: the machine is shared and noisy
        start = time.perf_counter()
        size = len(render_documents_pdf(notices(template, pages)))
        ours.append(pages / (time.perf_counter() - start))
        with mock.patch.object(Pen, "qr", lambda *args, **kwargs: None):
            start = time.perf_counter()
            render_documents_pdf(notices(template, pages))
            baseline.append(pages / (time.perf_counter() - start))

    peaks = []
    for count in (pages, 2 * pages):  # the slope between two run sizes: fixed costs (font subsets) cancel out
        tracemalloc.start()
        render_documents_pdf(notices(template, count))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return {
        "a4_per_s": max(ours),
        "baseline_a4_per_s": max(baseline),
        "a4_ratio": max(ours) / max(baseline),
        "pdf_kb_per_page": size / pages / 1024,
        "peak_kb_per_page": (peaks[1] - peaks[0]) / pages / 1024,
    }


def bench_escpos() -> dict[str, float]:
    from printing.escpos_reader import read_escpos
    from printing.field import render_document_escpos

    docs = samples()
    person, receipt = docs["person"], docs["receipt"]
    text = "\n".join(read_escpos(render_document_escpos(person, 80)).lines)
    return {
        "escpos_ms": per_call(lambda: render_document_escpos(person, 80)) * 1000,
        "escpos_58_ms": per_call(lambda: render_document_escpos(person, 58)) * 1000,
        "escpos_receipt_ms": per_call(lambda: render_document_escpos(receipt, 80)) * 1000,
        "escpos_baseline_ms": per_call(lambda: text.encode("cp949")) * 1000,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m bench.print", description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300, help="A4 notices per merged PDF (default 300)")
    args = parser.parse_args(argv)

    print("citizen documents: A4 print run …", file=sys.stderr, flush=True)
    results = bench_a4(args.pages)
    print("citizen documents: ESC/POS …", file=sys.stderr, flush=True)
    results.update(bench_escpos())
    r = results
    rows = [
        ("A4 부과 고지서 → one PDF", f"{r['a4_per_s']:.0f} /s", f"{r['baseline_a4_per_s']:.0f} /s (same page, no QR)",
         f"{r['a4_ratio']:.2f}×", f"≥ {TARGETS['a4_per_s']:.0f} /s"),
        ("ESC/POS 사전통지 80 mm", f"{r['escpos_ms']:.3f} ms", f"{r['escpos_baseline_ms']:.4f} ms (CP949 encode)",
         f"{r['escpos_ms'] / r['escpos_baseline_ms']:.0f}×", f"≤ {TARGETS['escpos_ms']:.0f} ms"),
        ("ESC/POS 사전통지 58 mm", f"{r['escpos_58_ms']:.3f} ms", "", "", f"≤ {TARGETS['escpos_ms']:.0f} ms"),
        ("ESC/POS 영수증 80 mm", f"{r['escpos_receipt_ms']:.3f} ms", "", "", f"≤ {TARGETS['escpos_ms']:.0f} ms"),
        ("print run memory", f"+{r['peak_kb_per_page']:.1f} KB/page peak", f"{r['pdf_kb_per_page']:.1f} KB/page output",
         "", "bounded by the output"),
    ]  # fmt: skip
    headers = ("benchmark", "ours", "baseline (same run)", "ratio", "target (DESIGN §9)")
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    for n, row in enumerate([headers, *rows]):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))
    keys = ("a4_per_s", "baseline_a4_per_s", "escpos_ms", "escpos_58_ms", "escpos_receipt_ms", "pdf_kb_per_page",
            "peak_kb_per_page")  # fmt: skip
    print(" ".join(f"{key}={r[key]:.0f}" if key.endswith("per_s") else f"{key}={r[key]:.2f}" for key in keys))
    return results


if __name__ == "__main__":
    main()
