"""Nudges between instances (hocvu.nudges) against real RabbitMQ, and the SMS dispatcher
woken through them: work stored by an instance that does not hold the dispatcher's lease is
sent by the one that does, without waiting for its poll."""
import threading
import uuid

import eventlet
import pytest

from hocvu.nudges import Nudges
from services.notifications import domain, repository, templates
from services.notifications.dispatcher import DispatchLoop
from services.notifications.providers import SimulatorProvider
from tests.support.sms import Clock, local, sms_settings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def spawn(run, identifier=None):
    return eventlet.spawn(run)


@pytest.fixture
def instances(amqp_uri):
    """Two instances' nudges of one service, each consuming from its own queue."""
    service = f"test-{uuid.uuid4().hex[:8]}"
    started = []

    def start() -> Nudges:
        nudges = Nudges(amqp_uri, service)
        thread = eventlet.spawn(nudges.consume)
        started.append((nudges, thread))
        return nudges

    yield start
    for nudges, thread in started:
        nudges.stop()
        thread.wait()


def listening(nudges: Nudges, job: str) -> threading.Event:
    woken = threading.Event()
    nudges.on(job, woken.set)
    return woken


def test_a_nudge_wakes_its_job_in_every_instance_and_nothing_else(instances):
    first, second = instances(), instances()
    assert first.listening.wait(15) and second.listening.wait(15)
    first_woken, second_woken = listening(first, "dispatcher"), listening(second, "dispatcher")
    other = listening(second, "dispatcher-sign-in-codes")
    assert first.send("dispatcher")
    assert first_woken.wait(10) and second_woken.wait(10)  # the sender's own instance too
    assert first.send("x" * 101)  # longer than any job: ignored by all
    assert first.send("unknown")  # a job this process does not run: ignored
    eventlet.sleep(0.5)
    assert not other.is_set()
    assert (first.sent, first.received, second.received) == (3, 1, 1)


def test_a_nudge_to_a_broker_that_is_away_is_dropped_not_raised():
    nowhere = Nudges("amqp://guest:guest@127.0.0.1:9/", "test-away")
    assert nowhere.send("dispatcher") is False  # the owner's poll finds the work instead
    nowhere.stop()


def confirmation(n: int) -> domain.Wanted:
    return domain.Wanted(templates.ENROLLMENT_CONFIRMED, f"enrollment_confirmed:enr-{n}",
                         f"lrn-{n}", f"enr-{n}", {"full_name": "Lò Thị Mai",
                                                  "course_title": "Kỹ năng số"}, f"corr-{n}",
                         {"province_code": "38", "commune_code": "14845"})


def test_a_standby_instance_nudges_the_owner_which_sends_at_once(
        instances, start_gateway, notifications_store):
    db, clock = notifications_store.db, Clock(local(2026, 12, 7, 8, 0))
    gateway = start_gateway()
    # an hour between polls: only a nudge can make the owner send within the test
    settings = sms_settings(SMS_GATEWAY_URL=gateway, SMS_SIMULATOR_RATE_PER_SECOND=1_000,
                            SMS_POLL_SECONDS=3600)
    owner_nudges, standby_nudges = instances(), instances()
    loops = []
    for nudges in (owner_nudges, standby_nudges):
        loop = DispatchLoop(db.messages, SimulatorProvider(settings), settings, clock=clock,
                            lanes=domain.LANE_ORDER[1:])
        nudges.on(loop.owner.job, loop.nudged)
        loop.nudge = nudges.send
        loops.append(loop)
    owner, standby = loops
    assert owner.owner.hold() and not standby.owner.hold()
    assert owner_nudges.listening.wait(15) and standby_nudges.listening.wait(15)
    for loop in loops:
        loop.start(spawn, "notifications")
    try:
        db.contacts.insert_one({"_id": "lrn-1", "phone": "+84912000001"})
        message = repository.create_many(db, [confirmation(1)], clock(), True)[0]
        standby.wake()  # as the standby's worker does once it stored the message
        wait_for(lambda: repository.view(db, message["_id"])["status"] == domain.ACCEPTED,
                 what="the standby's message sent by the owner")
        assert standby_nudges.sent == 1 and owner_nudges.sent == 0
        # the owner wakes itself for work it stored: no nudge
        db.contacts.insert_one({"_id": "lrn-2", "phone": "+84912000002"})
        message = repository.create_many(db, [confirmation(2)], clock(), True)[0]
        owner.wake()
        wait_for(lambda: repository.view(db, message["_id"])["status"] == domain.ACCEPTED,
                 what="the owner's own message sent")
        assert owner_nudges.sent == 0
    finally:
        for loop in loops:
            loop.stop()
