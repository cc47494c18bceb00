"""Break things for real while learners go through the whole journey, then check that
nothing was lost, duplicated or silently dropped.

HOCVU_FAULT_LEARNERS (default 500) learners per scenario; each scenario prints what it
counted and how long the platform took to become quiet after the load ended (in the
terminal summary), and progress lines while it runs (with `-s`).
Run alone: `make test PYTEST_ARGS="-m faults"`; one scenario:
`.venv/bin/pytest tests/faults -q -s -k control`.
"""
import json
import os
import time

import pika
import pytest

from hocvu import contracts
from hocvu.clock import utcnow
from hocvu.events import new_event
from hocvu_tools.devstack.stack import SERVICES
from hocvu.topology import dead_letter_queue_name
from tests.faults.conftest import REPORT
from tests.faults.journeys import Fault, JourneyDriver, progress
from tests.faults.totals import EventTap, assert_every_journey_whole, count, wait_for_quiet

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

LEARNERS = int(os.environ.get("HOCVU_FAULT_LEARNERS", "500"))


def drive_and_check(platform, name, faults=(), expected_dead_letters=None):
    tap = EventTap(platform.broker.amqp_uri)
    tap.bind()
    driver = JourneyDriver(platform.stack, LEARNERS)
    drive = driver.run(list(faults))
    assert not drive.errors, drive.errors[:5]
    # a fault that failed, or that ran before or after the load, proves nothing
    assert [i.name for i in drive.injections] == [f.name for f in faults]
    assert not [i for i in drive.injections if i.error], drive.injections
    assert all(i.finished_after < LEARNERS for i in drive.injections), drive.injections
    if faults:
        assert drive.retried_requests <= drive.retry_bound(), \
            (drive.retried_requests, drive.retry_bound(), drive.retry_causes)
    else:
        assert drive.retried_requests == 0, drive.retry_causes

    progress(f"{name}: waiting until the platform is quiet")
    snapshot = lambda: count(platform.stores.uris, platform.stack.settings.database_prefix,  # noqa: E731
                             platform.stack.sms_gateway, platform.broker.amqp_uri)
    totals, quiet_after = wait_for_quiet(LEARNERS, snapshot)
    published = tap.drain()

    assert_every_journey_whole(totals, published, drive.journeys, LEARNERS,
                               expected_dead_letters)
    crashed = [name for name, process in platform.stack.processes.items() if not process.alive()]
    assert not crashed, f"crashed: {crashed}"

    REPORT.append(
        f"{name}: {LEARNERS} learners driven in {drive.seconds:.1f} s "
        f"({drive.retried_requests} requests retried by clients, bound "
        f"{drive.retry_bound()}, at most {drive.most_retries_of_one_request} for one request"
        f"{': ' + ', '.join(f'{c} {n}' for c, n in drive.retry_causes.most_common()) if drive.retry_causes else ''}"
        f"); quiet {quiet_after:.1f} s "
        f"after the load; enrollments {totals.enrollments}, lesson plans {totals.plans} "
        f"({totals.completed_plans} completed), certificates {totals.certificates} "
        f"(for {totals.certified_enrollments} enrollments), SMS delivered "
        f"enrollment_confirmed {totals.delivered('enrollment_confirmed')} / certificate_issued "
        f"{totals.delivered('certificate_issued')}, SMS at the gateway {totals.sms_received} "
        f"(resends it deduplicated: {totals.sms_resends_deduplicated}; none sent twice to a "
        f"learner), events not yet relayed "
        f"{sum(totals.relay_behind.values())}, dead letters {sum(totals.dead_letters.values())}")
    REPORT.append(f"  ... faults: {drive.describe_injections() or 'none'}")
    REPORT.append(f"  ... {published.describe()}")
    return totals


def test_control_without_faults(fault_platform):
    """The same load with nothing broken: the baseline the fault scenarios' retries and
    times compare with. No client has to retry a single request."""
    drive_and_check(fault_platform, "control, no fault")


