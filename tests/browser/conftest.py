"""Fixtures of the browser tier: Debian's chromium driven by Playwright, at a phone's size, with axe-core.

phone   function  a Playwright page in a fresh context at 390 × 844 (an iPhone 12–14 in CSS pixels), Korean locale
axe     function  ``axe(page, name)``: saves a screenshot as a test artifact, then runs axe-core in the page and fails
                  on any serious or critical accessibility violation
gateway, server   function  the payment gateway sandbox, and a LiveServer paying through it (tests.support.story)

Chromium comes from Debian (``.ci/run`` installs it; ``JINGSU_CHROMIUM`` overrides the path), axe-core from the npm
registry (``make test`` installs it and passes ``JINGSU_AXE_JS``). Screenshots go under ``JINGSU_TEST_ARTIFACTS``
(default ``var/test-artifacts``) in ``browser/<test name>/``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.story import gateway, server  # noqa: F401  (fixtures: the gateway sandbox, a server using it)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("JINGSU_CHROMIUM", "/usr/bin/chromium"))
AXE_JS = Path(os.environ.get("JINGSU_AXE_JS", ROOT / "var/npm/axe-core-4.14.1/node_modules/axe-core/axe.min.js"))
ARTIFACTS = Path(os.environ.get("JINGSU_TEST_ARTIFACTS", ROOT / "var/test-artifacts")) / "browser"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # as root (CI) chromium's own sandbox cannot start; the pages we open are our own
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(  # bypass_csp: axe-core is injected as a script the pages' CSP would refuse
        viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True, locale="ko-KR", bypass_csp=True
    )
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def axe(request: pytest.FixtureRequest) -> Callable[[Any, str], list[dict[str, Any]]]:
    if not AXE_JS.exists():
        pytest.skip(f"no axe-core at {AXE_JS} (make test installs it from the npm registry)")
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    shots = iter(range(1, 100))

    def check(page: Any, name: str) -> list[dict[str, Any]]:
        page.screenshot(path=str(folder / f"{next(shots):02d}-{name}.png"), full_page=True)
        page.add_script_tag(path=str(AXE_JS))
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        violations: list[dict[str, Any]] = result["violations"]
        serious = [v for v in violations if v.get("impact") in ("serious", "critical")]
        (folder / f"axe-{name}.json").write_text(json.dumps(violations, ensure_ascii=False, indent=1))
        assert not serious, f"axe on {name} ({page.url}): " + "; ".join(
            f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}" for v in serious
        )
        return violations

    return check
