"""Two instances of a service on one queue, against real RabbitMQ (classic and quorum
queues): the instance with the higher CONSUMER_PRIORITY gets every event while it keeps up,
and the other takes what the first cannot hold (hocvu.messaging)."""
import eventlet
import pytest
from eventlet.event import Event
from nameko.dependency_providers import Config

from hocvu.messaging import consumer_priority, subscribe_batch
from tests.integration.test_certificates_service import course_completed
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

HIGH, LOW = 20, 10


class Seen:
    """(priority, enrollment ids) of each batch, in this process."""
    batches: list[tuple[int, list[str]]] = []
    hold: Event | None = None  # the high instance waits on it after recording a batch


class PriorityRecorder:
    name = "priority_recorder"
    config = Config()

    # a batch of two at most: its queue lends an instance four unacknowledged events
    @subscribe_batch("lessons", "course_completed", max_batch=2, linger_ms=0)
    def record(self, events):
        priority = consumer_priority(self.config)
        Seen.batches.append((priority, [event.data["enrollment_id"] for event in events]))
        if priority == HIGH and Seen.hold is not None:
            Seen.hold.wait()  # busy: what it holds stays unacknowledged


@pytest.fixture(autouse=True)
def fresh():
    Seen.batches, Seen.hold = [], None


def handled_by(priority: int) -> list[str]:
    return [enrollment for who, ids in Seen.batches if who == priority for enrollment in ids]


def handled() -> list[str]:
    return handled_by(HIGH) + handled_by(LOW)


@pytest.fixture(params=["classic", "quorum"])
def two_instances(request, service_config, run_service):
    for priority in (LOW, HIGH):
        run_service(PriorityRecorder, service_config(
            "priority_recorder", QUEUE_TYPE=request.param, CONSUMER_PRIORITY=str(priority)))


def test_the_higher_priority_instance_takes_every_event_while_it_keeps_up(
        two_instances, pika_client):
    for n in range(12):
        pika_client.publish("lessons.events", "course_completed", course_completed(f"enr-{n}"))
        wait_for(lambda: len(handled()) == n + 1, what=f"event {n} handled")
    assert handled_by(HIGH) == [f"enr-{n}" for n in range(12)]
    assert handled_by(LOW) == []


def test_the_other_instance_takes_what_the_first_cannot_hold(two_instances, pika_client):
    Seen.hold = Event()
    try:
        for n in range(12):
            pika_client.publish("lessons.events", "course_completed",
                                course_completed(f"enr-{n}"))
        # the high instance holds four (its prefetch), busy; the rest go to the low one
        wait_for(lambda: len(handled_by(LOW)) == 8, what="the overflow handled")
        assert len(handled_by(HIGH)) <= 4
    finally:
        Seen.hold.send()
    wait_for(lambda: sorted(handled()) == sorted(f"enr-{n}" for n in range(12)),
             what="every event handled")
    eventlet.sleep(0.3)
    assert len(handled()) == 12  # and each once

