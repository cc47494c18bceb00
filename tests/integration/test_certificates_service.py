"""certificates against real RabbitMQ and SecantusDB: one certificate, public verification."""
import pytest
import requests

from hocvu.clock import utcnow
from hocvu.events import new_event
from services.certificates.service import CertificatesService
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ANNOUNCE_QUEUE = "evt-certificates-certificate_issued--notifications.announce_certificate"


def course_completed(enrollment_id="enr-9"):
    return new_event("course_completed", {
        "enrollment_id": enrollment_id, "learner_id": "lrn-9", "course_id": "worker-digital-basics",
        "course_title": "Kỹ năng số cho người lao động", "full_name": "Đỗ Minh Tuấn",
        "group": "worker", "province_code": "38", "commune_code": "14845",
        "completed_at": utcnow()}, correlation_id="corr-9")


@pytest.fixture
def certificates(service_config, run_service):
    return base_url(run_service(CertificatesService, service_config("certificates")))


def test_a_completed_course_gets_exactly_one_verifiable_certificate(certificates, pika_client):
    event = course_completed()
    for _ in range(3):
        pika_client.publish("lessons.events", "course_completed", event)
    pika_client.publish("lessons.events", "course_completed", course_completed())  # replay, new id
    url = f"{certificates}/api/certificates/certificates"
    issued = wait_for(lambda: requests.get(url, params={"enrollment_id": "enr-9"}).json(),
                      what="certificate")
    announced = wait_for(lambda: pika_client.drain(ANNOUNCE_QUEUE), what="certificate_issued")
    assert len(requests.get(url, params={"learner_id": "lrn-9"}).json()) == 1
    assert len(announced) == 1

    certificate = issued[0]
    assert certificate["status"] == "valid"
    assert certificate["serial"].startswith(f"HV-38-{utcnow().year}-")
    assert announced[0]["data"]["verification_code"] == certificate["verification_code"]
    assert announced[0]["data"]["verify_url"].startswith("http://verify.example.test/")

    typed = certificate["verification_code"].replace("-", " ").lower()
    verified = requests.get(f"{certificates}/api/certificates/verify/{typed}")
    assert verified.status_code == 200
    assert verified.json() == {
        "status": "valid", "serial": certificate["serial"],
        "verification_code": certificate["verification_code"], "full_name": "Đỗ Minh Tuấn",
        "course_title": "Kỹ năng số cho người lao động", "issued_at": certificate["issued_at"]}


def test_unknown_codes_and_missing_filters(certificates):
    assert requests.get(f"{certificates}/api/certificates/verify/AAAA-BBBB-CCCC").status_code == 404
    assert requests.get(f"{certificates}/api/certificates/verify/short").status_code == 404
    missing = requests.get(f"{certificates}/api/certificates/certificates")
    assert missing.status_code == 400 and missing.json()["error"] == "VALIDATION_ERROR"
