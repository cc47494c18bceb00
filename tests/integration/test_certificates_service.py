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
        "learner_subject": "learner:" + "9" * 32, "completed_at": utcnow()},
        correlation_id="corr-9")


@pytest.fixture
def certificates(service_config, run_service):
    return base_url(run_service(CertificatesService, service_config("certificates")))


def test_a_completed_course_gets_exactly_one_verifiable_certificate(certificates, pika_client,
                                                                    issuer):
    event = course_completed()
    for _ in range(3):
        pika_client.publish("lessons.events", "course_completed", event)
    pika_client.publish("lessons.events", "course_completed", course_completed())  # replay, new id
    url = f"{certificates}/api/certificates/certificates"
    staff = issuer.facilitator()
    issued = wait_for(lambda: requests.get(url, params={"enrollment_id": "enr-9"},
                                           headers=staff).json()["items"], what="certificate")
    announced = wait_for(lambda: pika_client.drain(ANNOUNCE_QUEUE), what="certificate_issued")
    assert len(requests.get(url, params={"learner_id": "lrn-9"}, headers=staff).json()["items"]) == 1
    assert len(announced) == 1
    assert announced[0]["data"]["commune_code"] == "14845"

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


def test_certificates_are_seen_only_by_their_learner_and_staff_in_scope(certificates,
                                                                        pika_client, issuer):
    pika_client.publish("lessons.events", "course_completed", course_completed())
    url = f"{certificates}/api/certificates/certificates"
    wait_for(lambda: requests.get(url, headers=issuer.province_admin()).json()["items"],
             what="certificate")
    owner = issuer.headers("learner", phone="+84900000009", subject="learner:" + "9" * 32)
    assert len(requests.get(url, headers=owner).json()["items"]) == 1
    for outsider in (issuer.learner("+84900000001"), issuer.facilitator(communes=("16000",)),
                     issuer.province_admin("01"), issuer.commune_admin("16000")):
        assert requests.get(url, headers=outsider).json()["items"] == []
        assert requests.get(url, params={"enrollment_id": "enr-9"},
                            headers=outsider).json()["items"] == []
    assert requests.get(url).status_code == 401


def test_unknown_codes_and_bad_pages(certificates, issuer):
    assert requests.get(f"{certificates}/api/certificates/verify/AAAA-BBBB-CCCC").status_code == 404
    assert requests.get(f"{certificates}/api/certificates/verify/short").status_code == 404
    bad = requests.get(f"{certificates}/api/certificates/certificates", params={"limit": "0"},
                       headers=issuer.facilitator())
    assert bad.status_code == 400 and bad.json()["error"] == "VALIDATION_ERROR"
