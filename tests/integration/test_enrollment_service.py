"""enrollment against real RabbitMQ and SecantusDB: validation, de-duplication, events."""
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pymongo
import pytest
import requests

from hocvu.events import new_event
from hocvu.outbox import CHANGES_WITH_EVENTS
from hocvu.sealing import Opener
from services.enrollment.service import EnrollmentService
from tests.support.fixtures import SEALING_PRIVATE_KEY, base_url
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


def test_enrolling_stores_the_learner_and_announces_them(enrollment, pika_client, issuer):
    staff = issuer.facilitator()
    answer = requests.post(f"{enrollment}/api/enrollment/enrollments", json=body(), headers=staff)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["status"] == "active" and created["course_id"] == "official-digital-basics"

    shown = requests.get(f"{enrollment}/api/enrollment/enrollments/{created['id']}",
                         headers=staff).json()
    assert shown["learner"]["phone"] == "+84*****5678"
    assert shown["learner"]["national_id_last4"] == "4321"

    to_lessons = wait_for(lambda: pika_client.drain(LESSONS_QUEUE), what="learner_enrolled")
    contact = wait_for(lambda: pika_client.drain(CONTACT_QUEUE), what="contact event")
    assert len(to_lessons) == 1 and len(contact) == 1
    assert to_lessons[0]["data"]["enrollment_id"] == created["id"]
    # the number travels sealed: only notifications' private key opens it
    assert Opener(SEALING_PRIVATE_KEY).open(contact[0]["data"]["sealed_phone"]) == "+84912345678"
    assert contact[0]["correlation_id"] == to_lessons[0]["correlation_id"]
    everything = json.dumps(to_lessons + contact)
    assert "038185004321" not in everything        # the national ID never travels
    assert "912345678" not in everything           # nor the phone number in clear
    assert "phone" not in json.dumps(to_lessons)   # the phone goes to notifications only


def test_the_same_person_enrolling_twice_gets_409_with_the_first_enrollment(enrollment,
                                                                             pika_client, issuer):
    staff = issuer.facilitator()
    first = requests.post(f"{enrollment}/api/enrollment/enrollments", json=body(),
                          headers=staff).json()
    again = requests.post(f"{enrollment}/api/enrollment/enrollments",
                          json=body(phone="+84987654321", full_name="Hoàng T. Lan"), headers=staff)
    assert again.status_code == 409
    assert again.json()["error"] == "ALREADY_ENROLLED"
    assert again.json()["enrollment_id"] == first["id"]
    wait_for(lambda: pika_client.depth(LESSONS_QUEUE) >= 1, what="first event")
    assert len(pika_client.drain(LESSONS_QUEUE)) == 1


def test_invalid_or_unknown_input_changes_nothing(enrollment, pika_client, issuer):
    url = f"{enrollment}/api/enrollment/enrollments"
    staff = issuer.facilitator()
    invalid = requests.post(url, json=body(phone="01234567890", national_id="038195004321",
                                           group="pirate", commune_code="123"), headers=staff)
    assert invalid.status_code == 400
    fields = invalid.json()["fields"]
    assert set(fields) == {"learner.phone", "learner.national_id", "learner.group",
                           "learner.commune_code"}
    assert invalid.json()["error"] == "VALIDATION_ERROR"

    unknown = requests.post(url, json={**body(), "course_id": "no-such-course"}, headers=staff)
    assert unknown.status_code == 404
    wrong_group = requests.post(url, json=body(group="student"), headers=staff)
    assert wrong_group.status_code == 409 and "course_id" in wrong_group.json()["fields"]
    assert wrong_group.json()["error"] == "COURSE_FOR_ANOTHER_GROUP"
    assert requests.post(url, data="{not json", headers=staff).status_code == 400
    assert requests.post(url, json=["a list"], headers=staff).status_code == 400
    assert requests.get(f"{enrollment}/api/enrollment/enrollments/nope",
                        headers=staff).status_code == 404

    # nothing was stored or published: the same person can still enroll
    assert requests.post(url, json=body(), headers=staff).status_code == 201
    wait_for(lambda: pika_client.depth(LESSONS_QUEUE) >= 1, what="the one event")
    assert len(pika_client.drain(LESSONS_QUEUE)) == 1


