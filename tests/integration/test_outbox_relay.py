"""The outbox relay against real RabbitMQ and SecantusDB: what it publishes, and in which
order when another relay or a retry holds an older event of the same enrollment."""
from datetime import timedelta

import pymongo
import pytest

from hocvu.clock import utcnow
from hocvu.events import new_event
from hocvu.outbox import PENDING, SENT, OutboxRelay, outbox_document, prepare_outbox

pytestmark = pytest.mark.integration

CERTIFICATES_QUEUE = "evt-lessons-course_completed--certificates.issue_certificate"


def completed(enrollment_id: str, title: str) -> dict:
    return new_event("course_completed", {
        "enrollment_id": enrollment_id, "learner_id": "l", "course_id": "c",
        "course_title": title, "full_name": "Lê Văn A", "group": "citizen",
        "province_code": "38", "commune_code": "14845", "completed_at": utcnow()},
        correlation_id="order")


@pytest.fixture
def relay(service_config):
    config = service_config("lessons")
    db = pymongo.MongoClient(config["MONGO_URI"])[config["MONGO_DATABASE"]]
    prepare_outbox(db)
    return OutboxRelay(db, "lessons", config), db.outbox


def test_pending_events_are_published_once_in_commit_order(relay, pika_client):
    relay, outbox = relay
    envelopes = [completed(f"enr-{n}", f"course {n}") for n in range(5)]
    outbox.insert_many([outbox_document(e, "lessons") for e in envelopes])
    assert relay.relay_due() == 5
    assert relay.relay_due() == 0
    published = pika_client.drain(CERTIFICATES_QUEUE)
    assert [e["event_id"] for e in published] == [e["event_id"] for e in envelopes]
    assert outbox.count_documents({"status": SENT}) == 5


def test_an_event_waits_for_an_older_one_of_its_enrollment(relay, pika_client):
    relay, outbox = relay
    older, newer, other = completed("enr-1", "first"), completed("enr-1", "second"), \
        completed("enr-2", "unrelated")
    docs = [outbox_document(e, "lessons") for e in (older, newer, other)]
    # another relay holds the older event under its lease
    docs[0].update(lease_owner="another-relay", lease_until=utcnow() + timedelta(seconds=30))
    outbox.insert_many(docs)

    relay.relay_due()
    assert [e["event_id"] for e in pika_client.drain(CERTIFICATES_QUEUE)] == [other["event_id"]]
    assert outbox.find_one({"_id": newer["event_id"]})["status"] == PENDING

    # the other relay dies: its lease runs out and ours takes over, older first
    outbox.update_one({"_id": older["event_id"]}, {"$set": {"lease_until": utcnow()}})
    outbox.update_many({}, {"$set": {"next_attempt_at": utcnow()}})
    relay.relay_due()
    assert [e["event_id"] for e in pika_client.drain(CERTIFICATES_QUEUE)] == [
        older["event_id"], newer["event_id"]]
