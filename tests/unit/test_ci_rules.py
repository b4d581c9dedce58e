"""The CI rule (tests/ci_rules.py): under CI=true a skipped or xfail test fails the run; locally it does not."""

from __future__ import annotations

import pytest

SUITE = """
import pytest

def test_runs():
    assert True

def test_needs_a_browser():
    pytest.skip("no chromium here")
"""

XFAIL_SUITE = """
import pytest

def test_runs():
    assert True

@pytest.mark.xfail(reason="known bug", strict=False)
def test_known_bug():
    assert False
"""


def run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(test_suite=source)
    return pytester.runpytest_inprocess("-p", "tests.ci_rules")


def test_a_skipped_test_fails_the_run_under_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    result = run(pytester, SUITE)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*CI rule: no skips*", "*test_suite.py::test_needs_a_browser (skipped)*"])


def test_an_xfail_test_fails_the_run_under_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    result = run(pytester, XFAIL_SUITE)
    result.assert_outcomes(passed=1, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_suite.py::test_known_bug (xfailed)*"])


def test_a_module_skipped_at_collection_fails_the_run_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_other="def test_runs():\n    assert True\n")
    result = run(pytester, "import pytest\npytest.importorskip('no_such_module_here')\n")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_suite.py (skipped at collection)*"])


def test_skips_are_only_reported_outside_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = run(pytester, SUITE)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    assert "CI rule" not in result.stdout.str()


def test_a_clean_run_passes_under_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    result = run(pytester, "def test_runs():\n    assert True\n")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
