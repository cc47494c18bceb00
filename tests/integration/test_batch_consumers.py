"""Batch consumers (`hocvu.messaging.subscribe_batch`) against real RabbitMQ and SecantusDB:
a batch is written once and acknowledged after the write; duplicates in a batch and across
batches change nothing; a poison message goes its own way while the rest land; a service
stopped in the middle of a batch gets it again and nothing doubles."""
import eventlet
import pymongo
import pytest
from nameko.containers import ServiceContainer

from hocvu import metrics
from hocvu.clock import utcnow
from hocvu.events import new_event
from hocvu.messaging import subscribe_batch
from hocvu.sealing import Sealer, new_key_pair
from hocvu.store import ServiceStore, insert_many_once
from services.notifications.service import NotificationsService
from tests.integration.test_certificates_service import course_completed
from tests.support.fixtures import SEALING_PUBLIC_KEY
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

QUEUE = "evt-lessons-course_completed--batch_recorder.record"
POISON = "enr-poison"


class Calls:
    """What the recorder's handler saw, for the test to read (the service runs in this
    process)."""
    batches: list[list[str]] = []        # the enrollment ids of each call
    already_done: list[list] = []        # the events each call found written before
    hold = None                          # an eventlet Event: wait on it after writing


class BatchRecorder:
    """A service whose handler writes each course_completed it gets as one document per
    enrollment, a batch at a time, like the platform's batch consumers do."""
    name = "batch_recorder"
    store = ServiceStore()

    @subscribe_batch("lessons", "course_completed", max_batch=50, linger_ms=200)
    def record(self, events):
        ids = [event.data["enrollment_id"] for event in events]
        Calls.batches.append(ids)
        if POISON in ids:
            raise ValueError("this enrollment cannot be recorded")
        written_before = insert_many_once(self.store.db.recorded, [
            {"_id": event.data["enrollment_id"], "event_id": event.event_id} for event in events])
        already_done = [events[position] for position in sorted(written_before)]
        Calls.already_done.append(already_done)
        if Calls.hold is not None:
            Calls.hold.wait()  # "crashes" here: written, not yet acknowledged
        return already_done


@pytest.fixture(autouse=True)
def fresh_calls():
    Calls.batches, Calls.already_done, Calls.hold = [], [], None


@pytest.fixture
def recorder_config(service_config, pika_client):
    config = service_config("batch_recorder", RETRY_DELAYS_SECONDS="1")
    # the queue exists before the service starts, so the events wait for it together
    pika_client.declare_queue(QUEUE, "lessons.events", "course_completed")
    return config


def recorded(config) -> list[dict]:
    return list(pymongo.MongoClient(config["MONGO_URI"])[config["MONGO_DATABASE"]]
                .recorded.find())


def handled(ids) -> list[str]:
    return [enrollment_id for batch in Calls.batches for enrollment_id in batch
            if enrollment_id in ids]


def test_a_batch_is_written_once_and_acknowledged_after(recorder_config, run_service,
                                                        pika_client):
    ids = [f"enr-{n}" for n in range(30)]
    for enrollment_id in ids:
        pika_client.publish("lessons.events", "course_completed", course_completed(enrollment_id))
    container = run_service(BatchRecorder, recorder_config)

    wait_for(lambda: len(recorded(recorder_config)) == 30, what="the 30 documents")
    # waiting in the queue together, they came in far fewer calls than events
    assert sorted(handled(ids)) == sorted(ids)
    assert len(Calls.batches) < 30 and max(map(len, Calls.batches)) > 1
    container.stop()
    # nothing went back to the queue when the consumer closed: every one was acknowledged
    assert pika_client.depth(QUEUE) == 0
    assert pika_client.depth(f"{QUEUE}.dlq") == 0


def test_duplicates_in_a_batch_and_across_batches_change_nothing(recorder_config, run_service,
                                                                 pika_client):
    first = [course_completed(f"enr-{n}") for n in range(5)]
    for event in first + first[:2]:  # two of them twice in the same wave
        pika_client.publish("lessons.events", "course_completed", event)
    container = run_service(BatchRecorder, recorder_config)
    wait_for(lambda: len(Calls.already_done) and sum(map(len, Calls.batches)) == 7,
             what="the first wave handled")

    for event in first[1:3] + [course_completed("enr-new")]:  # again, later, with a new one
        pika_client.publish("lessons.events", "course_completed", event)
    wait_for(lambda: sum(map(len, Calls.batches)) == 10, what="the second wave handled")

    documents = recorded(recorder_config)
    assert sorted(doc["_id"] for doc in documents) == sorted(
        [f"enr-{n}" for n in range(5)] + ["enr-new"])
    # each redelivery was told apart from its first delivery: 2 in the wave, 2 later
    assert sum(map(len, Calls.already_done)) == 4
    container.stop()
    assert pika_client.depth(QUEUE) == 0 and pika_client.depth(f"{QUEUE}.dlq") == 0


