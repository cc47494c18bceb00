"""Break things for real while learners go through the whole journey, then check that
nothing was lost, duplicated or silently dropped.

HOCVU_FAULT_LEARNERS (default 500) learners per scenario; each scenario prints what it
counted and how long the platform took to become quiet after the load ended.
Run alone: `make test PYTEST_ARGS="-m faults"`.
"""
import json
import os
import time

import pika
import pytest

from hocvu import contracts
from hocvu.clock import utcnow
from hocvu.events import new_event
from hocvu.devstack.stack import SERVICES
from hocvu.topology import dead_letter_queue_name
from tests.faults.conftest import REPORT
from tests.faults.journeys import JourneyDriver
from tests.faults.totals import count, wait_for_quiet

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

LEARNERS = int(os.environ.get("HOCVU_FAULT_LEARNERS", "500"))


def drive_and_check(platform, name, fault, expected_dead_letters=None):
    driver = JourneyDriver(platform.stack, LEARNERS)
    drive = driver.run(fault)
    assert not drive.errors, drive.errors[:5]
    snapshot = lambda: count(platform.stores.uris, platform.stack.settings.database_prefix,  # noqa: E731
                             platform.stack.sms_gateway, platform.broker.amqp_uri)
    totals, quiet_after = wait_for_quiet(LEARNERS, snapshot)

    enrollment_ids = {j.enrollment_id for j in drive.journeys}
    assert len(drive.journeys) == LEARNERS and len(enrollment_ids) == LEARNERS
    assert totals.enrollments == LEARNERS
    assert totals.plans == LEARNERS and totals.completed_plans == LEARNERS
    assert totals.certificates == LEARNERS and totals.certified_enrollments == LEARNERS
    assert totals.delivered("enrollment_confirmed") == LEARNERS
    assert totals.delivered("certificate_issued") == LEARNERS
    assert sum(totals.messages.values()) == 2 * LEARNERS
    assert totals.learner_templates_more_than_once == 0
    assert totals.sms_received == totals.sms_distinct_requests == 2 * LEARNERS
    assert not any(totals.relay_behind.values()), totals.relay_behind
    expected = {queue: 0 for queue in totals.dead_letters}
    expected.update(expected_dead_letters or {})
    assert totals.dead_letters == expected
    crashed = [name for name, process in platform.stack.processes.items() if not process.alive()]
    assert not crashed, f"crashed: {crashed}"

    REPORT.append(
        f"{name}: {LEARNERS} learners driven in {drive.seconds:.1f} s "
        f"({drive.retried_requests} requests retried by clients); quiet {quiet_after:.1f} s "
        f"after the load; enrollments {totals.enrollments}, lesson plans {totals.plans} "
        f"({totals.completed_plans} completed), certificates {totals.certificates} "
        f"(for {totals.certified_enrollments} enrollments), SMS delivered "
        f"enrollment_confirmed {totals.delivered('enrollment_confirmed')} / certificate_issued "
        f"{totals.delivered('certificate_issued')}, SMS at the gateway {totals.sms_received} "
        f"(resends it deduplicated: {totals.sms_resends_deduplicated}), events not yet relayed "
        f"{sum(totals.relay_behind.values())}, dead letters {sum(totals.dead_letters.values())}")
    return totals


def test_kill_9_each_service_in_turn(fault_platform):
    def kill_each():
        for service in SERVICES:
            fault_platform.stack.processes[service].kill()
            time.sleep(1)
            fault_platform.stack.restart_service(service)

    drive_and_check(fault_platform, "kill -9 each service in turn", kill_each)


def test_sigterm_each_service_in_turn(fault_platform):
    """A graceful stop finishes or returns in-flight work: nothing may be lost either."""
    def restart_each():
        for service in SERVICES:
            fault_platform.stack.processes[service].stop()
            fault_platform.stack.restart_service(service)

    drive_and_check(fault_platform, "SIGTERM and restart each service in turn", restart_each)


def test_restart_rabbitmq(fault_platform):
    drive_and_check(fault_platform, "RabbitMQ restarted", fault_platform.broker.restart)


def test_stop_the_stores_for_10_seconds(fault_platform):
    drive_and_check(fault_platform, "every store stopped for 10 s",
                    lambda: fault_platform.stop_stores_for(10))
    assert fault_platform.store_outage_seconds >= 10
    REPORT.append(f"  ... the stores were unreachable for "
                  f"{fault_platform.store_outage_seconds:.1f} s (shutdown, 10 s stopped, start-up)")


