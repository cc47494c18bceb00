"""`make test`: the whole suite in two pytest processes side by side, then one closing line
with the totals of both. One runs the tests that start a whole platform of processes (the
fault scenarios, the end-to-end journeys, the benchmark's smoke run, the browser tests), the
other everything else (unit and integration tests).

Those platforms mostly wait (on the broker, the stores, learners' journeys), so running the
two halves side by side took a fresh clone's `make test` from about 27 minutes to 18.5 on
2 cores (README). pytest-xdist cannot do it: the tests monkey-patch eventlet, which
deadlocks the I/O thread of its workers.

With arguments (`make test PYTEST_ARGS=...`), one pytest runs them as given.
"""
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from hocvu_tools.devstack.processes import BIN, PORT_SHARE

PYTEST = str(BIN / "pytest")
PLATFORMS = "faults or e2e or bench or browser"
# pytest's closing line: "=== 3 failed, 850 passed, 2 skipped, 3 deselected in 1000.00s ==="
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")


def counts(closing_line: str) -> dict[str, int]:
    found = {}
    for number, word in _COUNT.findall(closing_line):
        key = "errors" if word.startswith("error") else word
        found[key] = found.get(key, 0) + int(number)
    return found


def closing_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("=") and " in " in line]
    return lines[-1] if lines else ""


def run_halves() -> int:
    """Both halves at once: the rest shown as it runs, the platforms' output (kept in a file)
    after it, then the totals of both."""
    handle, log_path = tempfile.mkstemp(prefix="hocvu-test-platforms-", suffix=".log")
    log = Path(log_path)
    try:
        with os.fdopen(handle, "w") as platforms_log:
            platforms = subprocess.Popen([PYTEST, "-m", PLATFORMS], stdin=subprocess.DEVNULL,
                                         stdout=platforms_log, stderr=subprocess.STDOUT,
                                         env=_with_port_share(0))
        rest = subprocess.Popen([PYTEST, "-m", f"not ({PLATFORMS})"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=_with_port_share(1))
        shown = []
        for line in rest.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            shown.append(line)
        codes = [rest.wait(), platforms.wait()]
        print(f"\n{'=' * 20} the tests on whole platforms, run beside the rest {'=' * 20}",
              flush=True)
        platforms_text = log.read_text()
        print(platforms_text, flush=True)
    finally:
        log.unlink(missing_ok=True)
    total: dict[str, int] = {}
    for text in ("".join(shown), platforms_text):
        for key, number in counts(closing_line(text)).items():
            total[key] = total.get(key, 0) + number
    failed = total.get("failed", 0) + total.get("errors", 0)
    ok = all(code == 0 for code in codes)
    if not ok and not failed:
        failed = 1  # a half that ended without a closing line (killed, or it found no test)
    print(f"\ntotal: {total.get('passed', 0)} passed, {failed} failed, "
          f"{total.get('skipped', 0)} skipped", flush=True)
    return 0 if ok else 1


def _with_port_share(share: int) -> dict:
    """The environment of one half: its own half of the free ports (processes.free_port)."""
    return {**os.environ, PORT_SHARE: f"{share}/2"}


def main(argv: list[str]) -> int:
    if argv:
        return subprocess.call([PYTEST, *argv], stdin=subprocess.DEVNULL)
    return run_halves()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
