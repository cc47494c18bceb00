"""certificates against real RabbitMQ and SecantusDB: one certificate, public verification."""
import io

import pypdf
import pytest
import requests

from hocvu.clock import utcnow
from hocvu.events import new_event
from services.certificates.service import CertificatesService
from tests.support.commune_day import page_through
from tests.support.fixtures import base_url
from tests.support.settling import deliveries_settled, wait_until_handled, wait_until_relayed
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


def test_a_completed_course_gets_exactly_one_verifiable_certificate(service_config, run_service,
                                                                    pika_client, issuer):
    config = service_config("certificates")
    certificates = base_url(run_service(CertificatesService, config))
    before = deliveries_settled("certificates", "course_completed")
    event = course_completed()
    for _ in range(3):
        pika_client.publish("lessons.events", "course_completed", event)
    pika_client.publish("lessons.events", "course_completed", course_completed())  # replay, new id
    # every delivery handled and every event relayed before counting: a second certificate
    # or announcement would be there by now
    wait_until_handled("certificates", "course_completed", before, 4)
    wait_until_relayed(config)
    url = f"{certificates}/api/certificates/certificates"
    staff = issuer.facilitator()
    issued = requests.get(url, params={"enrollment_id": "enr-9"}, headers=staff).json()["items"]
    announced = pika_client.drain(ANNOUNCE_QUEUE)
    assert len(requests.get(url, params={"learner_id": "lrn-9"}, headers=staff).json()["items"]) == 1
    assert len(issued) == 1 and len(announced) == 1
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


REVOKED_QUEUE = "evt-certificates-certificate_revoked--notifications.announce_revocation"
OWNER_SUBJECT = "learner:" + "9" * 32


def issued_certificate(certificates, pika_client, issuer, enrollment_id="enr-9"):
    pika_client.publish("lessons.events", "course_completed", course_completed(enrollment_id))
    url = f"{certificates}/api/certificates/certificates"
    return wait_for(lambda: requests.get(url, params={"enrollment_id": enrollment_id},
                                         headers=issuer.province_admin()).json()["items"],
                    what="certificate")[0]


def test_a_made_up_code_is_refused_like_an_unknown_one_and_a_real_one_verifies(
        certificates, pika_client, issuer):
    certificate = issued_certificate(certificates, pika_client, issuer)
    code = certificate["verification_code"]
    assert len(code.replace("-", "")) == 16
    verify = f"{certificates}/api/certificates/verify"
    assert requests.get(f"{verify}/{code}").json()["status"] == "valid"
    # the same random part with another tag, another code's tag: refused, 404 as unknown
    tampered = code[:-1] + ("0" if code[-1] != "0" else "1")
    for made_up in (tampered, "AAAA-BBBB-CCCC-DDDD"):
        answer = requests.get(f"{verify}/{made_up}")
        assert answer.status_code == 404 and answer.json()["error"] == "NOT_FOUND"


def test_a_province_admin_revokes_with_a_reason_and_verification_says_when_and_why(
        certificates, pika_client, issuer):
    certificate = issued_certificate(certificates, pika_client, issuer)
    revoke = f"{certificates}/api/certificates/certificates/{certificate['id']}/revoke"
    reason = {"reason": "Cấp nhầm: học viên chưa tham gia lớp"}
    assert requests.post(revoke, json=reason, headers=issuer.facilitator()).status_code == 403
    assert requests.post(revoke, json=reason,
                         headers=issuer.province_admin("01")).status_code == 404
    for blank in ({}, {"reason": "  "}, {"reason": "x" * 501}):
        refused = requests.post(revoke, json=blank, headers=issuer.province_admin())
        assert refused.status_code == 400 and "reason" in refused.json()["fields"], blank
    revoked = requests.post(revoke, json=reason, headers=issuer.province_admin())
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    again = requests.post(revoke, json={"reason": "another reason"},
                          headers=issuer.province_admin())
    assert again.status_code == 200 and again.json() == revoked.json()

    verified = requests.get(f"{certificates}/api/certificates/verify/"
                            f"{certificate['verification_code']}").json()
    assert verified == {
        "status": "revoked", "serial": certificate["serial"],
        "verification_code": certificate["verification_code"], "full_name": "Đỗ Minh Tuấn",
        "course_title": "Kỹ năng số cho người lao động", "issued_at": certificate["issued_at"],
        "revoked_at": revoked.json()["revoked_at"], "revocation_reason": reason["reason"]}
    announced = wait_for(lambda: pika_client.drain(REVOKED_QUEUE), what="certificate_revoked")
    assert len(announced) == 1
    assert announced[0]["data"]["reason"] == reason["reason"]
    assert announced[0]["data"]["serial"] == certificate["serial"]


