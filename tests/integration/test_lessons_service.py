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
        "learner_subject": "learner:" + "1" * 32, "enrolled_at": utcnow()},
        correlation_id="corr-1")


@pytest.fixture
def lessons(service_config, run_service):
    container = run_service(LessonsService, service_config("lessons"))
    return base_url(container)


@pytest.fixture
def staff(issuer):
    return issuer.facilitator()


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
        lessons, pika_client, staff):
    event = learner_enrolled()
    for _ in range(3):
        pika_client.publish("enrollment.events", "learner_enrolled", event)
    url = f"{lessons}/api/lessons/enrollments/enr-1"
    progress = wait_for(lambda: requests.get(url, headers=staff).json()
                        if requests.get(url, headers=staff).ok else None, what="lesson plan")
    assert progress["course_id"] == "citizen-digital-basics"
    assert len(progress["lessons"]) == 5
    assert {l["status"] for l in progress["lessons"]} == {"assigned"}
    assert progress["completed"] is False


def test_completing_every_lesson_emits_course_completed_once(lessons, pika_client, staff, issuer):
    pika_client.publish("enrollment.events", "learner_enrolled", learner_enrolled())
    url = f"{lessons}/api/lessons/enrollments/enr-1"
    plan = wait_for(lambda: requests.get(url, headers=staff).ok and
                    requests.get(url, headers=staff).json(), what="plan")
    lesson_ids = [l["id"] for l in plan["lessons"]]
    # the learner online for some lessons, a facilitator's class for the others
    learner = issuer.headers("learner", phone="+84900000001", subject="learner:" + "1" * 32)
    for n, lesson_id in enumerate(reversed(lesson_ids)):
        answer = requests.post(f"{url}/lessons/{lesson_id}/complete", json={"score": 80},
                               headers=learner if n % 2 else staff)
        assert answer.status_code == 200
    again = requests.post(f"{url}/lessons/{lesson_ids[0]}/complete", headers=staff)
    assert again.status_code == 200 and again.json()["completed"] is True

    completed = wait_for(lambda: pika_client.drain(COMPLETED_QUEUE), what="course_completed")
    assert len(completed) == 1
    event = completed[0]
    assert event["correlation_id"] == "corr-1"
    assert event["data"]["full_name"] == "Phạm Văn Nam"
    assert event["data"]["commune_code"] == "14845"
    assert event["data"]["learner_subject"] == "learner:" + "1" * 32


def test_another_learner_or_commune_cannot_see_or_complete_a_plan(lessons, pika_client, issuer):
    pika_client.publish("enrollment.events", "learner_enrolled", learner_enrolled())
    url = f"{lessons}/api/lessons/enrollments/enr-1"
    plan = wait_for(lambda: requests.get(url, headers=issuer.province_admin()).ok and
                    requests.get(url, headers=issuer.province_admin()).json(), what="plan")
    lesson = plan["lessons"][0]["id"]
    for outsider in (issuer.learner("+84900000002"), issuer.facilitator(communes=("16000",)),
                     issuer.province_admin("01")):
        assert requests.get(url, headers=outsider).status_code == 404
        assert requests.post(f"{url}/lessons/{lesson}/complete", headers=outsider).status_code == 404
    assert requests.get(url).status_code == 401
    assert requests.post(f"{url}/lessons/{lesson}/complete").status_code == 401
    assert {l["status"] for l in requests.get(url, headers=issuer.province_admin()
                                              ).json()["lessons"]} == {"assigned"}


def test_bad_requests_change_nothing(lessons, pika_client, staff):
    pika_client.publish("enrollment.events", "learner_enrolled", learner_enrolled())
    url = f"{lessons}/api/lessons/enrollments/enr-1"
    wait_for(lambda: requests.get(url, headers=staff).ok, what="plan")
    lesson = requests.get(url, headers=staff).json()["lessons"][0]["id"]

    too_high = requests.post(f"{url}/lessons/{lesson}/complete", json={"score": 101}, headers=staff)
    assert too_high.status_code == 400
    assert too_high.json()["error"] == "VALIDATION_ERROR"
    assert "score" in too_high.json()["fields"]
    assert requests.post(f"{url}/lessons/{lesson}/complete", data="{oops",
                         headers=staff).status_code == 400
    assert requests.post(f"{url}/lessons/no-such-lesson/complete", headers=staff).status_code == 404
    assert requests.post(f"{lessons}/api/lessons/enrollments/nobody/lessons/{lesson}/complete",
                         headers=staff).status_code == 404
    assert requests.get(f"{lessons}/api/lessons/enrollments/nobody", headers=staff).status_code == 404
    assert {l["status"] for l in requests.get(url, headers=staff).json()["lessons"]} == {"assigned"}
