"""QUEUE_TYPE=quorum: every queue a service declares is a quorum queue, and the chain
still works (retries and dead letters included)."""
import subprocess

import pytest
import requests

from services.certificates.service import CertificatesService
from tests.integration.test_certificates_service import course_completed
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

QUEUE = "evt-lessons-course_completed--certificates.issue_certificate"


def queue_types(vhost: str) -> dict[str, str]:
    listing = subprocess.run(["rabbitmqctl", "list_queues", "-q", "-p", vhost, "name", "type"],
                             check=True, capture_output=True, text=True, timeout=60).stdout
    return dict(line.split()[:2] for line in listing.splitlines() if line.strip()
                and not line.startswith("name"))


def test_a_service_runs_on_quorum_queues(service_config, run_service, pika_client, amqp_uri):
    container = run_service(CertificatesService, service_config(
        "certificates", QUEUE_TYPE="quorum", RETRY_DELAYS_SECONDS="1"))
    url = base_url(container)
    pika_client.publish("lessons.events", "course_completed", course_completed("enr-q"))
    wait_for(lambda: requests.get(f"{url}/api/certificates/certificates",
                                  params={"enrollment_id": "enr-q"}).json(), what="certificate")
    pika_client.publish("lessons.events", "course_completed", b"{broken")
    wait_for(lambda: pika_client.depth(f"{QUEUE}.dlq") == 1, what="the dead letter")

    types = queue_types(amqp_uri.rsplit("/", 1)[1])
    assert types[QUEUE] == "quorum"
    assert types[f"{QUEUE}.dlq"] == "quorum"
    assert types["hocvu.retry.1s"] == "quorum"
