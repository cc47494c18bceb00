"""QUEUE_TYPE=quorum: every queue a service declares is a quorum queue, and the chain
still works (retries and dead letters included); the delay queues dead-letter at least
once, and one an earlier release declared without that is used as it is."""
import json
import logging
import subprocess

import pika
import pymongo
import pytest
import requests

from services.certificates.service import CertificatesService
from services.lessons.service import LessonsService
from tests.integration.test_certificates_service import course_completed
from tests.integration.test_lessons_service import learner_enrolled
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

QUEUE = "evt-lessons-course_completed--certificates.issue_certificate"
ASSIGN = "evt-enrollment-learner_enrolled--lessons.assign_lessons"


def queue_listing(vhost: str) -> dict[str, dict]:
    """{queue name: {"type": ..., "arguments": {...}}} as the broker reports them."""
    listing = subprocess.run(["rabbitmqctl", "list_queues", "-q", "-p", vhost, "name", "type",
                              "arguments", "--formatter", "json"],
                             check=True, capture_output=True, text=True, timeout=60).stdout
    # each argument comes as [name, AMQP type, value]
    return {row["name"]: {"type": row["type"],
                          "arguments": {name: value for name, _, value in row["arguments"]}}
            for row in json.loads(listing)}


def vhost_of(amqp_uri: str) -> str:
    return amqp_uri.rsplit("/", 1)[1]


def test_a_service_runs_on_quorum_queues(service_config, run_service, pika_client, amqp_uri):
    container = run_service(CertificatesService, service_config(
        "certificates", QUEUE_TYPE="quorum", RETRY_DELAYS_SECONDS="1"))
    url = base_url(container)
    pika_client.publish("lessons.events", "course_completed", course_completed("enr-q"))
    wait_for(lambda: requests.get(f"{url}/api/certificates/certificates",
                                  params={"enrollment_id": "enr-q"}).json(), what="certificate")
    pika_client.publish("lessons.events", "course_completed", b"{broken")
    wait_for(lambda: pika_client.depth(f"{QUEUE}.dlq") == 1, what="the dead letter")

    queues = queue_listing(vhost_of(amqp_uri))
    assert queues[QUEUE]["type"] == "quorum"
    assert queues[f"{QUEUE}.dlq"]["type"] == "quorum"
    assert queues["hocvu.retry.1s"]["type"] == "quorum"
    assert queues["hocvu.retry.1s"]["arguments"] == {
        "x-queue-type": "quorum", "x-message-ttl": 1000, "x-dead-letter-exchange": "",
        "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


def test_classic_delay_queues_keep_their_arguments(service_config, run_service, pika_client,
                                                   amqp_uri):
    """At-least-once dead-lettering is a quorum queue's: a classic one would refuse it."""
    run_service(CertificatesService, service_config("certificates", RETRY_DELAYS_SECONDS="1"))
    pika_client.publish("lessons.events", "course_completed", b"{broken")
    wait_for(lambda: pika_client.depth(f"{QUEUE}.dlq") == 1, what="the dead letter")
    assert queue_listing(vhost_of(amqp_uri))["hocvu.retry.1s"] == {
        "type": "classic",
        "arguments": {"x-message-ttl": 1000, "x-dead-letter-exchange": ""}}


def lessons_failing_until_the_course_exists(service_config, run_service, pika_client,
                                            course_id: str):
    """Lessons on quorum queues, sent an enrollment in a course it does not know yet: the
    handler fails and the event waits in hocvu.retry.1s until the course arrives. (A new
    course id in each test: the service caches the courses it has seen, process-wide.)"""
    config = service_config("lessons", QUEUE_TYPE="quorum", RETRY_DELAYS_SECONDS="1,1,1,1,1")
    container = run_service(LessonsService, config)
    db = pymongo.MongoClient(config["MONGO_URI"])[config["MONGO_DATABASE"]]
    pika_client.publish("enrollment.events", "learner_enrolled",
                        learner_enrolled(course_id=course_id))
    return base_url(container), db


def let_the_course_arrive(db, course_id: str) -> None:
    course = db.courses.find_one({"_id": "citizen-digital-basics"})
    db.courses.insert_one({**course, "_id": course_id})


def test_a_retry_comes_back_from_a_quorum_delay_queue(service_config, run_service,
                                                       pika_client, issuer, amqp_uri):
    url, db = lessons_failing_until_the_course_exists(service_config, run_service, pika_client,
                                                      "late-course-quorum")
    wait_for(lambda: pika_client.depth("hocvu.retry.1s") == 1, timeout=10,
             what="the retry waiting in the quorum delay queue")
    let_the_course_arrive(db, "late-course-quorum")
    wait_for(lambda: requests.get(f"{url}/api/lessons/enrollments/enr-1",
                                  headers=issuer.facilitator()).ok,
             timeout=20, what="the plan, after the delay queue dead-lettered the event back")
    assert pika_client.depth(f"{ASSIGN}.dlq") == 0
    assert queue_listing(vhost_of(amqp_uri))["hocvu.retry.1s"]["arguments"][
        "x-dead-letter-strategy"] == "at-least-once"


def test_a_delay_queue_from_an_earlier_release_is_used_as_it_is(
        service_config, run_service, pika_client, issuer, amqp_uri, caplog):
    """A quorum delay queue declared before at-least-once dead-lettering: declaring it
    again with the new arguments fails (PRECONDITION_FAILED), so the service binds the
    existing one and warns, and retries go on through it until it is migrated."""
    with pika.BlockingConnection(pika.URLParameters(amqp_uri)) as connection:
        channel = connection.channel()
        channel.exchange_declare("hocvu.retry.1s", "fanout", durable=True)
        channel.queue_declare("hocvu.retry.1s", durable=True, arguments={
            "x-queue-type": "quorum", "x-message-ttl": 1000, "x-dead-letter-exchange": ""})
    caplog.set_level(logging.WARNING, logger="hocvu.messaging")

    url, db = lessons_failing_until_the_course_exists(service_config, run_service, pika_client,
                                                      "late-course-old-delay-queue")
    wait_for(lambda: pika_client.depth("hocvu.retry.1s") == 1, timeout=10,
             what="the retry waiting in the old delay queue")
    let_the_course_arrive(db, "late-course-old-delay-queue")
    wait_for(lambda: requests.get(f"{url}/api/lessons/enrollments/enr-1",
                                  headers=issuer.facilitator()).ok,
             timeout=20, what="the plan, after a retry through the old delay queue")
    assert pika_client.depth(f"{ASSIGN}.dlq") == 0
    assert "x-dead-letter-strategy" not in queue_listing(vhost_of(amqp_uri))[
        "hocvu.retry.1s"]["arguments"]
    assert any("hocvu.retry.1s exists with other arguments" in r.getMessage()
               for r in caplog.records)
