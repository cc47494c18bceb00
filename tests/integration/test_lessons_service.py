"""lessons against real RabbitMQ and SecantusDB: catalog, assignment, completion."""
import pymongo
import pytest
import requests

from hocvu.clock import utcnow
from hocvu.events import new_event
from services.lessons.service import LessonsService
from tests.support.fixtures import base_url
from tests.support.settling import deliveries_settled, wait_until_handled, wait_until_relayed
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ASSIGN_QUEUE = "evt-enrollment-learner_enrolled--lessons.assign_lessons"
CATALOG_QUEUE = "evt-lessons-course_published--enrollment.remember_course"
COMPLETED_QUEUE = "evt-lessons-course_completed--certificates.issue_certificate"
ASSIGNED_TAP = "test-tap-lessons_assigned"


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
        service_config, run_service, pika_client, staff):
    config = service_config("lessons")
    lessons = base_url(run_service(LessonsService, config))
    pika_client.declare_queue(ASSIGNED_TAP, "lessons.events", "lessons_assigned")
    before = deliveries_settled("lessons", "learner_enrolled")
    event = learner_enrolled()
    for _ in range(3):
        pika_client.publish("enrollment.events", "learner_enrolled", event)
    # every delivery handled and every event relayed before counting: the plan is one
    # document by construction, so what could double is its announcement
    wait_until_handled("lessons", "learner_enrolled", before, 3)
    wait_until_relayed(config)
    assigned = pika_client.drain(ASSIGNED_TAP)
    assert [e["data"]["enrollment_id"] for e in assigned] == ["enr-1"]
    url = f"{lessons}/api/lessons/enrollments/enr-1"
    progress = requests.get(url, headers=staff).json()
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
    # the learner online for some lessons, a facilitator's class for the others (in order:
    # the citizens' course is taken in strict order)
    learner = issuer.headers("learner", phone="+84900000001", subject="learner:" + "1" * 32)
    for n, lesson_id in enumerate(lesson_ids):
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


LEARNER_SUBJECT = "learner:" + "1" * 32


def assigned_plan(lessons, pika_client, staff, enrollment_id="enr-1",
                  course_id="citizen-digital-basics"):
    pika_client.publish("enrollment.events", "learner_enrolled",
                        learner_enrolled(enrollment_id, course_id))
    url = f"{lessons}/api/lessons/enrollments/{enrollment_id}"
    return url, wait_for(lambda: requests.get(url, headers=staff).ok and
                         requests.get(url, headers=staff).json(), what="plan")


def test_in_a_strict_order_course_a_lesson_ahead_answers_409_naming_the_blocking_one(
        lessons, pika_client, staff):
    url, plan = assigned_plan(lessons, pika_client, staff)
    assert (plan["order"], plan["pass_mark"]) == ("strict", 50)
    first, second, third = plan["lessons"][:3]
    requests.post(f"{url}/lessons/{first['id']}/complete", json={"score": 90}, headers=staff)
    ahead = requests.post(f"{url}/lessons/{third['id']}/complete", json={"score": 90},
                          headers=staff)
    assert ahead.status_code == 409
    assert ahead.json()["error"] == "LESSON_OUT_OF_ORDER"
    assert ahead.json()["blocking_lesson"] == {"id": second["id"], "title": second["title"],
                                               "position": 2}
    assert second["title"] in ahead.json()["message"]
    statuses = [l["status"] for l in requests.get(url, headers=staff).json()["lessons"]]
    assert statuses == ["completed"] + ["assigned"] * 4


def test_in_a_free_order_course_any_lesson_completes_first(lessons, pika_client, staff):
    url, plan = assigned_plan(lessons, pika_client, staff, "enr-2", "student-digital-basics")
    assert plan["order"] == "free"
    last = plan["lessons"][-1]["id"]
    answer = requests.post(f"{url}/lessons/{last}/complete", json={"score": 90}, headers=staff)
    assert answer.status_code == 200 and answer.json()["lessons"][-1]["status"] == "completed"


