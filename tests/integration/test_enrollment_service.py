"""enrollment against real RabbitMQ and SecantusDB: validation, de-duplication, events."""
import json

import pytest
import requests

from hocvu.events import new_event
from services.enrollment.service import EnrollmentService
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

LESSONS_QUEUE = "evt-enrollment-learner_enrolled--lessons.assign_lessons"
CONFIRM_QUEUE = "evt-enrollment-learner_enrolled--notifications.confirm_enrollment"
CONTACT_QUEUE = "evt-enrollment-learner_contact_registered--notifications.remember_contact"


def body(**learner):
    return {"course_id": "official-digital-basics", "learner": {
        "full_name": "Hoàng Thị Lan", "phone": "0912 345 678", "national_id": "038185004321",
        "birth_year": 1985, "group": "official", "province_code": "38",
        "commune_code": "14845", **learner}}


@pytest.fixture
def enrollment(service_config, run_service, pika_client):
    container = run_service(EnrollmentService, service_config("enrollment"))
    url = base_url(container)
    pika_client.publish("lessons.events", "course_published", new_event("course_published", {
        "course_id": "official-digital-basics", "title": "Kỹ năng số cho cán bộ",
        "group": "official", "lessons": [
            {"id": f"l{n}", "title": f"Bài {n}", "position": n} for n in (1, 2, 3)]},
        correlation_id="catalog"))
    wait_for(lambda: requests.get(f"{url}/api/enrollment/courses").json(), what="catalog copy")
    return url


def test_enrolling_stores_the_learner_and_announces_them(enrollment, pika_client):
    answer = requests.post(f"{enrollment}/api/enrollment/enrollments", json=body())
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["status"] == "active" and created["course_id"] == "official-digital-basics"

    shown = requests.get(f"{enrollment}/api/enrollment/enrollments/{created['id']}").json()
    assert shown["learner"]["phone"] == "+84*****5678"
    assert shown["learner"]["national_id_last4"] == "4321"

    to_lessons = wait_for(lambda: pika_client.drain(LESSONS_QUEUE), what="learner_enrolled")
    contact = wait_for(lambda: pika_client.drain(CONTACT_QUEUE), what="contact event")
    assert len(to_lessons) == 1 and len(contact) == 1
    assert to_lessons[0]["data"]["enrollment_id"] == created["id"]
    assert contact[0]["data"]["phone"] == "+84912345678"
    assert contact[0]["correlation_id"] == to_lessons[0]["correlation_id"]
    everything = json.dumps(to_lessons + contact)
    assert "038185004321" not in everything        # the national ID never travels
    assert "phone" not in json.dumps(to_lessons)   # the phone goes to notifications only


def test_the_same_person_enrolling_twice_gets_409_with_the_first_enrollment(enrollment,
                                                                             pika_client):
    first = requests.post(f"{enrollment}/api/enrollment/enrollments", json=body()).json()
    again = requests.post(f"{enrollment}/api/enrollment/enrollments",
                          json=body(phone="+84987654321", full_name="Hoàng T. Lan"))
    assert again.status_code == 409
    assert again.json()["error"] == "ALREADY_ENROLLED"
    assert again.json()["enrollment_id"] == first["id"]
    wait_for(lambda: pika_client.depth(LESSONS_QUEUE) >= 1, what="first event")
    assert len(pika_client.drain(LESSONS_QUEUE)) == 1


def test_invalid_or_unknown_input_changes_nothing(enrollment, pika_client):
    url = f"{enrollment}/api/enrollment/enrollments"
    invalid = requests.post(url, json=body(phone="01234567890", national_id="038195004321",
                                           group="pirate", commune_code="123"))
    assert invalid.status_code == 400
    fields = invalid.json()["fields"]
    assert set(fields) == {"learner.phone", "learner.national_id", "learner.group",
                           "learner.commune_code"}
    assert invalid.json()["error"] == "VALIDATION_ERROR"

    unknown = requests.post(url, json={**body(), "course_id": "no-such-course"})
    assert unknown.status_code == 404
    wrong_group = requests.post(url, json=body(group="student"))
    assert wrong_group.status_code == 400 and "course_id" in wrong_group.json()["fields"]
    assert requests.post(url, data="{not json").status_code == 400
    assert requests.post(url, json=["a list"]).status_code == 400
    assert requests.get(f"{enrollment}/api/enrollment/enrollments/nope").status_code == 404

    # nothing was stored or published: the same person can still enroll
    assert requests.post(url, json=body()).status_code == 201
    wait_for(lambda: pika_client.depth(LESSONS_QUEUE) >= 1, what="the one event")
    assert len(pika_client.drain(LESSONS_QUEUE)) == 1