def test_who_may_enroll_whom(enrollment, pika_client, issuer):
    """The attacks of the sign-in issue, tried against the service itself."""
    url = f"{enrollment}/api/enrollment/enrollments"
    assert requests.post(url, json=body()).status_code == 401          # no token
    # a learner enrolls themselves only with the number they signed in with (no SMS pumping)
    other_number = requests.post(url, json=body(), headers=issuer.learner("+84987654321"))
    assert other_number.status_code == 403 and "learner.phone" in other_number.json()["fields"]
    # staff only in their communes
    elsewhere = requests.post(url, json=body(), headers=issuer.facilitator(communes=("00004",)))
    assert elsewhere.status_code == 403
    assert requests.post(url, json=body(), headers=issuer.province_admin("01")).status_code == 403

    mine = requests.post(url, json=body(), headers=issuer.learner("+84912345678"))
    assert mine.status_code == 201, mine.text

    # someone else, signed in with their own number, claims the same national ID under
    # another name and number: refused without the enrollment id, the profile unchanged
    hijack = requests.post(url, json=body(phone="0987654321", full_name="Kẻ Giả Mạo"),
                           headers=issuer.learner("+84987654321"))
    assert hijack.status_code == 409 and hijack.json()["error"] == "PROFILE_MISMATCH"
    assert "enrollment_id" not in hijack.json()
    # a facilitator of another commune repeating it with the same details gets no id either
    repeat = requests.post(url, json=body(commune_code="16000"),
                           headers=issuer.facilitator(communes=("16000",)))
    assert repeat.status_code == 409 and "enrollment_id" not in repeat.json()
    own_repeat = requests.post(url, json=body(), headers=issuer.learner("+84912345678"))
    assert own_repeat.json()["enrollment_id"] == mine.json()["id"]

    shown = requests.get(f"{url}/{mine.json()['id']}", headers=issuer.facilitator()).json()
    assert shown["learner"]["full_name"] == "Hoàng Thị Lan"
    assert shown["learner"]["phone"] == "+84*****5678"
    for outsider in (issuer.learner("+84987654321"), issuer.facilitator(communes=("16000",)),
                     issuer.province_admin("01")):
        assert requests.get(f"{url}/{mine.json()['id']}", headers=outsider).status_code == 404
    wait_for(lambda: pika_client.depth(LESSONS_QUEUE) >= 1, what="the one event")
    assert len(pika_client.drain(LESSONS_QUEUE)) == 1


def test_lists_are_scoped_and_paged(enrollment, issuer):
    url = f"{enrollment}/api/enrollment/enrollments"
    staff = issuer.facilitator(communes=("14845", "14812"))
    ids = []
    for n, commune in enumerate(["14845", "14812", "14845", "16000"]):
        national_id = f"0381850043{n:02d}"
        headers = staff if commune != "16000" else issuer.facilitator(communes=("16000",))
        answer = requests.post(url, json=body(national_id=national_id, commune_code=commune,
                                              phone=f"091234{n:04d}"), headers=headers)
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    first = requests.get(url, params={"limit": 2}, headers=staff).json()
    second = requests.get(url, params={"limit": 2, "cursor": first["next_cursor"]},
                          headers=staff).json()
    assert [e["id"] for e in first["items"] + second["items"]] == ids[:3]
    assert second["next_cursor"] is None
    only = requests.get(url, params={"commune_code": "14812"}, headers=staff).json()
    assert [e["id"] for e in only["items"]] == [ids[1]]
    assert requests.get(url, params={"commune_code": "16000"}, headers=staff).json()["items"] == []
    province = requests.get(url, headers=issuer.province_admin()).json()
    assert len(province["items"]) == 4
    learner = requests.get(url, headers=issuer.learner("+84912340002")).json()
    assert [e["id"] for e in learner["items"]] == [ids[2]]
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"cursor": "nope"},
                {"commune_code": "1"}):
        answer = requests.get(url, params=bad, headers=staff)
        assert answer.status_code == 400, bad
    assert requests.get(url).status_code == 401


def relay_caught_up(db) -> bool:
    """The service's relay confirmed every event written so far (its saved resume token is
    at the end of the change stream): whatever it will ever publish is in the queues."""
    state = db.relay_state.find_one({"_id": "relay"})
    if state is None:
        return False
    with db.watch(CHANGES_WITH_EVENTS, resume_after=state["resume_token"],
                  max_await_time_ms=10) as stream:
        return stream.try_next() is None