def test_below_the_pass_mark_the_attempt_is_recorded_and_completes_nothing(
        lessons, pika_client, staff, issuer):
    url, plan = assigned_plan(lessons, pika_client, staff)
    first = plan["lessons"][0]["id"]
    learner = issuer.headers("learner", phone="+84900000001", subject=LEARNER_SUBJECT)
    failed = requests.post(f"{url}/lessons/{first}/complete", json={"score": 30}, headers=learner)
    assert failed.status_code == 200
    lesson = failed.json()["lessons"][0]
    assert (lesson["status"], lesson["attempts"], lesson["last_score"], lesson["score"]) == (
        "assigned", 1, 30, None)
    assert lesson["last_attempt_at"] is not None
    no_score = requests.post(f"{url}/lessons/{first}/complete", json={}, headers=learner)
    assert no_score.status_code == 400 and "score" in no_score.json()["fields"]
    passed = requests.post(f"{url}/lessons/{first}/complete", json={"score": 75}, headers=learner)
    lesson = passed.json()["lessons"][0]
    assert (lesson["status"], lesson["attempts"], lesson["score"]) == ("completed", 2, 75)
    completed = wait_for(lambda: pika_client.drain(
        "evt-lessons-lesson_completed--notifications.note_progress"), what="lesson_completed")
    assert [e["data"]["score"] for e in completed] == [75]


def enrollment_cancelled(enrollment_id="enr-1"):
    return new_event("enrollment_cancelled", {
        "enrollment_id": enrollment_id, "learner_id": "lrn-1",
        "course_id": "citizen-digital-basics", "group": "citizen", "province_code": "38",
        "commune_code": "14845", "learner_subject": LEARNER_SUBJECT,
        "cancelled_at": utcnow(), "cancelled_by": "learner"}, correlation_id="corr-1")


def test_a_cancelled_enrollment_completes_nothing_more_and_never_completes_the_course(
        lessons, pika_client, staff):
    url, plan = assigned_plan(lessons, pika_client, staff)
    lesson_ids = [l["id"] for l in plan["lessons"]]
    for lesson_id in lesson_ids[:-1]:
        requests.post(f"{url}/lessons/{lesson_id}/complete", json={"score": 90}, headers=staff)
    cancellation = enrollment_cancelled()
    for _ in range(2):
        pika_client.publish("enrollment.events", "enrollment_cancelled", cancellation)
    stopped = wait_for(lambda: requests.get(url, headers=staff).json()["status"] == "cancelled"
                       and requests.get(url, headers=staff).json(), what="the plan stopped")
    assert stopped["cancelled_at"] is not None
    last = requests.post(f"{url}/lessons/{lesson_ids[-1]}/complete", json={"score": 90},
                         headers=staff)
    assert last.status_code == 409 and last.json()["error"] == "ENROLLMENT_CANCELLED"
    assert requests.get(url, headers=staff).json()["lessons"][-1]["status"] == "assigned"
    assert pika_client.drain(COMPLETED_QUEUE) == []


def test_a_cancellation_that_arrives_before_the_enrollment_leaves_no_plan(
        service_config, run_service, mongo_uri, pika_client, staff):
    # one worker: the two learner_enrolled below are handled in the order they were sent
    config = service_config("lessons", max_workers=1)
    lessons = base_url(run_service(LessonsService, config))
    pika_client.publish("enrollment.events", "enrollment_cancelled", enrollment_cancelled("enr-3"))
    with pymongo.MongoClient(mongo_uri) as client:
        wait_for(lambda: client[config["MONGO_DATABASE"]].cancellations.find_one({"_id": "enr-3"}),
                 what="the cancellation noted")
    pika_client.publish("enrollment.events", "learner_enrolled", learner_enrolled("enr-3"))
    assigned_plan(lessons, pika_client, staff, "enr-4")
    assert requests.get(f"{lessons}/api/lessons/enrollments/enr-3",
                        headers=staff).status_code == 404
    assigned = wait_for(lambda: pika_client.drain(
        "evt-lessons-lessons_assigned--notifications.remember_lessons"), what="lessons_assigned")
    assert [e["data"]["enrollment_id"] for e in assigned] == ["enr-4"]
