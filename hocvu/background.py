"""A service's background loop: wakes when told to, or every `poll_seconds`.

The outbox relay and the SMS dispatcher are both such loops: the worker that stored new
work wakes them at once; polling picks up what another process or a crash left behind.
"""
import logging
import threading

from hocvu import metrics

log = logging.getLogger(__name__)


class WakeableLoop:
    name = "background loop"
    poll_seconds = 1.0
    # once woken, wait this long for more work to arrive, and take it all in one round:
    # under load, a round per commit would cost the store a claim for one or two documents
    linger_seconds = 0.0
    # after a round failed (the store or broker away); poll_seconds when None
    retry_seconds = None

    service_name = ""  # the label of its rounds' metric; set by start()

    def __init__(self):
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = None

    def run_once(self) -> bool:
        """Do one round of work; return True if there may be more to do at once."""
        raise NotImplementedError

    def failed(self) -> None:
        """Called after a round raised (and was logged): a metric, say."""

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    def pause(self, seconds: float) -> None:
        """Wait within a round (a retry's backoff), cut short when the loop is stopped."""
        self._stopped.wait(seconds)

    def start(self, spawn, service_name: str | None = None) -> None:
        """`spawn` is the container's spawn_managed_thread."""
        self.service_name = service_name or self.service_name
        self._stopped.clear()
        self._thread = spawn(self._run, identifier=self.name)

    def stop(self, wait: bool = True) -> None:
        """Stop after the round under way (wait=True), or at once (wait=False: the
        container is being killed, and a round cut short is done again by whoever runs next)."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            if wait:
                self._thread.wait()
            else:
                self._thread.kill()

    def wake(self) -> None:
        self._wake.set()

    def _round(self) -> bool:
        metrics.background_round(self.service_name, self.name)
        return self.run_once()

    def _run(self) -> None:
        wait = self.poll_seconds
        while not self.stopping:
            woken = self._wake.wait(wait)
            if self.stopping:
                break  # woken to stop: the store may already be closing
            if woken and self.linger_seconds:
                self.pause(self.linger_seconds)
                if self.stopping:
                    break
            self._wake.clear()
            wait = self.poll_seconds
            try:
                while self._round() and not self.stopping:
                    pass
            except Exception:
                # the store or broker is away: the work stays stored and the next round retries
                wait = self.retry_seconds or self.poll_seconds
                log.exception("%s: round failed; retrying in %ss", self.name, wait)
                self.failed()
