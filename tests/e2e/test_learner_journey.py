"""One learner's whole journey over HTTP, the four services running as separate processes."""
import datetime
import re

import pika
import pytest
import requests

from hocvu import contracts
from hocvu_tools.devstack import accounts
from tests.support.signin import learner_headers
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
SERVICES = ("enrollment", "lessons", "certificates", "notifications", "identity", "reporting")
CAPTURE_QUEUE = "e2e-capture-every-event"

LEARNER = {"full_name": "Nguyễn Thị Hoa", "phone": "0912 345 678",
           "national_id": "038195001234", "birth_year": 1995, "group": "citizen",
           "province_code": "38", "commune_code": "14845"}


@pytest.fixture(scope="module")
def captured_events(platform):
    """A queue bound to every service's event exchange from before the journey on: what the
    platform published, as anyone with access to the broker would see it."""
    connection = pika.BlockingConnection(pika.URLParameters(platform.settings.amqp_uri))
    channel = connection.channel()
    channel.queue_declare(CAPTURE_QUEUE, durable=False, exclusive=False, auto_delete=False)
    for source in sorted(set(contracts.SOURCES.values())):
        channel.exchange_declare(f"{source}.events", "topic", durable=True)
        channel.queue_bind(CAPTURE_QUEUE, f"{source}.events", "#")

    def drain() -> list[bytes]:
        bodies = []
        while (message := channel.basic_get(CAPTURE_QUEUE, auto_ack=True))[0]:
            bodies.append(message[2])
        return bodies

    yield drain
    channel.queue_delete(CAPTURE_QUEUE)
    connection.close()


@pytest.fixture(scope="module")
def admin(platform):
    """The province admin, signed in once for the module: sign-in is rate-limited at the
    edge."""
    return accounts.province_admin(platform)


@pytest.fixture(scope="module")
def facilitator(platform, admin):
    """The province admin's facilitator for Mường Lát (14845), signed in once for the module."""
    return accounts.create_facilitator(platform, admin, "e2e-facilitator", ["14845"])


