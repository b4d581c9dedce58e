"""``make bench``: the benchmarks that exist so far, each beside a baseline measured in the same run.

The machines are shared and noisy, so every figure is reported with its baseline and their ratio. Ends with one
machine-readable line.

- ESC/POS slip: ``render_escpos`` vs encoding the same slip text to CP949 (the floor of any ESC/POS renderer)
- A4 PDF notices: ``render_pdf`` pages/s vs a reportlab page with one line of text per page
- device issuance: ``pda_client.device.issue`` (number, amounts, QR, chain, one durable SQLite transaction) vs a bare
  durable SQLite insert of the same event text

Then the citizen documents (``bench/print.py``, also ``python -m bench.print``: A4 notices into one PDF vs the same
pages without QR, ESC/POS 사전통지 and 영수증), with their own table and machine-readable line.

Then the sync path over HTTP (``bench/sync.py``, also ``python -m bench.sync``: push ingestion vs PostgreSQL COPY of
the same rows, empty pulls), with its own table and machine-readable line, which ends the output; ``python -m bench
--no-sync`` leaves it out.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path


def best_of(fn: Callable[[], object], repeat: int = 5, number: int = 50) -> float:
    """Seconds per call, the median of ``repeat`` runs of ``number`` calls."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number)
    return statistics.median(runs)


def slip():  # type: ignore[no-untyped-def]
    from printing.slip import Slip

    return Slip(
        notice_no="111102600000012",
        kind="parking",
        violation_code="P01",
        violation_name="일반 주정차 위반",
        amount=40000,
        reduced_amount=32000,
        opinion_deadline=date(2026, 12, 9),
        observed_at=datetime(2026, 11, 25, 5, 3, tzinfo=UTC),
        place="서울특별시 종로구 세종대로 175",
        plate="12가3456",
        vehicle_type="car",
        office_name="서울특별시 종로구",
        office_address="서울특별시 종로구 삼봉로 43",
        officer_name="김단속",
        qr_text="http://127.0.0.1:5000/p/111102600000012?a=40000&r=32000&d=20261209&s=ARSEEJOQ3QFKWGCT",
    )


def bench_escpos() -> dict[str, float]:
    from printing.escpos import render_escpos
    from printing.escpos_reader import read_escpos

    s = slip()
    text = "\n".join(read_escpos(render_escpos(s)).lines)
    escpos = best_of(lambda: render_escpos(s), number=200)
    baseline = best_of(lambda: text.encode("cp949"), number=200)
    return {"escpos_ms": escpos * 1000, "escpos_baseline_ms": baseline * 1000, "escpos_ratio": escpos / baseline}


def bench_pdf(pages: int = 300) -> dict[str, float]:
    import io

    from reportlab.pdfgen.canvas import Canvas

    from printing.pdf import render_pdf

    slips = [slip()] * pages

    def plain() -> None:
        canvas = Canvas(io.BytesIO())
        for n in range(pages):
            canvas.drawString(72, 720, f"notice {n}")
            canvas.showPage()
        canvas.save()

    start = time.perf_counter()
    render_pdf(slips, layout="a4")
    ours = pages / (time.perf_counter() - start)
    start = time.perf_counter()
    plain()
    baseline = pages / (time.perf_counter() - start)
    return {"pdf_pages_per_s": ours, "pdf_baseline_pages_per_s": baseline, "pdf_ratio": ours / baseline}


def bench_issuance(count: int = 300) -> dict[str, float]:
    import sqlite3

    import protocol
    from pda_client import device as dev
    from pda_client.store import Store

    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home))
        with store.transaction():
            store.put("enrollment", {"server_url": "http://x", "device_id": "d", "device_secret": "s",
                                     "qr_key": "3f" * 32, "pay_base_url": "http://127.0.0.1:5000",
                                     "jurisdiction": "11110"})  # fmt: skip
            store.put("officer", {"id": 1, "name": "김단속", "login": "officer.11110.1"})
            store.upsert_reference(
                "violation_code", "P01", {"code": "P01", "name": "일반 주정차 위반", "kind": "parking"}
            )
            store.upsert_reference("fine_schedule", "P01:car:-@2008-06-22", {
                "code": "P01", "vehicle_type": "car", "amount": 40000, "reduction_rate": "0.20", "rounding_unit": 10,
                "opinion_days": 14, "valid_from": "2008-06-22"})  # fmt: skip
            expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
            store.conn.execute("INSERT INTO blocks VALUES ('1', '11110', '26', 1, 500, ?, 0)", (expires,))
            store.conn.execute("INSERT INTO blocks VALUES ('2', '11110', '26', 501, 1000, ?, 0)", (expires,))
        cmd = dev.IssueCommand(code="P01", place="서울특별시 종로구 세종대로 175", plate="12가3456")
        start = time.perf_counter()
        for _ in range(count):
            dev.issue(store, cmd)
        ours = (time.perf_counter() - start) / count
        body = store.outbox()[0].body
        store.close()

        conn = sqlite3.connect(Path(home) / "base.sqlite3", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, body TEXT, hash TEXT)")
        start = time.perf_counter()
        for n in range(count):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?, ?, ?)", (n, body, protocol.event_hash(json.loads(body))))
            conn.execute("COMMIT")
        baseline = (time.perf_counter() - start) / count
        conn.close()
    return {"issue_ms": ours * 1000, "issue_baseline_ms": baseline * 1000, "issue_ratio": ours / baseline}


def main() -> None:
    results: dict[str, float] = {}
    for name, fn in (("ESC/POS slip", bench_escpos), ("A4 PDF", bench_pdf), ("device issuance", bench_issuance)):
        print(f"{name} …", file=sys.stderr, flush=True)
        results.update(fn())
    rows = [
        ("ESC/POS slip", f"{results['escpos_ms']:.3f} ms", f"{results['escpos_baseline_ms']:.4f} ms (CP949 encode)",
         f"{results['escpos_ratio']:.0f}×", "≤ 5 ms"),
        ("A4 PDF notices", f"{results['pdf_pages_per_s']:.0f} pages/s",
         f"{results['pdf_baseline_pages_per_s']:.0f} pages/s (plain page)", f"{results['pdf_ratio']:.2f}×",
         "≥ 150 pages/s"),
        ("device issuance", f"{results['issue_ms']:.2f} ms", f"{results['issue_baseline_ms']:.2f} ms (bare insert)",
         f"{results['issue_ratio']:.1f}×", "≤ 20 ms"),
    ]  # fmt: skip
    headers = ("benchmark", "ours", "baseline (same run)", "ratio", "target (DESIGN §9)")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for n, row in enumerate([headers, *rows]):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print(" ".join(f"{k}={v:.3f}" for k, v in results.items()))
    print("citizen documents (bench/print.py) …", file=sys.stderr, flush=True)
    from bench import print as print_bench

    print()
    print_bench.main([])
    if "--no-sync" not in sys.argv[1:]:
        print("sync over HTTP (bench/sync.py) …", file=sys.stderr, flush=True)
        from bench import sync as sync_bench

        print()
        sync_bench.main([])


if __name__ == "__main__":
    main()
