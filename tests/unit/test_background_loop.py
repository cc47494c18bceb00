"""The one background loop every job runs on (relay, SMS dispatcher, imports, reminders):
woken or polled, retried after a failed round, paused and stopped without waiting it out."""
import threading
import time

from hocvu.background import WakeableLoop


class Thread:
    """What the container's spawn_managed_thread returns, enough for the loop: wait()."""

    def __init__(self, target):
        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def wait(self):
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


def spawn(target, identifier):
    return Thread(target)


class FailingOnce(WakeableLoop):
    poll_seconds = 30.0  # only a wake or the retry can start a round within the test
    retry_seconds = 0.05

    def __init__(self):
        super().__init__()
        self.rounds = []
        self.failures = 0

    def run_once(self):
        self.rounds.append(time.monotonic())
        if len(self.rounds) == 1:
            raise ConnectionError("the store is away")
        return False

    def failed(self):
        self.failures += 1


def test_a_failed_round_is_reported_and_retried_after_the_retry_time_not_the_poll():
    loop = FailingOnce()
    loop.start(spawn)
    loop.wake()
    deadline = time.monotonic() + 5
    while len(loop.rounds) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    assert len(loop.rounds) == 2 and loop.failures == 1


class Pausing(WakeableLoop):
    poll_seconds = 0.01

    def __init__(self):
        super().__init__()
        self.paused = threading.Event()

    def run_once(self):
        self.paused.set()
        self.pause(60)  # a long backoff inside a round
        return True


def test_stopping_cuts_a_pause_short_and_ends_the_round():
    loop = Pausing()
    loop.start(spawn)
    assert loop.paused.wait(5)
    loop.stop()  # joins the thread, and fails if it is still pausing 10 s later (of 60)
    assert loop.stopping
