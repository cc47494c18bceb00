"""lessons against real RabbitMQ and SecantusDB: catalog, assignment, completion."""
import pytest
import requests

from hocvu.clock import utcnow
from hocvu.events import new_event
from services.lessons.service import LessonsService
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ASSIGN_QUEUE = "evt-enrollment-learner_enrolled--lessons.assign_lessons"
CATALOG_QUEUE = "evt-lessons-course_published--enrollment.remember_course"
COMPLETED_QUEUE = "evt-lessons-course_completed--certificates.issue_certificate"


def learner_enrolled(enrollment_id="enr-1", course_id="citizen-digital-basics"):
    return new_event("learner_enrolled", {
        "enrollment_id": enrollment_id, "learner_id": "lrn-1", "course_id": course_id,
        "course_title": "Kỹ năng số cơ bản cho người dân", "full_name": "Phạm Văn Nam",
        "group": "citizen", "province_code": "38", "commune_code": "14845",
        "enrolled_at": utcnow()}, correlation_id="corr-1")


@pytest.fixture
def lessons(service_config, run_service):
    container = run_service(LessonsService, service_config("lessons"))
    return base_url(container)


def test_catalog_is_seeded_and_announced_to_enrollment(lessons, pika_client):
    courses = requests.get(f"{lessons}/api/lessons/courses").json()
    assert sorted(c["group"] for c in courses) == ["citizen", "official", "student", "worker"]
    assert all(len(c["lessons"]) >= 3 for c in courses)
    assert [l["position"] for l in courses[0]["lessons"]] == list(
        range(1, len(courses[0]["lessons"]) + 1))
    # enrollment has never run in this vhost, yet its queue holds the catalog
    published = wait_for(lambda: pika_client.depth(CATALOG_QUEUE) == 4 and
                         pika_client.drain(CATALOG_QUEUE), what="course_published events")
    assert sorted(e["data"]["course_id"] for e in published) == sorted(c["id"] for c in courses)


def test_enrolled_learner_gets_the_courses_lessons_once_even_if_the_event_repeats(
        lessons, pika_client):
    event = learner_enrolled()
    for _ in range(3):
        pika_client.publish("enrollment.events", "learner_enrolled", event)
    progress = wait_for(lambda: requests.get(f"{lessons}/api/lessons/enrollments/enr-1").json()
                        if requests.get(f"{lessons}/api/lessons/enrollments/enr-1").ok else None,
                        what="lesson plan")
    assert progress["course_id"] == "citizen-digital-basics"
    assert len(progress["lessons"]) == 5
    assert {l["status"] for l in progress["lessons"]} == {"assigned"}
    assert progress["completed"] is False


def test_completing_every_lesson_emits_course_completed_once(lessons, pika_client):
    pika_client.publish("enrollment.events", "learner_enrolled", learner_enrolled())
    url = f"{lessons}/api/lessons/enrollments/enr-1"
    plan = wait_for(lambda: requests.get(url).ok and requests.get(url).json(), what="plan")
    lesson_ids = [l["id"] for l in plan["lessons"]]
    for lesson_id in reversed(lesson_ids):
        answer = requests.post(f"{url}/lessons/{lesson_id}/complete", json={"score": 80})
        assert answer.status_code == 200
    again = requests.post(f"{url}/lessons/{lesson_ids[0]}/complete")
    assert again.status_code == 200 and again.json()["completed"] is True

    completed = wait_for(lambda: pika_client.drain(COMPLETED_QUEUE), what="course_completed")
    assert len(completed) == 1
    event = completed[0]
    assert event["correlation_id"] == "corr-1"
    assert event["data"]["full_name"] == "Phạm Văn Nam"
    assert event["data"]["commune_code"] == "14845"


def test_bad_requests_change_nothing(lessons, pika_client):
    pika_client.publish("enrollment.events", "learner_enrolled", learner_enrolled())
    url = f"{lessons}/api/lessons/enrollments/enr-1"
    wait_for(lambda: requests.get(url).ok, what="plan")
    lesson = requests.get(url).json()["lessons"][0]["id"]

    too_high = requests.post(f"{url}/lessons/{lesson}/complete", json={"score": 101})
    assert too_high.status_code == 400
    assert too_high.json()["error"] == "VALIDATION_ERROR"
    assert "score" in too_high.json()["fields"]
    assert requests.post(f"{url}/lessons/{lesson}/complete", data="{oops").status_code == 400
    assert requests.post(f"{url}/lessons/no-such-lesson/complete").status_code == 404
    assert requests.post(f"{lessons}/api/lessons/enrollments/nobody/lessons/{lesson}/complete"
                         ).status_code == 404
    assert requests.get(f"{lessons}/api/lessons/enrollments/nobody").status_code == 404
    assert {l["status"] for l in requests.get(url).json()["lessons"]} == {"assigned"}