def test_a_facilitators_morning_and_a_learners_online_lessons(platform, captured_events,
                                                              admin, facilitator):
    """Through the nginx edge, as a frontend calls it: the province admin creates a
    facilitator, who enrolls a learner at their commune's site; the learner signs in with
    the code texted to them and completes the lessons online; anyone verifies the
    certificate; then its PDF, its revocation and another enrollment's cancellation."""
    courses = requests.get(platform.url("lessons", "courses")).json()
    assert sorted(c["group"] for c in courses) == ["citizen", "official", "student", "worker"]
    course = next(c for c in courses if c["group"] == "citizen")

    staff = facilitator.headers()

    enrollments = platform.url("enrollment", "enrollments")
    assert requests.post(enrollments, json={"course_id": course["id"],
                                            "learner": LEARNER}).status_code == 401
    answer = requests.post(enrollments, json={"course_id": course["id"], "learner": LEARNER},
                           headers=staff)
    assert answer.status_code == 201, answer.text
    enrollment = answer.json()
    assert enrollment["status"] == "active"
    assert requests.get(f"{enrollments}/{enrollment['id']}", headers=staff).status_code == 200

    # the bad cases: none of them changes anything
    again = requests.post(enrollments, json={"course_id": course["id"], "learner": LEARNER},
                          headers=staff)
    assert again.status_code == 409 and again.json()["enrollment_id"] == enrollment["id"]
    invalid = requests.post(enrollments, headers=staff, json={"course_id": course["id"], "learner": {
        **LEARNER, "phone": "12345", "national_id": "0381950012"}})
    assert invalid.status_code == 400
    assert set(invalid.json()["fields"]) == {"learner.phone", "learner.national_id"}
    unknown = requests.post(enrollments, json={"course_id": "no-such-course", "learner": LEARNER},
                            headers=staff)
    assert unknown.status_code == 404
    assert requests.get(f"{enrollments}/no-such-enrollment", headers=staff).status_code == 404

    learner = learner_headers(platform, LEARNER["phone"].replace(" ", ""))
    mine = requests.get(enrollments, headers=learner).json()["items"]
    assert [e["id"] for e in mine] == [enrollment["id"]]

    progress_url = platform.url("lessons", f"enrollments/{enrollment['id']}")
    progress = wait_for(lambda: requests.get(progress_url, headers=learner).ok and
                        requests.get(progress_url, headers=learner).json(), what="lessons assigned")
    assert [l["id"] for l in progress["lessons"]] == [l["id"] for l in course["lessons"]]
    for lesson in progress["lessons"]:
        done = requests.post(f"{progress_url}/lessons/{lesson['id']}/complete", json={"score": 85},
                             headers=learner)
        assert done.status_code == 200, done.text
    assert done.json()["completed"] is True
    repeat = requests.post(f"{progress_url}/lessons/{progress['lessons'][0]['id']}/complete",
                           headers=learner)
    assert repeat.status_code == 200
    assert requests.post(f"{progress_url}/lessons/nope/complete",
                         headers=learner).status_code == 404

    certificates_url = platform.url("certificates", "certificates")
    certificates = wait_for(lambda: requests.get(certificates_url, headers=learner).json()["items"],
                            what="certificate")
    assert len(certificates) == 1
    certificate = certificates[0]
    assert certificate["status"] == "valid" and certificate["full_name"] == "Nguyễn Thị Hoa"
    verified = requests.get(platform.url("certificates",
                                         f"verify/{certificate['verification_code']}"))
    assert verified.status_code == 200 and verified.json()["course_title"] == course["title"]
    assert requests.get(platform.url("certificates", "verify/AAAA-BBBB-CCCC")).status_code == 404

    messages_url = platform.url("notifications", "messages")

    def delivered():
        found = requests.get(messages_url, headers=learner).json()["items"]
        return len(found) == 2 and all(m["status"] == "delivered" for m in found) and found

    messages = {m["template"]: m for m in wait_for(delivered, what="both SMS delivered")}
    assert set(messages) == {"enrollment_confirmed", "certificate_issued"}
    assert all(m["to"] == "+84*****5678" for m in messages.values())
    assert certificate["verification_code"] in messages["certificate_issued"]["text"]
    assert requests.get(messages_url, headers=staff).json()["items"]

    received = requests.get(f"{platform.sms_gateway}/v1/messages",
                            params={"to": "84912345678"}).json()["messages"]
    ours = {m["request_id"] for m in received}
    assert {m["id"] for m in messages.values()} <= ours and len(ours) == 3  # and the code

    # another learner sees none of it, not even that it exists
    stranger = learner_headers(platform, "0987654321")
    assert requests.get(progress_url, headers=stranger).status_code == 404
    assert requests.get(certificates_url, headers=stranger).json()["items"] == []
    assert requests.get(messages_url, headers=stranger).json()["items"] == []
    hijack = requests.post(enrollments, headers=stranger, json={
        "course_id": course["id"], "learner": {**LEARNER, "phone": "0987654321"}})
    assert hijack.status_code == 409 and "enrollment_id" not in hijack.json()

    then_her_pdf_a_revocation_and_a_cancellation(platform, admin, facilitator, learner,
                                                 certificate)


def then_her_pdf_a_revocation_and_a_cancellation(platform, admin, facilitator, learner,
                                                 certificate):
    """Through the edge, after the journey: the learner downloads her certificate (its QR
    code leads to the verification, which says valid); the province admin revokes it
    (verification says when and why, she is texted); the facilitator cancels another
    learner's enrollment, whose lessons then stop. The sessions are the journey's: the edge
    limits sign-ins per address."""
    import io

    import pypdf
    import zxingcpp

    document = requests.get(platform.url("certificates",
                                         f"certificates/{certificate['id']}/pdf"), headers=learner)
    assert document.status_code == 200 and document.headers["Content-Type"] == "application/pdf"
    page = pypdf.PdfReader(io.BytesIO(document.content)).pages[0]
    assert "Nguyễn Thị Hoa" in page.extract_text()
    qr = [found.text for image in page.images for found in zxingcpp.read_barcodes(image.image)]
    code = certificate["verification_code"].replace("-", "")
    assert qr == [platform.url("certificates", f"verify/{code}")]
    assert requests.get(qr[0]).json()["status"] == "valid"

    revoked = requests.post(platform.url("certificates", f"certificates/{certificate['id']}/revoke"),
                            json={"reason": "Cấp nhầm, sẽ cấp lại"}, headers=admin.headers())
    assert revoked.status_code == 200, revoked.text
    verified = requests.get(qr[0]).json()
    assert (verified["status"], verified["revocation_reason"]) == ("revoked", "Cấp nhầm, sẽ cấp lại")
    assert verified["revoked_at"] == revoked.json()["revoked_at"]
    assert requests.get(document.url, headers=learner).status_code == 409
    messages_url = platform.url("notifications", "messages")
    texted = wait_for(lambda: [m for m in requests.get(messages_url, headers=learner).json()["items"]
                               if m["template"] == "certificate_revoked"], what="the revocation SMS")
    assert "Cap nham, se cap lai" in texted[0]["text"]

    other = {**LEARNER, "full_name": "Trần Văn Bình", "phone": "0987 111 222",
             "national_id": "038090001111", "birth_year": 1990}
    staff = facilitator.headers()
    enrollment = requests.post(platform.url("enrollment", "enrollments"), headers=staff,
                               json={"course_id": "citizen-digital-basics", "learner": other}).json()
    progress_url = platform.url("lessons", f"enrollments/{enrollment['id']}")
    plan = wait_for(lambda: requests.get(progress_url, headers=staff).ok and
                    requests.get(progress_url, headers=staff).json(), what="plan")
    cancelled = requests.post(platform.url("enrollment", f"enrollments/{enrollment['id']}/cancel"),
                              headers=staff)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    wait_for(lambda: requests.get(progress_url, headers=staff).json()["status"] == "cancelled",
             what="the plan stopped")
    refused = requests.post(f"{progress_url}/lessons/{plan['lessons'][0]['id']}/complete",
                            json={"score": 90}, headers=staff)
    assert refused.status_code == 409 and refused.json()["error"] == "ENROLLMENT_CANCELLED"


