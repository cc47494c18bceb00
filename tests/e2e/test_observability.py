"""What operations see of one learner's journey, on the platform `make run` starts: one
correlation id followed through the four services' log files, every line of which is one
JSON object, and each service's metrics on its own port (never through the edge)."""
import json

import pytest
import requests

from hocvu_tools.devstack import accounts
from tests.support.signin import learner_headers
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e
JOURNEY_SERVICES = ("enrollment", "lessons", "certificates", "notifications")
LEARNER = {"full_name": "Trần Văn Bình", "phone": "0912 700 123",
           "national_id": "038190007123", "birth_year": 1990, "group": "citizen",
           "province_code": "38", "commune_code": "14845"}


def log_lines(platform, service: str) -> list[dict]:
    """Every line of the service's log file, parsed: fails on a line that is not JSON (an
    eventlet notice, a traceback printed raw)."""
    text = (platform.settings.log_dir / f"{service}.log").read_text()
    return [json.loads(line) for line in text.splitlines()]


def scrape(platform, service: str) -> str:
    answer = requests.get(platform.url_direct(service, "metrics"), timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    return answer.text


def test_one_id_follows_a_learner_through_the_four_services_logs(platform):
    course = next(c for c in requests.get(platform.url("lessons", "courses")).json()
                  if c["group"] == "citizen")
    admin = accounts.province_admin(platform)
    staff = accounts.create_facilitator(platform, admin, "obs-facilitator", ["14845"]).headers()

    # the frontend sends no correlation id: the edge's request id becomes the journey's
    answer = requests.post(platform.url("enrollment", "enrollments"), headers=staff,
                           json={"course_id": course["id"], "learner": LEARNER})
    assert answer.status_code == 201, answer.text
    journey = answer.headers["X-Correlation-ID"]
    assert journey == answer.headers["X-Request-ID"]
    enrollment_id = answer.json()["id"]

    learner = learner_headers(platform, LEARNER["phone"].replace(" ", ""))
    progress_url = platform.url("lessons", f"enrollments/{enrollment_id}")
    progress = wait_for(lambda: requests.get(progress_url, headers=learner).ok
                        and requests.get(progress_url, headers=learner).json(),
                        what="lessons assigned")
    for lesson in progress["lessons"]:
        assert requests.post(f"{progress_url}/lessons/{lesson['id']}/complete",
                             json={"score": 90}, headers=learner).status_code == 200
    wait_for(lambda: {m["template"] for m in requests.get(
        platform.url("notifications", "messages"), headers=learner).json()["items"]
        if m["status"] == "delivered"} == {"enrollment_confirmed", "certificate_issued"},
        what="both SMS delivered")

    def followed():
        return {service: [line for line in log_lines(platform, service)
                          if line.get("correlation_id") == journey]
                for service in JOURNEY_SERVICES}

    found = wait_for(lambda: all(followed().values()) and followed(),
                     what="the journey's id in every service's log")
    handled = {service: {line["message"].split(" from ")[0] for line in lines
                         if " handled " in line["message"]}
               for service, lines in found.items()}
    assert any("POST /api/enrollment/enrollments answered 201" in line["message"]
               for line in found["enrollment"])
    assert "assign_lessons handled learner_enrolled" in handled["lessons"]
    assert "issue_certificate handled course_completed" in handled["certificates"]
    assert {"confirm_enrollment handled learner_enrolled",
            "announce_certificate handled certificate_issued"} <= handled["notifications"]
    for service in JOURNEY_SERVICES:
        for line in log_lines(platform, service):  # every line, not only the journey's
            assert line["service"] == service and line["level"] in (
                "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), line
        # a line about an event names it
        assert all(line.get("event_id") for line in found[service] if " handled " in line["message"])
        assert LEARNER["national_id"] not in (platform.settings.log_dir / f"{service}.log").read_text()

    # the same journey, counted on each service's own port
    lessons = scrape(platform, "lessons")
    assert ('hocvu_events_consumed_total{event_type="learner_enrolled",outcome="ok",'
            'service="lessons"} 1.0') in lessons
    assert 'hocvu_events_published_total{event_type="course_completed",service="lessons"} 1.0' \
        in lessons
    # lessons runs one instance here: it holds its relay's lease
    assert 'hocvu_outbox_relay_leader{service="lessons"} 1.0' in lessons
    enrollment = scrape(platform, "enrollment")
    assert ('hocvu_http_requests_total{method="POST",route="/api/enrollment/enrollments",'
            'service="enrollment",status="201"} 1.0') in enrollment
    assert 'hocvu_outbox_relay_lag_seconds_count{service="enrollment"}' in enrollment
    notifications = scrape(platform, "notifications")
    assert 'hocvu_sms_send_attempts_total{outcome="accepted",service="notifications"}' \
        in notifications
    assert 'hocvu_sms_outcomes_total{service="notifications",status="delivered"}' in notifications
    assert 'hocvu_sms_messages{service="notifications",status="queued"}' in notifications
    assert "hocvu_sms_dispatch_backlog" in notifications
    # operations only: the edge does not route them
    for service in (*JOURNEY_SERVICES, "identity", "reporting"):
        assert requests.get(platform.url(service, "metrics")).status_code == 404
