"""pytest plugin: under ``CI=true`` a skipped or xfail-marked test fails the run.

A skip in CI means a test that could not run there — a missing service, package or browser — and would otherwise
pass unnoticed. Locally skips stay skips. The root conftest registers this plugin; load it elsewhere with
``-p tests.ci_rules``.
"""

from __future__ import annotations

import os

import pytest

_PLUGIN_NAME = "jingsu-ci-rules"


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


class CiRules:
    """Counts skips (collection and test level) and xfail outcomes; fails the session at the end under CI."""

    def __init__(self) -> None:
        self.offenders: list[str] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:
            self.offenders.append(f"{report.nodeid or '<collection>'} (skipped at collection)")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
            self.offenders.append(f"{report.nodeid} ({outcome})")
        elif report.skipped:
            self.offenders.append(f"{report.nodeid} (skipped)")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if _ci() and self.offenders and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not (_ci() and self.offenders):
            return
        terminalreporter.section("CI rule: no skips", sep="=", red=True, bold=True)
        terminalreporter.line(
            f"CI=true and {len(self.offenders)} test(s) skipped or xfail: this run FAILS. "
            "Install what they need in .ci/run, or fix or delete them."
        )
        for offender in self.offenders:
            terminalreporter.line(f"  {offender}")


def pytest_configure(config: pytest.Config) -> None:
    # one instance per config, so that an inner pytester run counts its own reports
    if not config.pluginmanager.has_plugin(_PLUGIN_NAME):
        config.pluginmanager.register(CiRules(), _PLUGIN_NAME)