def test_a_facilitators_morning_from_lists(platform, facilitator):
    """Through the edge, as README's journey does it: a facilitator imports her site's list as
    Excel saves it, reads the report, turns the national IDs of those present into
    enrollments, records every lesson as a class, and sees their certificates."""
    staff = facilitator.headers()
    site_list = ("\ufeffSTT;Họ và tên;Số CCCD;Số điện thoại;Năm sinh;Đối tượng\r\n"
                 "1;Trần Văn Bình;038190007777;912000777;1990;Người dân\r\n"
                 "2;Lò Thị Mai;38188006666;0912000666;1988;Người dân\r\n"
                 "3;Hà Văn Sáng;038199;0912000555;1999;Người dân\r\n;;;;;\r\n")
    imports = platform.url("enrollment", "imports")
    answer = requests.post(imports, params={"course_id": "citizen-digital-basics",
                                            "commune_code": "14845"},
                           data=site_list.encode("utf-8"),
                           headers={**staff, "Content-Type": "text/csv"})
    assert answer.status_code == 202, answer.text
    job_url = platform.url("enrollment", f"imports/{answer.json()['id']}")
    job = wait_for(lambda: (lambda j: j["status"] == "done" and j)(
        requests.get(job_url, headers=staff).json()), what="the import")
    assert job["counts"] == {"valid": 2, "enrolled": 2, "already_enrolled": 0, "invalid": 1}
    report = requests.get(f"{job_url}/report", headers=staff).content.decode("utf-8-sig")
    assert report.splitlines()[1].startswith('4,invalid,national_id,"Số CCCD: ')

    present = "Số CCCD\r\n038190007777\r\n038188006666\r\n"
    found = requests.post(platform.url("enrollment", "enrollments/lookup"),
                          params={"course_id": "citizen-digital-basics"},
                          data=present.encode(), headers={**staff, "Content-Type": "text/csv"})
    assert found.status_code == 200, found.text
    ids = [item["enrollment_id"] for item in found.json()["items"]]
    assert len(ids) == 2 and found.json()["problems"] == []
    for enrollment_id in ids:
        wait_for(lambda: requests.get(platform.url("lessons", f"enrollments/{enrollment_id}"),
                                      headers=staff).ok, what="lesson plan")
    course = requests.get(platform.url("lessons", "courses/citizen-digital-basics")).json()
    for lesson in course["lessons"]:
        session = requests.post(platform.url("lessons", "sessions"), headers=staff, json={
            "course_id": course["id"], "lesson_id": lesson["id"], "commune_code": "14845",
            "site": "Nhà văn hoá bản Mường Lát", "date": datetime.date.today().isoformat(),
            "enrollment_ids": ids})
        assert session.status_code == 201, session.text
        assert [r["outcome"] for r in session.json()["results"]] == ["completed"] * 2
    certificates = wait_for(lambda: (lambda items: len(items) == 2 and items)([
        c for c in requests.get(platform.url("certificates", "certificates"),
                                headers=staff).json()["items"] if c["enrollment_id"] in ids]),
        what="two certificates")
    assert sorted(c["full_name"] for c in certificates) == ["Lò Thị Mai", "Trần Văn Bình"]


