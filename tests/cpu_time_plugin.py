"""pytest plugin: the CPU seconds each test used, to keep every test under the ~20 s budget.

    IMER_CPU_REPORT=15 python -m pytest -q              # the 15 most expensive tests of the suite
    IMER_CPU_REPORT=40 python -m pytest -q tests/test_x.py

CPU time (user + system, all threads of the pytest process plus the child processes it
waited for) does not grow with the machine's load the way wall-clock time does, so it is
the figure the budget is about.  Set-up and tear-down count (a module fixture is charged to
the first test that uses it).  Only reported, never asserted: speed belongs in benchmarks/.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Generator

import pytest

_CPU: dict[str, float] = {}


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    start = _cpu_seconds()
    yield
    _CPU[item.nodeid] = _cpu_seconds() - start


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The most expensive tests by CPU seconds (``IMER_CPU_REPORT`` = how many)."""
    if not _CPU:
        return
    count = int(os.environ.get("IMER_CPU_REPORT") or 15)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    terminalreporter.write_sep("=", f"CPU seconds per test (top {count}; load average now {load})")
    for nodeid, seconds in sorted(_CPU.items(), key=lambda kv: -kv[1])[:count]:
        terminalreporter.write_line(f"{seconds:8.1f}  {nodeid}")
    terminalreporter.write_line(f"{sum(_CPU.values()):8.1f}  all {len(_CPU)} tests")
