"""A service's background loop: wakes when told to, or every `poll_seconds`.

The outbox relay and the SMS dispatcher are both such loops: the worker that stored new
work wakes them at once; polling picks up what another process or a crash left behind.
"""
import logging
import threading
import time

log = logging.getLogger(__name__)


class WakeableLoop:
    name = "background loop"
    poll_seconds = 1.0
    # once woken, wait this long for more work to arrive, and take it all in one round:
    # under load, a round per commit would cost the store a claim for one or two documents
    linger_seconds = 0.0

    def __init__(self):
        self._wake = threading.Event()
        self._stopping = False
        self._thread = None

    def run_once(self) -> bool:
        """Do one round of work; return True if there may be more to do at once."""
        raise NotImplementedError

    def start(self, spawn) -> None:
        """`spawn` is the container's spawn_managed_thread."""
        self._stopping = False
        self._thread = spawn(self._run, identifier=self.name)

    def stop(self, wait: bool = True) -> None:
        self._stopping = True
        self._wake.set()
        if wait and self._thread is not None:
            self._thread.wait()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            woken = self._wake.wait(self.poll_seconds)
            if self._stopping:
                break  # woken to stop: the store may already be closing
            if woken and self.linger_seconds and not self._stopping:
                time.sleep(self.linger_seconds)
            self._wake.clear()
            try:
                while self.run_once() and not self._stopping:
                    pass
            except Exception:
                # the store or broker is away: the work stays stored and the next round retries
                log.exception("%s: round failed; retrying in %ss", self.name, self.poll_seconds)