def test_the_edge_routes_by_prefix_and_answers_errors_in_the_envelope(platform):
    for service in SERVICES:
        document = requests.get(platform.url(service, "openapi.json"))
        assert document.status_code == 200 and document.headers["X-Request-ID"]
        # health is for operations, on the service's own port: the edge does not route it
        for probe in ("health/live", "health/ready"):
            ready = requests.get(platform.url_direct(service, probe))
            assert ready.status_code == 200 and ready.json()["service"] == service
            hidden = requests.get(platform.url(service, probe))
            assert hidden.status_code == 404 and hidden.json()["error"] == "NOT_FOUND"
    nowhere = requests.get(f"{platform.base_url}/nowhere")
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "NOT_FOUND"
    unknown_route = requests.get(platform.url("lessons", "no/such/route"))
    assert unknown_route.status_code == 404 and unknown_route.json()["error"] == "NOT_FOUND"
    document = requests.get(platform.url("enrollment", "openapi.json")).json()
    assert "/api/enrollment/enrollments" in document["paths"]


def test_every_line_each_service_logged_is_one_json_object(platform):
    import json
    for service in SERVICES:
        text = platform.processes[service].log_path.read_text()
        assert text.strip(), service
        for line in text.splitlines():
            record = json.loads(line)  # a line that is not JSON fails here, with its text
            assert record["service"] == service and record["level"] and record["timestamp"]


NATIONAL_ID = re.compile(r"(?<![0-9A-Za-z-])\d{12}(?![0-9A-Za-z-])")
PHONE = re.compile(r"(?<![0-9A-Za-z-])(?:\+?84|0)[35789]\d{8}(?![0-9A-Za-z-])")
# where a phone number must be, and nowhere else: notifications reaches learners by number,
# caps SMS per number and day (Decree 91/2020) and keeps opt-outs per number
ALLOWED = {("notifications", "contacts"): {"phone"}, ("notifications", "messages"): {"to"},
           ("notifications", "sms_queue"): {"to"}, ("notifications", "sms_waiting"): {"to"},
           ("notifications", "sms_outcomes"): {"to"},
           ("notifications", "sms_optouts"): {"_id"}}


def personal_data_in(text: str) -> list[str]:
    return NATIONAL_ID.findall(text) + PHONE.findall(text)


def test_no_national_id_or_phone_number_where_it_should_not_be(platform, captured_events):
    """After the journey: every store, every event published and every log line is scanned
    for 12-digit numbers and Vietnamese mobile numbers in any form."""
    import json
    import pymongo
    # the patterns find what they look for, in the forms the journey used
    assert personal_data_in('{"id": "038195001234", "a": "0912345678", "b": "+84912345678"}') \
        == ["038195001234", "0912345678", "+84912345678"]
    events = captured_events()
    assert len(events) >= 8  # the journey's events really were captured
    found = {}
    for body in events:
        found.update({f"event: {body[:120]!r}": hits for hits in [personal_data_in(body.decode())]
                      if hits})
    documents = 0
    for service in SERVICES:
        client = pymongo.MongoClient(platform.settings.mongo_uris[service])
        db = client[f"{platform.settings.database_prefix}{service}"]
        for name in db.list_collection_names():
            for doc in db[name].find():
                documents += 1
                for field in ALLOWED.get((service, name), ()):
                    doc.pop(field, None)
                hits = personal_data_in(json.dumps(doc, default=str, ensure_ascii=False))
                if hits:
                    found[f"store {service}.{name} {doc.get('_id')}"] = hits
    assert documents > 20
    # reports hold counts and places: not even a name, a sign-in subject or a birth year
    reporting = pymongo.MongoClient(platform.settings.mongo_uris["reporting"])[
        f"{platform.settings.database_prefix}reporting"]
    kept = json.dumps([doc for name in reporting.list_collection_names()
                       for doc in reporting[name].find()], default=str, ensure_ascii=False)
    assert "14845" in kept  # the learner's commune was counted
    for personal in (LEARNER["full_name"], "learner:", "birth_year", "full_name"):
        assert personal not in kept, personal
    lines = 0
    # the simulator stands in for the SMS provider, who is given the number to text it
    for log in platform.settings.log_dir.glob("*.log"):
        if log.name.startswith("sms_simulator"):
            continue
        for number, line in enumerate(log.read_text(errors="replace").splitlines(), start=1):
            lines += 1
            if hits := personal_data_in(line):
                found[f"{log.name}:{number}"] = hits
    assert lines > 20
    assert not found, found
