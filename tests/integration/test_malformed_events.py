"""A malformed message never reaches a handler and never stops a service."""
import pytest
import requests

from services.certificates.service import CertificatesService
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for
from tests.integration.test_certificates_service import course_completed

pytestmark = pytest.mark.integration

QUEUE = "evt-lessons-course_completed--certificates.issue_certificate"


@pytest.mark.parametrize("body", [
    b"{this is not json",
    b'{"event_id": "5f0c6a4e-8a43-4c1e-9f5e-0d5c1c9b1f3a"}',
    b"[1, 2, 3]",
], ids=["invalid-json", "missing-fields", "not-an-object"])
def test_the_service_survives_and_keeps_working(service_config, run_service, pika_client, body):
    container = run_service(CertificatesService, service_config("certificates"))
    url = base_url(container)
    pika_client.publish("lessons.events", "course_completed", body)
    wait_for(lambda: pika_client.depth(QUEUE) == 0, what="the bad message consumed")

    pika_client.publish("lessons.events", "course_completed", course_completed("enr-after"))
    issued = wait_for(lambda: requests.get(f"{url}/api/certificates/certificates",
                                           params={"enrollment_id": "enr-after"}).json(),
                      what="a certificate for the good event after the bad one")
    assert len(issued) == 1
    assert requests.get(f"{url}/api/certificates/certificates",
                        params={"learner_id": "lrn-9"}).json() == issued
