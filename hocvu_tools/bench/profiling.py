"""Sampling profiles of the real processes while a workload runs (py-spy, from outside: the
services run unmodified). Each profile is kept as py-spy's raw folded stacks, and summed up
as the functions holding the largest share of samples."""
import subprocess
from collections import Counter
from pathlib import Path

from hocvu_tools.devstack.processes import BIN

# frames every thread of a process has; they say nothing about where the time goes
_EVERYWHERE = ("_bootstrap", "_bootstrap_inner", "run (threading.py", "<module>", "main (",
               "_run_code", "_run_module_as_main", "green", "hub", "switch", "wait (eventlet",
               "fire_timers", "run (eventlet")


# top frames of a thread that waits rather than works
_WAITING = ("do_poll", "select (selectors", "_recv_exactly", "readinto", "Condition.wait",
            "_send_loop", "_recv_loop", "wait (threading", "acquire", "sleep")


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
    """Where a process's busy samples went: functions on the stack at all (inclusive), at
    its top (self) and, for the store, the command being served. A sample whose top frame
    waits (for the event loop, a socket or a lock) is counted as waiting, not as work."""
    inclusive, own, commands = Counter(), Counter(), Counter()
    samples = busy = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames, n = stack.split(";"), int(count)
        samples += n
        if any(marker in frames[-1] for marker in _WAITING):
            continue
        busy += n
        own[frames[-1]] += n
        for frame in set(frames):
            if not any(marker in frame for marker in _EVERYWHERE):
                inclusive[frame] += n
        commands[_store_command(frames)] += n

    def rows(counter):
        return [[round(100 * n / max(1, busy), 1), name]
                for name, n in counter.most_common(top) if name]

    return {"samples": samples, "busy_share": round(100 * busy / max(1, samples), 1),
            "inclusive": rows(inclusive), "self": rows(own), "store_commands": rows(commands)}


def _store_command(frames: list[str]) -> str:
    """The store's handler below its command dispatcher (SecantusDB), e.g. `_update`."""
    for position, frame in enumerate(frames[:-1]):
        if frame.startswith("dispatch (secantus/commands.py"):
            following = [f.split(" (")[0] for f in frames[position + 1:position + 3]]
            return " > ".join(following)
    return ""