def test_services_stopped_and_killed_while_busy(fault_platform):
    """Three injections, each while learners keep coming:

    1. each service stopped with SIGTERM and started again, in turn: a graceful stop must
       finish or return its in-flight work;
    2. each service killed with SIGKILL and started again, in turn;
    3. every service killed with SIGKILL at the same moment, then all started again.

    The narrow windows cannot be aimed at without hooks in the services, so the kills rely
    on the load keeping them busy: enrollment commits an enrollment every few milliseconds
    and its relay publishes within OUTBOX_AWAIT_SECONDS (0.1 s) after, so a kill of
    enrollment nearly always lands between a commit and its publish (the relay must resume
    from its saved token and publish again); lessons, certificates and notifications each
    handle several events a second, so a kill often lands between a handler's write and its
    ack (the event comes again and must find its effect done); notifications sends an SMS
    every few hundred milliseconds, so a kill sometimes lands between the gateway accepting
    one and the store recording it (the resend must carry the same request id). The three
    rounds (eleven kills or stops of each kind of process) make missing all of them unlikely;
    a lost or doubled message in any window fails the totals below.
    """
    stack = fault_platform.stack

    def stop_each():
        for service in SERVICES:
            stack.processes[service].stop()
            stack.restart_service(service)

    def kill_each():
        for service in SERVICES:
            stack.processes[service].kill()
            time.sleep(1)
            stack.restart_service(service)

    drive_and_check(fault_platform, "services stopped and killed", [
        Fault("SIGTERM and restart each service in turn", stop_each, after=0.05),
        Fault("kill -9 each service in turn", kill_each, after=0.3),
        Fault("kill -9 every service at once", fault_platform.kill_services_at_once,
              after=0.45)])


def test_rabbitmq_restarted_down_for_a_minute_then_killed_and_kept_down(fault_platform):
    """RabbitMQ stopped in order and started again at once; later stopped and kept down for
    60 s; later killed with SIGKILL mid-stream (relays publishing, consumers holding
    unacknowledged messages, retries waiting in delay queues), kept down for 30 s and
    started again on its data: a persistent message it confirmed is on disk, one it did not
    confirm is published again by its relay or redelivered. The two long outages outlast
    every reconnect pause: every service's consumers must come back by themselves (their
    readiness says when), and every total stays whole. Before consumers recovered by
    themselves, a service whose consuming thread was still refused 10 s after a worker's
    acknowledgement failed was interrupted and its container died: its queues filled and
    never drained (a fresh clone's CI, notifications)."""
    platform = fault_platform
    drive_and_check(platform, "RabbitMQ restarted, down for 60 s, then killed and down for 30 s", [
        Fault("RabbitMQ restarted", platform.broker.restart, after=0.15),
        Fault("RabbitMQ stopped for 60 s", lambda: platform.broker_down_for(60), after=0.35),
        Fault("RabbitMQ killed with SIGKILL and kept down for 30 s",
              lambda: platform.broker_down_for(30, kill=True), after=0.6)])
    consuming = {service for subscribers in contracts.SUBSCRIBERS.values()
                 for service, _ in subscribers}
    for outage in ("stopped for 60 s", "killed for 30 s"):
        times = {service: seconds for what, service, seconds in platform.consumer_recovery
                 if what == outage}
        assert set(times) == consuming, (outage, times)  # each one's readiness said so
        REPORT.append(f"  ... consumers consuming again after RabbitMQ was {outage}: " + ", ".join(
            f"{service} {seconds:.1f} s" for service, seconds in sorted(times.items())))


