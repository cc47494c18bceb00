"""A malformed message never reaches a handler, never stops a service, and is kept with
its reason in the handler's dead-letter queue."""
import pytest
import requests

from services.certificates.service import CertificatesService
from tests.integration.test_certificates_service import course_completed
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

QUEUE = "evt-lessons-course_completed--certificates.issue_certificate"


@pytest.mark.parametrize("body, reason", [
    (b"{this is not json", "undecodable body"),
    (b'{"event_id": "5f0c6a4e-8a43-4c1e-9f5e-0d5c1c9b1f3a"}', "invalid event envelope"),
    (b"[1, 2, 3]", "event body must be a JSON object"),
], ids=["invalid-json", "missing-fields", "not-an-object"])
def test_the_service_dead_letters_it_and_keeps_working(service_config, run_service, pika_client,
                                                      body, reason, issuer):
    container = run_service(CertificatesService, service_config("certificates"))
    url = base_url(container)
    pika_client.publish("lessons.events", "course_completed", body)
    dead = wait_for(lambda: pika_client.drain_with_headers(f"{QUEUE}.dlq"), what="dead letter")
    assert len(dead) == 1
    headers, raw = dead[0]
    assert raw == body
    assert headers["x-hocvu-reason"].startswith(reason)
    assert headers["x-hocvu-exchange"] == "lessons.events"
    assert headers["x-hocvu-routing-key"] == "course_completed"
    assert headers["x-hocvu-queue"] == QUEUE
    assert headers["x-hocvu-attempts"] == 1 and headers["x-hocvu-failed-at"]

    pika_client.publish("lessons.events", "course_completed", course_completed("enr-after"))
    staff = issuer.facilitator()
    issued = wait_for(lambda: requests.get(f"{url}/api/certificates/certificates",
                                           params={"enrollment_id": "enr-after"},
                                           headers=staff).json()["items"],
                      what="a certificate for the good event after the bad one")
    assert len(issued) == 1
    assert requests.get(f"{url}/api/certificates/certificates", params={"learner_id": "lrn-9"},
                        headers=staff).json()["items"] == issued
