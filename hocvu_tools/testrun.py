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
import threading
from pathlib import Path

from hocvu_tools.devstack.processes import BIN

PYTEST = str(BIN / "pytest")
PLATFORMS = "faults or e2e or bench or browser"
HALVES = {"whole platforms": ["-m", PLATFORMS], "everything else": ["-m", f"not ({PLATFORMS})"]}
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


def _new_log() -> Path:
    handle, path = tempfile.mkstemp(prefix="hocvu-test-", suffix=".log")
    os.close(handle)
    return Path(path)


def run_halves(extra: list[str]) -> int:
    logs = {name: _new_log() for name in HALVES}
    processes = {}
    for name, selection in HALVES.items():
        output = None if name == "everything else" else open(logs[name], "w")
        processes[name] = subprocess.Popen(
            [PYTEST, *selection, *extra], stdin=subprocess.DEVNULL, stdout=output or
            subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # the rest is shown as it runs, and kept to be read; the platforms' log is shown at the end
    rest = processes["everything else"]
    kept = []

    def show():
        for line in rest.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            kept.append(line)

    shower = threading.Thread(target=show)
    shower.start()
    codes = {name: process.wait() for name, process in processes.items()}
    shower.join()
    texts = {"everything else": "".join(kept),
             "whole platforms": logs["whole platforms"].read_text()}
    print(f"\n{'=' * 20} the tests on whole platforms, run beside the rest {'=' * 20}",
          flush=True)
    print(texts["whole platforms"], flush=True)
    total: dict[str, int] = {}
    for name in HALVES:
        for key, number in counts(closing_line(texts[name])).items():
            total[key] = total.get(key, 0) + number
        logs[name].unlink(missing_ok=True)
    failed = total.get("failed", 0) + total.get("errors", 0)
    ok = all(code == 0 for code in codes.values())
    if not ok and not failed:
        failed = 1  # a half that ended without a closing line (killed, or it found no test)
    print(f"\ntotal: {total.get('passed', 0)} passed, {failed} failed, "
          f"{total.get('skipped', 0)} skipped", flush=True)
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    if argv:
        return subprocess.call([PYTEST, *argv], stdin=subprocess.DEVNULL)
    return run_halves([])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
