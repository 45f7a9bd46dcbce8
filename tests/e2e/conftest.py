"""End-to-end fixtures: on a failing test, the tails of the real processes' logs are added to the report."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        for system in getattr(item, "skymesh_systems", ()):
            report.sections.append((f"skymesh process logs ({report.when})", system.log_tails()))