def test_stores_stopped_then_killed(crash_safe_fault_platform):
    """Every store stopped for 10 s and started on the same data; later every store killed
    with SIGKILL mid-write and started again. The stores fsync each commit here
    (SYNC_ON_COMMIT, as MongoDB with j:true): without it SecantusDB itself loses its last
    acknowledged writes on SIGKILL, and the test would count the store's losses, not ours."""
    platform = crash_safe_fault_platform
    drive_and_check(platform, "stores stopped for 10 s, then killed", [
        Fault("every store stopped for 10 s", lambda: platform.stop_stores_for(10), after=0.2),
        Fault("every store killed with SIGKILL and started", platform.kill_stores,
              after=0.45)])
    assert platform.store_outage_seconds >= 10
    REPORT.append(f"  ... the stores were unreachable for "
                  f"{platform.store_outage_seconds:.1f} s (shutdown, 10 s stopped, start-up)")


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
    "enrollment_cancelled": {
        "enrollment_id": "e", "learner_id": "l", "course_id": "c", "group": "citizen",
        "province_code": "38", "commune_code": "14845", "cancelled_at": utcnow(),
        "cancelled_by": "staff"},
    "certificate_revoked": {
        "enrollment_id": "e", "learner_id": "l", "course_id": "c", "certificate_id": "x",
        "serial": "s", "full_name": "Lê Văn A", "course_title": "t", "group": "citizen",
        "province_code": "38", "commune_code": "14845", "reason": "issued in error",
        "revoked_at": utcnow()},
    "sms_outcome": {
        "message_id": "m", "template": "enrollment_confirmed", "status": "delivered",
        "enrollment_id": "e", "province_code": "38", "commune_code": "14845",
        "group": "citizen", "settled_at": utcnow()},
    "sms_report_received": {
        "source": "gateway", "status": "delivered", "request_id": "m",
        "provider_message_id": "gw-m", "received_at": utcnow()},
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


def test_duplicated_and_malformed_events(fault_platform):
    """Messages no relay would publish, twice each, while learners keep coming: every real
    event published so far published twice more (each consumer must have its effect once),
    and for every consumed event type three malformed messages (each consuming queue must
    dead-letter exactly those, with a reason, and go on)."""
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
                if properties.app_id not in SERVICES:
                    continue  # one of the malformed messages: those are counted apart
                for _ in range(2):
                    channel.basic_publish(method.exchange, method.routing_key, body, properties)
                duplicated.append(method.routing_key)
            for source in ("enrollment", "lessons", "certificates"):
                channel.queue_bind("tap", f"{source}.events", "#")  # for the next round

    def publish_malformed():
        with connect() as connection:
            channel = connection.channel()
            channel.confirm_delivery()
            for event_type in SAMPLES:
                for body in malformed_bodies(event_type):
                    channel.basic_publish(f"{contracts.SOURCES[event_type]}.events", event_type,
                                          body, pika.BasicProperties(
                                              content_type="application/json", delivery_mode=2))

    rounds = 2
    expected = {}
    for event_type, subscribers in contracts.SUBSCRIBERS.items():
        for service, method in subscribers:
            queue = f"evt-{contracts.SOURCES[event_type]}-{event_type}--{service}.{method}"
            expected[dead_letter_queue_name(queue)] = 3 * rounds

    drive_and_check(fault_platform, "duplicated and malformed events", [
        Fault("real events so far published twice more", republish_twice, after=0.2),
        Fault("malformed events published", publish_malformed, after=0.35),
        Fault("real events since published twice more", republish_twice, after=0.5),
        Fault("malformed events published again", publish_malformed, after=0.65)], expected)
    assert len(duplicated) > LEARNERS  # the fault really happened
    with connect() as connection:
        channel = connection.channel()
        reasons = []
        for queue in expected:
            while True:
                method, properties, _ = channel.basic_get(queue, auto_ack=False)
                if method is None:
                    break
                reasons.append((properties.headers or {}).get("x-hocvu-reason"))
        assert len(reasons) == sum(expected.values()) and all(reasons), reasons
    REPORT.append(f"  ... {len(duplicated)} real events each published twice more "
                  f"({', '.join(sorted(set(duplicated)))})")
    REPORT.append(f"  ... dead-letter queues hold exactly the {sum(expected.values())} malformed "
                  f"messages (3 kinds x {len(expected)} consuming queues x {rounds} rounds), "
                  f"each with its reason")
