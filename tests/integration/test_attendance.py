"""Classes in lessons against real RabbitMQ and SecantusDB: recording a session completes
its lesson for each learner present, once, with the session as the reason."""
import datetime

import pytest
import requests

from hocvu.clock import utcnow
from hocvu.events import new_event
from services.lessons.service import LessonsService
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

COMPLETED_QUEUE = "evt-lessons-lesson_completed--notifications.note_progress"
COURSE = "citizen-digital-basics"


def enrolled(enrollment_id, commune="14845", course_id=COURSE, group="citizen"):
    return new_event("learner_enrolled", {
        "enrollment_id": enrollment_id, "learner_id": f"lrn-{enrollment_id}",
        "course_id": course_id, "course_title": "Kỹ năng số", "full_name": "Phạm Văn Nam",
        "group": group, "province_code": "38", "commune_code": commune,
        "learner_subject": "learner:" + "1" * 32, "enrolled_at": utcnow()},
        correlation_id=f"corr-{enrollment_id}")


@pytest.fixture
def lessons(service_config, run_service, pika_client, issuer):
    url = base_url(run_service(LessonsService, service_config("lessons")))
    for event in (enrolled("e1"), enrolled("e2"), enrolled("e3", commune="16000"),
                  enrolled("e4", course_id="student-digital-basics", group="student")):
        pika_client.publish("enrollment.events", "learner_enrolled", event)
    staff = issuer.province_admin()
    for enrollment_id in ("e1", "e2", "e3", "e4"):
        wait_for(lambda: requests.get(f"{url}/api/lessons/enrollments/{enrollment_id}",
                                      headers=staff).ok, what=f"plan {enrollment_id}")
    return url


def session_body(**changes):
    return {"course_id": COURSE, "lesson_id": "citizen-01-smartphone", "commune_code": "14845",
            "site": "Nhà văn hoá bản Mường Lát", "date": datetime.date.today().isoformat(),
            "enrollment_ids": ["e1", "e3", "e4", "nobody"], **changes}


def lesson(url, staff, enrollment_id, lesson_id="citizen-01-smartphone"):
    plan = requests.get(f"{url}/api/lessons/enrollments/{enrollment_id}", headers=staff).json()
    return next(item for item in plan["lessons"] if item["id"] == lesson_id)


def test_a_class_completes_its_lesson_for_those_present_once(lessons, issuer, pika_client):
    staff = issuer.facilitator()
    answer = requests.post(f"{lessons}/api/lessons/sessions", json=session_body(), headers=staff)
    assert answer.status_code == 201, answer.text
    session = answer.json()
    assert {r["enrollment_id"]: r["outcome"] for r in session["results"]} == {
        "e1": "completed", "e3": "not_found", "e4": "other_course", "nobody": "not_found"}
    assert session["present"] == ["e1"]
    done = lesson(lessons, staff, "e1")
    assert done["status"] == "completed" and done["reason"] == f"session:{session['id']}"

    # the same class recorded again (another phone at the site): the same session, one more
    # learner, and nobody's lesson completed twice
    again = requests.post(f"{lessons}/api/lessons/sessions", headers=staff,
                          json=session_body(site="  nhà văn hoá bản MƯỜNG LÁT ",
                                            enrollment_ids=["e1"]))
    assert again.status_code == 200 and again.json()["id"] == session["id"]
    assert again.json()["results"] == [{"enrollment_id": "e1", "outcome": "already_completed"}]
    one_by_one = requests.post(f"{lessons}/api/lessons/sessions/{session['id']}/attendance",
                               json={"enrollment_ids": ["e2"]}, headers=staff)
    assert one_by_one.status_code == 200, one_by_one.text
    assert sorted(one_by_one.json()["present"]) == ["e1", "e2"]
    shown = requests.get(f"{lessons}/api/lessons/sessions/{session['id']}", headers=staff).json()
    assert sorted(shown["present"]) == ["e1", "e2"] and "results" not in shown
    assert done == lesson(lessons, staff, "e1")   # the first completion stands
    completed = []
    wait_for(lambda: completed.extend(pika_client.drain(COMPLETED_QUEUE)) or len(completed) >= 2,
             what="two lesson_completed")
    assert sorted(e["data"]["enrollment_id"] for e in completed) == ["e1", "e2"]


def test_who_may_record_a_class(lessons, issuer):
    url = f"{lessons}/api/lessons/sessions"
    elsewhere = issuer.facilitator(communes=("16000",))
    assert requests.post(url, json=session_body(), headers=elsewhere).status_code == 403
    assert requests.post(url, json=session_body(),
                         headers=issuer.learner("+84912345678")).status_code == 403
    created = requests.post(url, json=session_body(enrollment_ids=[]),
                            headers=issuer.facilitator()).json()
    for path in (f"{url}/{created['id']}",):
        assert requests.get(path, headers=elsewhere).status_code == 404
    assert requests.post(f"{url}/{created['id']}/attendance", json={"enrollment_ids": ["e1"]},
                         headers=elsewhere).status_code == 404
    assert lesson(lessons, issuer.facilitator(), "e1")["status"] == "assigned"


def test_bad_sessions_change_nothing(lessons, issuer):
    staff = issuer.facilitator()
    url = f"{lessons}/api/lessons/sessions"
    tomorrow_plus = (datetime.date.today() + datetime.timedelta(days=3)).isoformat()
    cases = [(session_body(date=tomorrow_plus), 400, "date"),
             (session_body(site=""), 400, "site"),
             (session_body(commune_code="1484"), 400, "commune_code"),
             (session_body(enrollment_ids=["e"] * 501), 400, "enrollment_ids"),
             (session_body(lesson_id="student-01"), 404, "lesson_id"),
             (session_body(course_id="no-such-course"), 404, "course_id")]
    for body, status, field in cases:
        answer = requests.post(url, json=body, headers=staff)
        assert answer.status_code == status, answer.text
        assert field in answer.json()["fields"], answer.text
    assert lesson(lessons, staff, "e1")["status"] == "assigned"