def test_duplicates_of_real_events(fault_platform):
    # a connection for each step: one left idle through the drive (minutes on a busy machine)
    # misses its heartbeats and the broker closes it
    def connect():
        return pika.BlockingConnection(pika.URLParameters(fault_platform.broker.amqp_uri))

    with connect() as connection:
        channel = connection.channel()
        channel.queue_declare("tap", durable=True)
        for source in ("enrollment", "lessons", "certificates"):
            channel.exchange_declare(f"{source}.events", "topic", durable=True)
            channel.queue_bind("tap", f"{source}.events", "#")
    duplicated = []

    def republish_twice():
        with connect() as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            for source in ("enrollment", "lessons", "certificates"):
                channel.queue_unbind("tap", f"{source}.events", "#")  # or it taps its own copies
            while True:
                method, properties, body = channel.basic_get("tap", auto_ack=True)
                if method is None:
                    break
                for _ in range(2):
                    channel.basic_publish(method.exchange, method.routing_key, body, properties)
                duplicated.append(method.routing_key)

    drive_and_check(fault_platform, "duplicates of real events", republish_twice)
    assert len(duplicated) > LEARNERS  # the fault really happened
    REPORT.append(f"  ... {len(duplicated)} real events each published twice more "
                  f"({', '.join(sorted(set(duplicated)))})")


SEALED = "c2VhbGVk" * 11  # the shape of a sealed value (base64), sealed for nobody

SAMPLES = {
    "learner_enrolled": {
        "enrollment_id": "e", "learner_id": "l", "course_id": "c", "course_title": "t",
        "full_name": "Lê Văn A", "group": "citizen", "province_code": "38",
        "commune_code": "14845", "enrolled_at": utcnow()},
    "learner_contact_registered": {
        "learner_id": "l", "enrollment_id": "e", "full_name": "Lê Văn A",
        "sealed_phone": SEALED},
    "lessons_assigned": {
        "enrollment_id": "e", "learner_id": "l", "course_id": "c", "lesson_ids": ["a"],
        "assigned_at": utcnow()},
    "lesson_completed": {
        "enrollment_id": "e", "learner_id": "l", "course_id": "c", "lesson_id": "a",
        "completed_at": utcnow()},
    "sign_in_code_requested": {
        "request_id": "r", "phone": SEALED, "code": SEALED, "expires_at": utcnow()},
    "course_completed": {
        "enrollment_id": "e", "learner_id": "l", "course_id": "c", "course_title": "t",
        "full_name": "Lê Văn A", "group": "citizen", "province_code": "38",
        "commune_code": "14845", "completed_at": utcnow()},
    "certificate_issued": {
        "certificate_id": "x", "serial": "s", "verification_code": "v", "enrollment_id": "e",
        "learner_id": "l", "course_id": "c", "course_title": "t", "full_name": "Lê Văn A",
        "issued_at": utcnow(), "verify_url": "http://hocvu.test/v"},
    "course_published": {
        "course_id": "c", "title": "t", "group": "citizen",
        "lessons": [{"id": "a", "title": "b", "position": 1}]},
}


def malformed_bodies(event_type: str) -> list[bytes]:
    valid = new_event(event_type, SAMPLES[event_type], correlation_id="malformed")
    missing_field = {key: value for key, value in valid.items() if key != "data"}
    wrong_type = {**valid, "data": {**valid["data"], next(iter(valid["data"])): 12345}}
    return [b'{"event_id": "not json at all', json.dumps(missing_field).encode(),
            json.dumps(wrong_type).encode()]


def test_every_consumed_event_has_a_malformed_sample():
    assert set(SAMPLES) == {event for event, subscribers in contracts.SUBSCRIBERS.items()
                            if subscribers}


def test_malformed_events(fault_platform):
    expected = {}
    for event_type, subscribers in contracts.SUBSCRIBERS.items():
        for service, method in subscribers:
            queue = f"evt-{contracts.SOURCES[event_type]}-{event_type}--{service}.{method}"
            expected[dead_letter_queue_name(queue)] = 3

    def publish_malformed():
        # connected when the fault comes: an idle connection could miss its heartbeats
        with pika.BlockingConnection(pika.URLParameters(fault_platform.broker.amqp_uri)) as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            for event_type in SAMPLES:
                for body in malformed_bodies(event_type):
                    channel.basic_publish(f"{contracts.SOURCES[event_type]}.events", event_type,
                                          body, pika.BasicProperties(
                                              content_type="application/json", delivery_mode=2))

    drive_and_check(fault_platform, "malformed events", publish_malformed, expected)
    REPORT.append(f"  ... dead-letter queues hold exactly the {sum(expected.values())} malformed "
                  f"messages (3 kinds x {len(expected)} consuming queues), each with its reason")
