"""A broker connection that dies under a worker must not kill the service, and what a
queue consumer reports about itself (readiness, liveness) follows what it is doing."""
import time

import pytest

from hocvu import messaging
from hocvu.messaging import ConsumerHealth, ResilientQueueConsumer


class DeadChannelMessage:
    """A message whose connection the broker has just reset."""

    class channel:
        connection = object()

    def __init__(self, error: OSError):
        self.error = error
        self.tries = []

    def ack(self):
        self.tries.append("ack")
        raise self.error

    def requeue(self):
        self.tries.append("requeue")
        raise self.error


@pytest.mark.parametrize("error", [ConnectionResetError(104, "reset"), BrokenPipeError(32, "pipe"),
                                   TimeoutError("timed out")])
def test_acknowledging_on_a_dead_connection_is_left_to_redelivery(error, caplog):
    """The consumer tries once, says so, and leaves the message unacknowledged: the broker
    gives it to the next consumer once the connection is gone (redelivery and its handling
    are checked against a real broker in tests/integration/test_consumer_recovery.py)."""
    consumer = ResilientQueueConsumer()
    acked, requeued = DeadChannelMessage(error), DeadChannelMessage(error)
    consumer.ack_message(acked)
    consumer.requeue_message(requeued)
    assert acked.tries == ["ack"] and requeued.tries == ["requeue"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"could not acknowledge a message ({error!r}); the broker will "
                        "redeliver it",
                        f"could not requeue a message ({error!r}); the broker will redeliver it"]


def test_a_consumer_is_not_consuming_until_it_connects_and_after_it_loses_the_connection():
    health = ConsumerHealth("lessons")
    assert health.consuming_since is None
    health.consuming()
    assert health.consuming_since is not None and health.lost_at is None
    health.disconnected()
    assert health.consuming_since is None and health.lost_at is not None
    health.disconnected()  # each failed try to connect again
    health.consuming()
    assert health.consuming_since is not None and health.lost_at is None


def test_a_consumer_is_stalled_only_after_no_sign_of_life_for_the_stall_time(monkeypatch):
    health = ConsumerHealth("lessons")
    assert not health.stalled()
    health.progress_at = time.monotonic() - messaging.STALL_SECONDS - 1
    assert health.stalled()
    health.disconnected()  # a try at connecting is a sign of life
    assert not health.stalled()


class FakeThread:
    def __init__(self, dead: bool):
        self.dead = dead


def registered(service: str, consuming: bool, thread_dead: bool = False,
               silent_for: float = 0.0) -> ResilientQueueConsumer:
    consumer = ResilientQueueConsumer()
    consumer.health = ConsumerHealth(service)
    if consuming:
        consumer.health.consuming()
    consumer.health.progress_at = time.monotonic() - silent_for
    consumer._gt = FakeThread(thread_dead)
    messaging._consumers.add(consumer)
    return consumer


@pytest.fixture
def consumers():
    kept = []  # the registry holds them weakly
    yield lambda *args, **kwargs: kept.append(registered(*args, **kwargs)) or kept[-1]
    for consumer in kept:
        messaging._consumers.discard(consumer)


def test_readiness_of_consumers_is_per_service_and_needs_every_one_consuming(consumers):
    assert messaging.consumers_connected("reporting") is None  # consumes nothing
    consumers("reporting", consuming=True)
    single = consumers("reporting", consuming=False)
    consumers("lessons", consuming=True)
    assert messaging.consumers_connected("reporting") is False
    assert messaging.consumers_connected("lessons") is True
    single.health.consuming()
    assert messaging.consumers_connected("reporting") is True


def test_liveness_fails_only_for_a_dead_or_silent_consuming_thread(consumers):
    consumers("lessons", consuming=False, silent_for=60)  # reconnecting: can recover
    assert messaging.consumers_stuck("lessons") == []
    consumers("lessons", consuming=True, thread_dead=True)
    consumers("lessons", consuming=True, silent_for=messaging.STALL_SECONDS + 5)
    problems = messaging.consumers_stuck("lessons")
    assert len(problems) == 2
    assert "thread has ended" in problems[0] + problems[1]
    assert "no sign of life" in problems[0] + problems[1]
    assert messaging.consumers_stuck("reporting") == []
