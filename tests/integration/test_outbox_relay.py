"""The change-stream relay against real RabbitMQ and SecantusDB: what it publishes, in which
order, where it resumes, and that one instance of a service relays at a time."""
import eventlet
import pymongo
import pytest

from hocvu.clock import utcnow
from hocvu.events import new_event
from hocvu.outbox import STATE_COLLECTION, ChangeStreamRelay, set_events, with_events
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

CERTIFICATES_QUEUE = "evt-lessons-course_completed--certificates.issue_certificate"
REMEMBER_LESSONS_QUEUE = "evt-lessons-lessons_assigned--notifications.remember_lessons"


def completed(enrollment_id: str, title: str) -> dict:
    return new_event("course_completed", {
        "enrollment_id": enrollment_id, "learner_id": "l", "course_id": "c",
        "course_title": title, "full_name": "Lê Văn A", "group": "citizen",
        "province_code": "38", "commune_code": "14845", "completed_at": utcnow()},
        correlation_id="order")


def assigned(enrollment_id: str) -> dict:
    return new_event("lessons_assigned", {
        "enrollment_id": enrollment_id, "learner_id": "l", "course_id": "c",
        "lesson_ids": ["a"], "assigned_at": utcnow()}, correlation_id="order")


def spawn(run, identifier=None):
    return eventlet.spawn(run)


@pytest.fixture
def lessons_db(service_config):
    config = service_config("lessons", OUTBOX_LEASE_SECONDS=2)
    client = pymongo.MongoClient(config["MONGO_URI"], tz_aware=True)
    db = client[config["MONGO_DATABASE"]]
    db.create_collection(STATE_COLLECTION)
    db.create_collection("plans")
    yield config, db
    client.close()


def new_relay(config, db) -> ChangeStreamRelay:
    relay = ChangeStreamRelay(db, "lessons", config)
    relay.mark_start()
    return relay


def owner_and_standby(config, db) -> tuple[ChangeStreamRelay, ChangeStreamRelay]:
    """Two relays of one service, started: the first holds the lease, the second waits."""
    first, second = new_relay(config, db), new_relay(config, db)
    first.start(spawn)
    wait_for(lambda: db[STATE_COLLECTION].find_one()["owner"] == first.owner, timeout=10,
             what="the first relay to take the lease")
    second.start(spawn)
    return first, second


def received(pika_client, count: int) -> list[str]:
    """Event ids from the queue, waiting until `count` came (and a moment for any extra)."""
    ids = []
    wait_for(lambda: ids.extend(e["event_id"] for e in pika_client.drain(CERTIFICATES_QUEUE))
             or len(ids) >= count, timeout=20, what=f"{count} events")
    eventlet.sleep(0.5)
    ids.extend(e["event_id"] for e in pika_client.drain(CERTIFICATES_QUEUE))
    return ids


def test_events_written_with_their_documents_are_published_once_in_commit_order(
        lessons_db, pika_client):
    config, db = lessons_db
    relay = new_relay(config, db)
    relay.start(spawn)
    try:
        first = [completed(f"enr-{n}", f"course {n}") for n in range(3)]
        db.plans.insert_many([with_events({"_id": f"enr-{n}"}, [event])
                              for n, event in enumerate(first)])
        later = completed("enr-0", "again")
        db.plans.update_one({"_id": "enr-0"}, set_events({"$set": {"x": 1}}, [later]))
        # a write that causes no event publishes nothing, though the document holds old ones
        db.plans.update_one({"_id": "enr-1"}, {"$set": {"x": 2}})
        assert received(pika_client, 4) == [e["event_id"] for e in (*first, later)]
    finally:
        relay.stop()


def test_a_relay_resumes_after_the_last_confirmed_event(lessons_db, pika_client):
    config, db = lessons_db
    relay = new_relay(config, db)
    relay.start(spawn)
    before = completed("enr-1", "before the stop")
    db.plans.insert_one(with_events({"_id": "enr-1"}, [before]))
    assert received(pika_client, 1) == [before["event_id"]]
    relay.stop()

    while_down = [completed(f"enr-{n}", "while the relay was down") for n in (2, 3)]
    db.plans.insert_many([with_events({"_id": e["data"]["enrollment_id"]}, [e])
                          for e in while_down])
    relay = new_relay(config, db)
    relay.start(spawn)
    try:
        assert received(pika_client, 2) == [e["event_id"] for e in while_down]
    finally:
        relay.stop()


def test_a_relay_whose_broker_connection_dropped_publishes_on_a_new_one(lessons_db,
                                                                      pika_client):
    """The broker closed the relay's connection (a restart): the next round opens a new
    one, declares the exchange and queues on it, and publishes what was waiting."""
    config, db = lessons_db
    relay = new_relay(config, db)
    relay.start(spawn)
    try:
        before = completed("enr-1", "before the drop")
        db.plans.insert_one(with_events({"_id": "enr-1"}, [before]))
        assert received(pika_client, 1) == [before["event_id"]]
        relay.publisher.connection.collect()  # its socket gone, as the broker's restart does
        after = completed("enr-2", "after the drop")
        db.plans.insert_one(with_events({"_id": "enr-2"}, [after]))
        assert received(pika_client, 1) == [after["event_id"]]
    finally:
        relay.stop()


