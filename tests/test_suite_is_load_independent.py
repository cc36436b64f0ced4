"""The test suite itself: no fixed network ports, no wall-clock speed assertions.

Tests run on shared, loaded machines (load averages of 13-26 on 2 cores were seen), and
several may run at once.  A fixed port collides with another run; an assertion that
something finished within a short time fails when the CPU is busy.  Speed belongs in
``benchmarks/`` (printed with the load average).  Upper time bounds that only detect a
hang are allowed when they are generous (at least ``MIN_HANG_BOUND_S``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
MIN_HANG_BOUND_S = 10.0

FIXED_PORT = re.compile(r"""(?:master_port|MASTER_PORT|port)["']?\s*[,=:]\s*["']?(\d{3,5})\b""")
# "<clock>() - t0 < 1.0" or "elapsed < 0.5" inside an assert: an upper bound on elapsed time
ELAPSED_BOUND = re.compile(r"(?:time\.(?:monotonic|perf_counter|time)\(\)\s*-\s*\w+|\belapsed\w*|\btook\w*)"
                           r"\s*<=?\s*([\d.]+)")
TIMING_MEDIAN = re.compile(r"median\(\s*timings")


def offending_lines(text: str) -> list[str]:
    """Lines of a test module that use a fixed port or bound a wall-clock duration tightly."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        if FIXED_PORT.search(code):
            found.append(f"{number}: fixed port: {line.strip()}")
        if "assert" in code:
            for match in ELAPSED_BOUND.finditer(code):
                if float(match.group(1)) < MIN_HANG_BOUND_S:
                    found.append(f"{number}: wall-clock bound {match.group(1)} s: {line.strip()}")
            if TIMING_MEDIAN.search(code):
                found.append(f"{number}: timing assertion: {line.strip()}")
    return found


def test_the_checker_catches_what_it_should():
    assert offending_lines('cmd = ["--master_port", "29533"]')
    assert offending_lines("assert time.monotonic() - t0 < 1.0  # prompt")
    assert offending_lines("assert float(np.median(timings)) < 0.05, timings")
    assert not offending_lines("assert time.monotonic() - t0 < 60.0  # a hang, not a speed, check")
    assert not offending_lines("assert time.monotonic() - t0 >= 0.09")
    assert not offending_lines('cmd = ["--standalone"]')


def test_no_test_uses_a_fixed_port_or_a_tight_wall_clock_bound():
    problems = {path.name: offending_lines(path.read_text(encoding="utf-8"))
                for path in sorted(TESTS.glob("*.py")) if path.name != Path(__file__).name}
    problems = {name: lines for name, lines in problems.items() if lines}
    assert not problems, problems


def test_a_hanging_test_fails_instead_of_holding_the_suite(tmp_path, pytestconfig):
    """pytest-timeout is configured and active: a test stuck past the limit fails with its stack."""
    assert float(pytestconfig.getini("timeout")) >= 60      # the suite's setting: a hang bound, not a speed bound
    (tmp_path / "test_stuck.py").write_text("import time\n\ndef test_stuck():\n    time.sleep(600)\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=2",
                           str(tmp_path / "test_stuck.py")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Timeout" in done.stdout and "test_stuck" in done.stdout, done.stdout
