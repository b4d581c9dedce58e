"""The simulator's text report: run, request and fault tables, the invariant table, and the summary line last."""

from __future__ import annotations

from fleet.invariants import InvariantReport
from fleet.run import SimResult
from pda_client.text import table


def render(result: SimResult | None, report: InvariantReport) -> str:
    """The throughput and fault tables (after a run), the invariant table, and the one-line summary last."""
    parts = []
    if result is not None:
        syncs = sum(d.syncs for d in result.devices)
        failed = sum(d.failed_syncs for d in result.devices)
        rate = result.events / result.elapsed_s if result.elapsed_s > 0 else 0.0
        parts.append(
            table(
                [
                    ("devices", len(result.devices)),
                    ("events", result.events),
                    ("seconds", f"{result.elapsed_s:.1f}"),
                    ("throughput (events/s)", f"{rate:.1f}"),
                    ("syncs (failed)", f"{syncs} ({failed})"),
                    ("seed", result.options.seed),
                ],
                ("run", "value"),
            )
        )
        log = result.log
        timings = [
            (
                name,
                log.requests[name],
                f"{log.seconds[name]:.1f}",
                f"{1000 * log.seconds[name] / log.requests[name]:.0f}",
            )
            for name in sorted(log.requests)
        ]
        parts.append(table(timings or [("-", 0, 0, 0)], ("request", "count", "seconds", "mean ms")))
        faults = sorted(result.log.counts.items())
        parts.append(table(faults or [("-", 0)], ("faults injected, results answered", "count")))
        problems = result.errors + result.log.anomalies
        if problems:
            parts.append("problems:\n" + "\n".join(f"  {p}" for p in problems))
    parts.append(
        table(
            [
                ("server notices", report.notices),
                ("of them voided", report.voided),
                ("spoiled numbers", report.spoiled),
                ("numbers allocated", report.allocated),
                ("  used (issued or spoiled)", report.used),
                ("  unused", report.allocated - report.used),
                ("money on receivables (won)", f"{report.money_on_receivables:,}"),
            ],
            ("ledger of the fleet", "value"),
        )
    )
    rows = []
    for check in report.checks:
        rows.append(("ok" if check.count == 0 else "FAIL", check.name, check.counter, check.count))
    parts.append(table(rows, ("", "invariant", "counts as", "count")))
    failures = [f"  {c.name}: {example}" for c in report.checks for example in c.examples]
    if failures:
        parts.append("examples:\n" + "\n".join(failures))
    parts.append(report.summary_line())
    return "\n\n".join(parts)