def test_the_pdf_is_served_to_its_learner_and_staff_in_scope_only(certificates, pika_client,
                                                                   issuer):
    certificate = issued_certificate(certificates, pika_client, issuer)
    url = f"{certificates}/api/certificates/certificates/{certificate['id']}/pdf"
    owner = issuer.headers("learner", phone="+84900000009", subject=OWNER_SUBJECT)
    for reader in (owner, issuer.facilitator(), issuer.province_admin()):
        answer = requests.get(url, headers=reader)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/pdf"
        assert answer.headers["Cache-Control"] == "private, no-store"
        assert answer.content.startswith(b"%PDF-")
    text = pypdf.PdfReader(io.BytesIO(answer.content)).pages[0].extract_text()
    assert certificate["serial"] in text and certificate["verification_code"] in text
    assert "http://verify.example.test/api/certificates/verify/" in text
    for outsider in (issuer.learner("+84900000001"), issuer.facilitator(communes=("16000",)),
                     issuer.province_admin("01")):
        assert requests.get(url, headers=outsider).status_code == 404
    assert requests.get(url).status_code == 401
    requests.post(f"{certificates}/api/certificates/certificates/{certificate['id']}/revoke",
                  json={"reason": "Cấp nhầm"}, headers=issuer.province_admin())
    revoked = requests.get(url, headers=owner)
    assert revoked.status_code == 409 and revoked.json()["error"] == "CERTIFICATE_REVOKED"


def enrollment_cancelled(enrollment_id, cancelled_at):
    return new_event("enrollment_cancelled", {
        "enrollment_id": enrollment_id, "learner_id": "lrn-9",
        "course_id": "worker-digital-basics", "group": "worker", "province_code": "38",
        "commune_code": "14845", "learner_subject": OWNER_SUBJECT,
        "cancelled_at": cancelled_at, "cancelled_by": "learner"}, correlation_id="corr-9")


def test_no_certificate_for_a_course_completed_after_the_cancellation_whatever_the_order(
        service_config, run_service, pika_client, issuer):
    # one worker: each queue's events are handled in the order they were sent
    certificates = base_url(run_service(CertificatesService,
                                        service_config("certificates", max_workers=1)))
    url = f"{certificates}/api/certificates/certificates"
    admin = issuer.province_admin()
    # completed before the cancellation: the learner finished; the certificate stands
    issued_certificate(certificates, pika_client, issuer, "enr-before")
    pika_client.publish("enrollment.events", "enrollment_cancelled",
                        enrollment_cancelled("enr-before", utcnow()))
    # the cancellation arrives first, the completion after it: nothing is issued
    pika_client.publish("enrollment.events", "enrollment_cancelled",
                        enrollment_cancelled("enr-first", utcnow()))
    # a completion at the cancellation's moment arrives first: issued, then revoked
    late = course_completed("enr-late")
    cancelled_at = utcnow()
    late["data"]["completed_at"] = cancelled_at.isoformat()
    pika_client.publish("lessons.events", "course_completed", late)
    wait_for(lambda: requests.get(url, params={"enrollment_id": "enr-late"},
                                  headers=admin).json()["items"], what="the late certificate")
    pika_client.publish("enrollment.events", "enrollment_cancelled",
                        enrollment_cancelled("enr-late", cancelled_at))
    revoked = wait_for(lambda: pika_client.drain(REVOKED_QUEUE), what="the revocation")
    assert [e["data"]["enrollment_id"] for e in revoked] == ["enr-late"]
    assert revoked[0]["data"]["reason"] == "Ghi danh đã bị hủy trước khi hoàn thành khóa học"
    pika_client.publish("lessons.events", "course_completed", course_completed("enr-first"))
    # one more, issued: the completion sent before it was handled
    issued_certificate(certificates, pika_client, issuer, "enr-after")

    def status_of(enrollment_id):
        return [c["status"] for c in requests.get(url, params={"enrollment_id": enrollment_id},
                                                  headers=admin).json()["items"]]

    assert status_of("enr-first") == []
    assert status_of("enr-late") == ["revoked"]
    assert status_of("enr-before") == ["valid"]


def test_a_class_completing_together_gets_one_certificate_each_with_serials_in_a_row(
        service_config, run_service, pika_client, issuer):
    """A class of 40 completes at once: their events reach certificates in batches, each
    batch one reservation of serial numbers; the one cancelled before completing gets none,
    the one whose event came twice gets one."""
    config = service_config("certificates")
    certificates = base_url(run_service(CertificatesService, config))
    before = deliveries_settled("certificates", "course_completed")
    cancellations_before = deliveries_settled("certificates", "enrollment_cancelled")
    pika_client.publish("enrollment.events", "enrollment_cancelled",
                        enrollment_cancelled("enr-class-0", utcnow()))
    wait_until_handled("certificates", "enrollment_cancelled", cancellations_before, 1)
    completions = [course_completed(f"enr-class-{n}") for n in range(40)]
    for event in completions + completions[5:6]:
        pika_client.publish("lessons.events", "course_completed", event)
    wait_until_handled("certificates", "course_completed", before, 41)
    wait_until_relayed(config)
    issued = [c for c in page_through(
        f"{certificates}/api/certificates/certificates", issuer.province_admin(), limit=100)
        if c["enrollment_id"].startswith("enr-class-")]
    assert sorted(c["enrollment_id"] for c in issued) == sorted(
        f"enr-class-{n}" for n in range(1, 40))
    numbers = sorted(int(c["serial"].rsplit("-", 1)[1]) for c in issued)
    assert numbers == list(range(numbers[0], numbers[0] + 39))  # none twice, none skipped
    announced = pika_client.drain(ANNOUNCE_QUEUE)
    assert sorted(e["data"]["enrollment_id"] for e in announced) == sorted(
        c["enrollment_id"] for c in issued)
