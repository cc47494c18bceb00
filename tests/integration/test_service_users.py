"""Each service under a RabbitMQ user of its own (hocvu_tools.devstack.rabbitmq.service_users):
the whole journey works with the least permissions, and nothing beyond them does."""
import pika
import pytest
import requests

from hocvu.clock import utcnow
from hocvu.events import new_event
from services.certificates.service import CertificatesService
from services.enrollment.service import EnrollmentService
from services.lessons.service import LessonsService
from services.notifications.service import NotificationsService
from tests.support.broker import Pika, Vhost
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SERVICES = {"enrollment": EnrollmentService, "lessons": LessonsService,
            "certificates": CertificatesService, "notifications": NotificationsService}
LEARNER = {"full_name": "Nguyễn Thị Hoa", "phone": "0912 345 678",
           "national_id": "038195001234", "birth_year": 1995, "group": "citizen",
           "province_code": "38", "commune_code": "14845"}


@pytest.fixture(scope="module")
def users():
    with Vhost() as vhost:
        yield vhost, vhost.service_users()


def refused(amqp_uri: str, action) -> str:
    """Run `action(channel)` as that user; return the broker's refusal (fails if none)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
            action(channel)
        return closed.value.reply_text
    finally:
        if connection.is_open:
            connection.close()


def test_the_journey_runs_with_each_service_under_its_own_user(
        users, service_config, run_service, issuer):
    vhost, uris = users
    assert set(uris) >= set(SERVICES)
    urls = {}
    # enrollment first, lessons last, as the dev stack starts them
    for name in ("enrollment", "certificates", "notifications", "lessons"):
        urls[name] = base_url(run_service(SERVICES[name], service_config(
            name, AMQP_URI=uris[name], SMS_GATEWAY_URL="http://127.0.0.1:9",
            RETRY_DELAYS_SECONDS="1")))
    for name, url in urls.items():  # readiness connects to the broker as the service
        assert requests.get(f"{url}/api/{name}/health/ready").status_code == 200

    def items(answer):
        body = answer.json()
        return body["items"] if isinstance(body, dict) else body

    staff = issuer.province_admin()
    # the catalog's courses arrive one event each: wait for the one this learner takes
    course = wait_for(lambda: next((c for c in items(requests.get(
        f"{urls['enrollment']}/api/enrollment/courses")) if c["group"] == "citizen"), None),
        what="the citizens' course, from lessons to enrollment")
    answer = requests.post(f"{urls['enrollment']}/api/enrollment/enrollments", headers=staff,
                           json={"course_id": course["id"], "learner": LEARNER})
    assert answer.status_code == 201, answer.text
    enrollment = answer.json()["id"]
    progress_url = f"{urls['lessons']}/api/lessons/enrollments/{enrollment}"
    plan = wait_for(lambda: requests.get(progress_url, headers=staff).ok
                    and requests.get(progress_url, headers=staff).json(), what="lessons assigned")
    for lesson in plan["lessons"]:
        done = requests.post(f"{progress_url}/lessons/{lesson['id']}/complete", json={},
                             headers=staff)
        assert done.status_code == 200, done.text
    wait_for(lambda: items(requests.get(f"{urls['certificates']}/api/certificates/certificates",
                                        params={"enrollment_id": enrollment}, headers=staff)),
             what="the certificate")
    wait_for(lambda: len(items(requests.get(f"{urls['notifications']}/api/notifications/messages",
                                            params={"enrollment_id": enrollment},
                                            headers=staff))) == 2,
             what="both SMS queued")

    # a handler that fails is retried through the delay exchange, then dead-lettered
    # through the default exchange: both as lessons' user
    admin = Pika(vhost.amqp_uri)
    try:
        admin.publish("enrollment.events", "learner_enrolled", new_event("learner_enrolled", {
            "enrollment_id": "enr-x", "learner_id": "lrn-x", "course_id": "no-such-course",
            "course_title": "?", "full_name": "X", "group": "citizen", "province_code": "38",
            "commune_code": "14845", "enrolled_at": utcnow()},
            correlation_id="corr-x"))
        dead = wait_for(lambda: admin.drain_with_headers(
            "evt-enrollment-learner_enrolled--lessons.assign_lessons.dlq"), timeout=30,
            what="the dead letter")
        assert dead[0][0]["x-hocvu-attempts"] == 2 and "UnknownCourse" in dead[0][0]["x-hocvu-reason"]
    finally:
        admin.close()


def test_a_service_user_cannot_touch_what_is_not_its_own(users):
    vhost, uris = users
    admin = Pika(vhost.amqp_uri)
    try:
        admin.declare_queue("evt-lessons-course_published--enrollment.remember_course",
                            "lessons.events", "course_published")
        admin.declare_queue("evt-enrollment-learner_enrolled--notifications.confirm_enrollment",
                            "enrollment.events", "learner_enrolled")
    finally:
        admin.close()
    lessons = uris["lessons"]
    cases = {
        "read another service's queue": lambda ch: ch.basic_get(
            "evt-lessons-course_published--enrollment.remember_course"),
        "read notifications' queue": lambda ch: ch.basic_get(
            "evt-enrollment-learner_enrolled--notifications.confirm_enrollment"),
        "publish to another service's exchange": lambda ch: ch.basic_publish(
            "enrollment.events", "learner_enrolled", b"{}"),
        "delete another service's queue": lambda ch: ch.queue_delete(
            "evt-enrollment-learner_enrolled--notifications.confirm_enrollment"),
        "declare a queue of its own choosing": lambda ch: ch.queue_declare("lessons-snoop"),
        "bind its queue to an exchange it does not consume": lambda ch: ch.queue_bind(
            "evt-enrollment-learner_enrolled--lessons.assign_lessons", "certificates.events",
            "certificate_issued"),
        "read its dead letters (operations' job)": lambda ch: ch.basic_get(
            "evt-enrollment-learner_enrolled--lessons.assign_lessons.dlq"),
    }
    for case, action in cases.items():
        reply = refused(lessons, action)
        assert reply.startswith("ACCESS_REFUSED"), (case, reply)
    # and what it does do, it may
    connection = pika.BlockingConnection(pika.URLParameters(lessons))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("lessons.events", "lesson_completed", b"{}")
        channel.basic_get("evt-enrollment-learner_enrolled--lessons.assign_lessons")
    finally:
        connection.close()


def test_a_wrong_password_is_refused(users):
    _, uris = users
    wrong = uris["enrollment"].replace("@127.0.0.1", "x@127.0.0.1")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(wrong))
