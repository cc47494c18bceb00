"""One learner's whole journey over HTTP, the four services running as separate processes."""
import pytest
import requests

from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

LEARNER = {"full_name": "Nguyễn Thị Hoa", "phone": "0912 345 678",
           "national_id": "038195001234", "birth_year": 1995, "group": "citizen",
           "province_code": "38", "commune_code": "14845"}


def test_enroll_learn_certify_and_hear_about_it(platform):
    """Through the nginx edge, as a frontend calls it."""
    courses = requests.get(platform.url("lessons", "courses")).json()
    assert sorted(c["group"] for c in courses) == ["citizen", "official", "student", "worker"]
    course = next(c for c in courses if c["group"] == "citizen")

    enrollments = platform.url("enrollment", "enrollments")
    answer = requests.post(enrollments, json={"course_id": course["id"], "learner": LEARNER})
    assert answer.status_code == 201, answer.text
    enrollment = answer.json()
    assert enrollment["status"] == "active"
    assert requests.get(f"{enrollments}/{enrollment['id']}").status_code == 200

    # the bad cases: none of them changes anything
    again = requests.post(enrollments, json={"course_id": course["id"], "learner": LEARNER})
    assert again.status_code == 409 and again.json()["enrollment_id"] == enrollment["id"]
    invalid = requests.post(enrollments, json={"course_id": course["id"], "learner": {
        **LEARNER, "phone": "12345", "national_id": "0381950012"}})
    assert invalid.status_code == 400
    assert set(invalid.json()["fields"]) == {"learner.phone", "learner.national_id"}
    unknown = requests.post(enrollments, json={"course_id": "no-such-course", "learner": LEARNER})
    assert unknown.status_code == 404
    assert requests.get(f"{enrollments}/no-such-enrollment").status_code == 404

    progress_url = platform.url("lessons", f"enrollments/{enrollment['id']}")
    progress = wait_for(lambda: requests.get(progress_url).ok and requests.get(progress_url).json(),
                        what="lessons assigned")
    assert [l["id"] for l in progress["lessons"]] == [l["id"] for l in course["lessons"]]
    for lesson in progress["lessons"]:
        done = requests.post(f"{progress_url}/lessons/{lesson['id']}/complete", json={"score": 85})
        assert done.status_code == 200
    assert done.json()["completed"] is True
    repeat = requests.post(f"{progress_url}/lessons/{progress['lessons'][0]['id']}/complete")
    assert repeat.status_code == 200
    assert requests.post(f"{progress_url}/lessons/nope/complete").status_code == 404

    certificates_url = platform.url("certificates", "certificates")
    certificates = wait_for(lambda: requests.get(
        certificates_url, params={"enrollment_id": enrollment["id"]}).json(), what="certificate")
    assert len(certificates) == 1
    certificate = certificates[0]
    assert certificate["status"] == "valid" and certificate["full_name"] == "Nguyễn Thị Hoa"
    verified = requests.get(platform.url("certificates",
                                         f"verify/{certificate['verification_code']}"))
    assert verified.status_code == 200 and verified.json()["course_title"] == course["title"]
    assert requests.get(platform.url("certificates", "verify/AAAA-BBBB-CCCC")).status_code == 404

    messages_url = platform.url("notifications", "messages")

    def delivered():
        found = requests.get(messages_url, params={"learner_id": enrollment["learner_id"]}).json()
        return len(found) == 2 and all(m["status"] == "delivered" for m in found) and found

    messages = {m["template"]: m for m in wait_for(delivered, what="both SMS delivered")}
    assert set(messages) == {"enrollment_confirmed", "certificate_issued"}
    assert all(m["to"] == "+84*****5678" for m in messages.values())
    assert certificate["verification_code"] in messages["certificate_issued"]["text"]

    received = requests.get(f"{platform.sms_gateway}/v1/messages",
                            params={"to": "84912345678"}).json()["messages"]
    assert sorted(m["request_id"] for m in received) == sorted(m["id"] for m in messages.values())


def test_the_edge_routes_by_prefix_and_answers_errors_in_the_envelope(platform):
    for service in ("enrollment", "lessons", "certificates", "notifications"):
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
    for service in ("enrollment", "lessons", "certificates", "notifications"):
        text = platform.processes[service].log_path.read_text()
        assert text.strip(), service
        for line in text.splitlines():
            record = json.loads(line)  # a line that is not JSON fails here, with its text
            assert record["service"] == service and record["level"] and record["timestamp"]
