"""`make run` keeps its parts running as systemd (`Restart=on-failure`) and Kubernetes do in
production: a part that exits is started again, after 1 s, then 2, 4, 8... up to 30 s while
it keeps exiting; one that ran for a minute since its last start begins again at 1 s. Each
exit and restart is one line on the launcher's terminal, with the end of the part's log."""
import sys
import time
from dataclasses import dataclass
from typing import Callable

from hocvu import backoff
from hocvu_tools.devstack.processes import Process

FIRST_DELAY_SECONDS = 1.0
LONGEST_DELAY_SECONDS = 30.0
STEADY_SECONDS = 60.0  # a run this long forgets earlier exits


@dataclass
class _Watched:
    process: Process
    started_at: float
    exits_in_a_row: int = 0
    restart_at: float | None = None  # when it is due to start again, once it has exited


class Supervisor:
    def __init__(self, processes: list[Process], on_restart: Callable[[], None] = lambda: None,
                 out=None, clock=time.monotonic):
        self._clock = clock
        self._out = out or sys.stderr
        self._on_restart = on_restart  # e.g. record the new process ids
        self._watched = [_Watched(process, clock()) for process in processes]
        self.restarts = 0

    def check(self) -> None:
        """One look at every part: note the ones that exited, start the ones that are due."""
        now = self._clock()
        for watched in self._watched:
            process = watched.process
            if watched.restart_at is None:
                if process.alive():
                    continue
                if now - watched.started_at >= STEADY_SECONDS:
                    watched.exits_in_a_row = 0
                watched.exits_in_a_row += 1
                delay = backoff.exponential(watched.exits_in_a_row, LONGEST_DELAY_SECONDS,
                                            first=FIRST_DELAY_SECONDS)
                watched.restart_at = now + delay
                self._say(f"\n{process.name} exited with code {process.popen.returncode}; "
                          f"starting it again in {delay:.0f} s (exit {watched.exits_in_a_row} in "
                          f"a row). The end of {process.log_path}:\n{process.log_tail(15)}")
            elif now >= watched.restart_at:
                process.start()
                watched.started_at, watched.restart_at = now, None
                self.restarts += 1
                self._say(f"{process.name} started again (pid {process.pid})")
                self._on_restart()

    def run(self, interval: float = 0.5) -> None:
        """Watch until interrupted (Ctrl-C, SIGTERM: the launcher's signal handlers)."""
        while True:
            self.check()
            time.sleep(interval)

    def _say(self, line: str) -> None:
        print(line, file=self._out, flush=True)