def test_the_same_learner_posted_by_many_at_once_is_enrolled_once(enrollment, pika_client,
                                                                  issuer, service_config):
    """Eight facilitators' screens sending the same learner at the same moment: one wins
    (201), every other answer is 409 naming that enrollment, and one enrollment and one
    pair of events exist."""
    staff = issuer.facilitator()
    url = f"{enrollment}/api/enrollment/enrollments"
    racers = 8
    start = threading.Barrier(racers)

    def post(_):
        session = requests.Session()
        start.wait()
        return session.post(url, json=body(), headers=staff, timeout=30)

    with ThreadPoolExecutor(racers) as pool:
        answers = list(pool.map(post, range(racers)))

    assert sorted(a.status_code for a in answers) == [201] + [409] * (racers - 1), \
        [(a.status_code, a.text) for a in answers]
    created = next(a.json() for a in answers if a.status_code == 201)
    for refused in (a.json() for a in answers if a.status_code == 409):
        assert refused["error"] == "ALREADY_ENROLLED"
        assert refused["enrollment_id"] == created["id"]

    config = service_config("enrollment")
    with pymongo.MongoClient(config["MONGO_URI"]) as client:
        db = client[config["MONGO_DATABASE"]]
        assert db.enrollments.count_documents({}) == 1
        assert db.learners.count_documents({}) == 1
        wait_for(lambda: relay_caught_up(db), what="the relay past every event")
    enrolled, contact = pika_client.drain(LESSONS_QUEUE), pika_client.drain(CONTACT_QUEUE)
    assert [e["data"]["enrollment_id"] for e in enrolled] == [created["id"]]
    assert [e["data"]["enrollment_id"] for e in contact] == [created["id"]]


CANCELLED_QUEUES = [f"evt-enrollment-enrollment_cancelled--{consumer}" for consumer in (
    "lessons.stop_plan", "certificates.note_cancellation",
    "notifications.stop_reminders_for_cancellation")]


def test_a_commune_of_another_province_is_refused_and_changes_nothing(enrollment, pika_client,
                                                                      issuer):
    url = f"{enrollment}/api/enrollment/enrollments"
    answer = requests.post(url, json=body(commune_code="00004"),
                           headers=issuer.province_admin())
    assert answer.status_code == 400
    assert answer.json()["fields"] == {"learner.commune_code": [
        "00004 (Phường Ba Đình) is in Thành phố Hà Nội (01), not in province 38"]}
    assert requests.get(url, headers=issuer.province_admin()).json()["items"] == []
    assert pika_client.depth(LESSONS_QUEUE) == 0


def test_the_catalog_of_provinces_and_communes_is_public_with_names(enrollment):
    provinces = requests.get(f"{enrollment}/api/enrollment/provinces")
    assert provinces.status_code == 200
    assert len(provinces.json()) == 34
    assert {"code": "38", "name": "Tỉnh Thanh Hoá"} in provinces.json()
    communes = requests.get(f"{enrollment}/api/enrollment/communes", params={"province": "38"})
    assert communes.status_code == 200
    assert communes.json()["province"] == {"code": "38", "name": "Tỉnh Thanh Hoá"}
    assert len(communes.json()["communes"]) == 166
    assert {"code": "14845", "name": "Xã Mường Lát"} in communes.json()["communes"]
    assert communes.headers["Cache-Control"] == "public, max-age=86400"
    for bad in ({}, {"province": "99"}, {"province": "3"}):
        refused = requests.get(f"{enrollment}/api/enrollment/communes", params=bad)
        assert refused.status_code == 400 and "province" in refused.json()["fields"], bad


def test_cancelling_is_for_the_learner_or_staff_in_scope_and_announced_once(
        enrollment, pika_client, issuer):
    url = f"{enrollment}/api/enrollment/enrollments"
    created = requests.post(url, json=body(), headers=issuer.facilitator()).json()
    cancel = f"{url}/{created['id']}/cancel"
    for outsider in (issuer.learner("+84987654321"), issuer.facilitator(communes=("16000",)),
                     issuer.province_admin("01")):
        assert requests.post(cancel, headers=outsider).status_code == 404
    assert requests.post(cancel).status_code == 401
    assert requests.get(f"{url}/{created['id']}",
                        headers=issuer.facilitator()).json()["status"] == "active"

    learner = issuer.learner("+84912345678")
    cancelled = requests.post(cancel, headers=learner)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancelled_at"]
    again = requests.post(cancel, headers=issuer.facilitator())
    assert again.status_code == 200 and again.json() == cancelled.json()

    for queue in CANCELLED_QUEUES:
        events = wait_for(lambda q=queue: pika_client.drain(q), what=queue)
        assert len(events) == 1, queue
    data = events[0]["data"]
    assert (data["enrollment_id"], data["cancelled_by"], data["commune_code"]) == (
        created["id"], "learner", "14845")
    assert "912345678" not in json.dumps(events) and "038185004321" not in json.dumps(events)
    listed = requests.get(url, headers=issuer.facilitator()).json()["items"]
    assert [(e["status"], e["cancelled_at"]) for e in listed] == [
        ("cancelled", cancelled.json()["cancelled_at"])]
