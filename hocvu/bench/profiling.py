"""Sampling profiles of the real processes while a workload runs (py-spy, from outside: the
services run unmodified). Each profile is kept as py-spy's raw folded stacks, and summed up
as the functions holding the largest share of samples."""
import subprocess
from collections import Counter
from pathlib import Path

from hocvu.devstack.processes import BIN

# frames every thread of a process has; they say nothing about where the time goes
_EVERYWHERE = ("_bootstrap", "_bootstrap_inner", "run (threading.py", "<module>", "main (",
               "_run_code", "_run_module_as_main", "green", "hub", "switch", "wait (eventlet",
               "fire_timers", "run (eventlet")


class Profiler:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, pids: dict[str, int], seconds: int) -> None:
        for name, pid in pids.items():
            self.running[name] = subprocess.Popen(
                [str(BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(seconds),
                 "--format", "raw", "--nonblocking", "--output", str(self._file(name))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finish(self, top: int = 15) -> dict[str, dict]:
        """Wait for every profile and return, per process, its hottest functions."""
        summary = {}
        for name, process in self.running.items():
            process.wait(timeout=600)
            if self._file(name).exists():
                summary[name] = hottest(self._file(name).read_text(), top)
        return summary

    def _file(self, name: str) -> Path:
        return self.folder / f"{name}.folded"


def hottest(folded: str, top: int) -> dict:
    """Functions by their share of the samples: on the stack at all (inclusive), and at its
    top (self)."""
    inclusive, own, total = Counter(), Counter(), 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        frames = stack.split(";")
        own[frames[-1]] += int(count)
        for frame in set(frames):
            if not any(marker in frame for marker in _EVERYWHERE):
                inclusive[frame] += int(count)

    def rows(counter):
        return [[round(100 * n / total, 1), frame] for frame, n in counter.most_common(top)]

    return {"samples": total, "inclusive": rows(inclusive), "self": rows(own)}