def test_a_poison_message_goes_its_own_way_while_the_rest_land(recorder_config, run_service,
                                                               pika_client):
    good = [f"enr-{n}" for n in range(8)]
    for enrollment_id in good[:4] + [POISON] + good[4:]:
        pika_client.publish("lessons.events", "course_completed", course_completed(enrollment_id))
    pika_client.publish("lessons.events", "course_completed", b"{not json")
    run_service(BatchRecorder, recorder_config)

    dead = []
    wait_for(lambda: dead.extend(pika_client.drain_with_headers(f"{QUEUE}.dlq")) or len(dead) >= 2,
             timeout=20, what="the two dead letters")
    reasons = sorted(headers["x-hocvu-reason"] for headers, _ in dead)
    assert len(dead) == 2
    # the malformed one at once, never given to the handler
    assert reasons[1].startswith("undecodable body")
    # the poison after its retry (RETRY_DELAYS_SECONDS=1: two attempts alone)
    assert "ValueError: this enrollment cannot be recorded" in reasons[0]
    poison_headers = next(h for h, _ in dead if "ValueError" in h["x-hocvu-reason"])
    assert poison_headers["x-hocvu-attempts"] == 2

    assert sorted(doc["_id"] for doc in recorded(recorder_config)) == sorted(good)
    # the failed batch was not the last word for the good ones: each was tried again alone
    assert any(len(batch) > 1 and POISON in batch for batch in Calls.batches)
    assert [batch for batch in Calls.batches if batch == [POISON]]


def test_a_service_stopped_in_the_middle_of_a_batch_gets_it_again_and_nothing_doubles(
        recorder_config, run_service, pika_client):
    ids = [f"enr-{n}" for n in range(20)]
    for enrollment_id in ids:
        pika_client.publish("lessons.events", "course_completed", course_completed(enrollment_id))
    Calls.hold = eventlet.Event()  # the first service writes, then never acknowledges
    crashed = ServiceContainer(BatchRecorder, recorder_config)
    crashed.start()
    try:
        wait_for(lambda: len(recorded(recorder_config)) == 20, what="the batch written")
    finally:
        crashed.kill()  # no ack sent: the broker gives the messages to the next consumer
    Calls.hold = None
    written_by_the_first = len(Calls.already_done)

    container = run_service(BatchRecorder, recorder_config)
    wait_for(lambda: sum(len(done) for done in Calls.already_done[written_by_the_first:]) == 20,
             what="the redelivered batch, every event found done")
    assert sorted(doc["_id"] for doc in recorded(recorder_config)) == sorted(ids)
    container.stop()
    assert pika_client.depth(QUEUE) == 0 and pika_client.depth(f"{QUEUE}.dlq") == 0


# --- a real service: notifications' confirmations and contacts ---------------------------

CONTACT_QUEUE = "evt-enrollment-learner_contact_registered--notifications.remember_contact"


def enrolled(n: int):
    return new_event("learner_enrolled", {
        "enrollment_id": f"enr-b{n}", "learner_id": f"lrn-b{n}",
        "course_id": "student-digital-basics",
        "course_title": "Kỹ năng số cho học sinh, sinh viên", "full_name": "Vũ Đức Anh",
        "group": "student", "province_code": "38", "commune_code": "14845",
        "learner_subject": "learner:" + "5" * 32, "enrolled_at": utcnow()},
        correlation_id=f"corr-b{n}")


def contact(n: int, sealed_for=SEALING_PUBLIC_KEY):
    return new_event("learner_contact_registered", {
        "learner_id": f"lrn-b{n}", "enrollment_id": f"enr-b{n}", "full_name": "Vũ Đức Anh",
        "sealed_phone": Sealer(sealed_for).seal(f"+8498700{n:04d}")},
        correlation_id=f"corr-b{n}")


def test_notifications_confirms_each_enrollment_once_from_batches(
        service_config, run_service, pika_client, sms_gateway, sms_outbox):
    config = service_config("notifications", SMS_GATEWAY_URL=sms_gateway, SMS_POLL_SECONDS=0.2)
    for queue, routing_key in ((CONTACT_QUEUE, "learner_contact_registered"), (
            "evt-enrollment-learner_enrolled--notifications.confirm_enrollment",
            "learner_enrolled")):
        pika_client.declare_queue(queue, "enrollment.events", routing_key)
    events = [enrolled(n) for n in range(12)]
    contacts = [contact(n) for n in range(12)]
    # one number nobody can open (sealed for another key): a poison among the contacts
    unreadable = contact(99, sealed_for=new_key_pair()[1])
    for event in events + events[:3]:
        pika_client.publish("enrollment.events", "learner_enrolled", event)
    for event in contacts[:6] + [unreadable] + contacts[6:] + contacts[:2]:
        pika_client.publish("enrollment.events", "learner_contact_registered", event)
    duplicates_before = duplicates()
    run_service(NotificationsService, config)

    db = pymongo.MongoClient(config["MONGO_URI"])[config["MONGO_DATABASE"]]
    wait_for(lambda: len(sms_outbox()) >= 12, timeout=30, what="twelve confirmations sent")
    dead = wait_for(lambda: pika_client.drain_with_headers(f"{CONTACT_QUEUE}.dlq"),
                    what="the unreadable number dead-lettered")
    assert len(dead) == 1 and dead[0][0]["x-hocvu-attempts"] == 1
    assert "sealed_phone" in dead[0][0]["x-hocvu-reason"]
    wait_for(lambda: duplicates() - duplicates_before == 3, what="the wave's duplicates")

    for event in events[3:6]:  # redelivered later, in another batch
        pika_client.publish("enrollment.events", "learner_enrolled", event)
    wait_for(lambda: duplicates() - duplicates_before == 6, what="the late duplicates")
    assert db.messages.count_documents({}) == 12
    assert len({message["dedupe_key"] for message in db.messages.find()}) == 12
    sent = sms_outbox()
    assert sorted(sms["to"] for sms in sent) == sorted(f"8498700{n:04d}" for n in range(12))
    assert db.contacts.count_documents({}) == 12
    assert db.reminders.count_documents({"status": "active"}) == 12


def duplicates() -> float:
    return metrics.EVENTS_CONSUMED.labels(service="notifications", event_type="learner_enrolled",
                                          outcome="duplicate")._value.get()