def test_one_instance_relays_and_another_takes_over_when_it_stops(lessons_db, pika_client):
    config, db = lessons_db
    first, second = owner_and_standby(config, db)
    try:
        events = [completed(f"enr-{n}", "shared") for n in range(5)]
        for event in events:
            db.plans.insert_one(with_events({"_id": event["data"]["enrollment_id"]}, [event]))
        assert received(pika_client, 5) == [e["event_id"] for e in events]
        assert (first.published, second.published) == (5, 0)

        first.stop()  # hands the lease back: the standby takes over from the saved token
        after = completed("enr-9", "after the handover")
        db.plans.insert_one(with_events({"_id": "enr-9"}, [after]))
        assert received(pika_client, 1) == [after["event_id"]]
        assert second.published == 1
    finally:
        first.stop()
        second.stop()


def saved_token(db):
    return db[STATE_COLLECTION].find_one({"_id": "relay"})["resume_token"]


def test_no_resume_token_is_saved_for_events_the_broker_did_not_confirm(lessons_db,
                                                                         pika_client):
    """A publish that fails (no confirm: the broker is away, or answers nack) must leave the
    saved position where it was, so the next round publishes the event again; a relay that
    saved first would lose it."""
    config, db = lessons_db
    relay = new_relay(config, db)
    confirmed = relay.publisher.publish
    refused = []

    def no_confirm(*args, **kwargs):
        refused.append(kwargs.get("message_id"))
        raise ConnectionError("no confirm from the broker")

    relay.publisher.publish = no_confirm
    token = saved_token(db)
    relay.start(spawn)
    try:
        event = completed("enr-1", "unconfirmed")
        db.plans.insert_one(with_events({"_id": "enr-1"}, [event]))
        wait_for(lambda: len(refused) >= 2, timeout=20,
                 what="the relay trying the unconfirmed event again")
        assert saved_token(db) == token
        assert pika_client.drain(CERTIFICATES_QUEUE) == []

        relay.publisher.publish = confirmed  # the broker confirms again
        assert received(pika_client, 1) == [event["event_id"]]
        wait_for(lambda: saved_token(db) != token, timeout=10, what="the position saved")
    finally:
        relay.stop()


def test_a_standby_takes_over_when_the_owners_lease_runs_out(lessons_db, pika_client):
    """The owner dies without handing the lease back (killed: no clean stop); the standby
    waits for the lease (2 s here) to run out, then relays from the saved position: nothing
    written meanwhile is lost."""
    config, db = lessons_db
    first, second = owner_and_standby(config, db)
    before = completed("enr-1", "before the crash")
    db.plans.insert_one(with_events({"_id": "enr-1"}, [before]))
    assert received(pika_client, 1) == [before["event_id"]]
    first._thread.kill()  # as a crash: the lease is not handed back
    assert db[STATE_COLLECTION].find_one()["owner"] == first.owner
    try:
        while_dead = [completed(f"enr-{n}", "while its owner was dead") for n in (2, 3)]
        db.plans.insert_many([with_events({"_id": e["data"]["enrollment_id"]}, [e])
                              for e in while_dead])
        assert received(pika_client, 2) == [e["event_id"] for e in while_dead]
        assert db[STATE_COLLECTION].find_one()["owner"] == second.owner
        assert second.published == 2
    finally:
        second.stop()


def test_events_an_earlier_release_left_in_its_outbox_go_out_first(lessons_db, pika_client):
    config, db = lessons_db
    old = [completed(f"enr-{n}", "left pending") for n in range(2)]
    sent = completed("enr-7", "already sent")
    db.outbox.insert_many([
        {"_id": e["event_id"], "status": "pending", "created_at": utcnow(), "seq": n,
         "payload": e} for n, e in enumerate(old)] + [
        {"_id": sent["event_id"], "status": "sent", "created_at": utcnow(), "seq": 9,
         "payload": sent}])
    relay = new_relay(config, db)
    relay.start(spawn)
    try:
        assert received(pika_client, 2) == [e["event_id"] for e in old]
        assert db.outbox.count_documents({"status": "pending"}) == 0
    finally:
        relay.stop()


def test_an_event_nobody_is_bound_to_receive_waits_with_those_behind_it(lessons_db,
                                                                        pika_client, caplog):
    """An event whose only subscriber's queue was deleted (every event type has a
    subscriber, hocvu.contracts.SUBSCRIBERS): the broker routes it nowhere, so the relay
    keeps it, and the events behind it, until the queue is back; none is lost or
    reordered."""
    config, db = lessons_db
    relay = new_relay(config, db)
    relay.start(spawn)
    try:
        first = completed("enr-1", "before the queue goes")
        db.plans.insert_one(with_events({"_id": "enr-1"}, [first]))
        assert received(pika_client, 1) == [first["event_id"]]
        assert relay.published == 1

        # lessons_assigned has one subscriber: without its queue the broker routes it nowhere
        pika_client.channel.queue_delete(REMEMBER_LESSONS_QUEUE)
        stuck = [assigned(f"enr-{n}") for n in (2, 3)]
        for event in stuck:
            db.plans.insert_one(with_events({"_id": event["data"]["enrollment_id"]}, [event]))
        wait_for(lambda: "no queue is bound for lessons_assigned" in caplog.text, timeout=20,
                 what="the relay to find the event unroutable")
        assert relay.published == 1

        # the consumer comes back and declares its queue, as it does at every start
        pika_client.channel.queue_declare(REMEMBER_LESSONS_QUEUE, durable=True)
        pika_client.channel.queue_bind(REMEMBER_LESSONS_QUEUE, "lessons.events",
                                       "lessons_assigned")
        arrived = []
        wait_for(lambda: arrived.extend(pika_client.drain(REMEMBER_LESSONS_QUEUE))
                 or len(arrived) >= 2, timeout=30, what="the events that waited")
        assert [e["event_id"] for e in arrived] == [e["event_id"] for e in stuck]
    finally:
        relay.stop()
