"""Liveness and readiness of each service while its store freezes, comes back and stops."""
import os
import signal
import time

import pytest
import requests

from hocvu import health
from hocvu_tools.devstack.processes import free_port
from hocvu_tools.devstack.store import start_secantus, store_uri
from services.certificates.service import CertificatesService
from services.enrollment.service import EnrollmentService
from services.lessons.service import LessonsService
from services.notifications.service import NotificationsService
from services.reporting.service import ReportingService
from tests.support.fixtures import base_url
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SERVICES = {"enrollment": EnrollmentService, "lessons": LessonsService,
            "certificates": CertificatesService, "notifications": NotificationsService,
            "reporting": ReportingService}


@pytest.fixture
def private_store(tmp_path):
    port = free_port()
    process = start_secantus(port, tmp_path / "data", tmp_path, name=f"store-{port}")
    yield process, store_uri(port)
    if process.alive():
        os.killpg(process.pid, signal.SIGCONT)
        process.stop()


def freeze(process, frozen: bool = True) -> None:
    """Stop (or resume) the process and its children: up, holding its port, but silent."""
    os.killpg(process.pid, signal.SIGSTOP if frozen else signal.SIGCONT)


def timed_get(url: str) -> tuple[requests.Response, float]:
    began = time.monotonic()
    answer = requests.get(url, timeout=30)
    return answer, time.monotonic() - began


@pytest.mark.parametrize("service", SERVICES)
def test_ready_answers_503_fast_when_the_store_freezes_or_stops(service, private_store,
                                                                service_config, run_service):
    store, uri = private_store
    url = base_url(run_service(SERVICES[service], service_config(
        service, MONGO_URI=uri, SMS_GATEWAY_URL="http://127.0.0.1:9")))
    live, ready = f"{url}/api/{service}/health/live", f"{url}/api/{service}/health/ready"
    health.forget()
    answer = requests.get(ready, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ok", "service": service,
                             "checks": {"broker": "ok", "store": "ok", "consumers": "ok"}}

    freeze(store)  # up but silent: the case that used to hang for 12 s and more
    health.forget()
    answer, took = timed_get(ready)
    print(f"{service}: ready with the store frozen answered {answer.status_code} in {took:.2f} s")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"broker": "ok", "store": "unreachable",
                                         "consumers": "ok"}
    assert took < 5
    answer, took = timed_get(live)
    assert answer.status_code == 200 and answer.json() == {"status": "ok", "service": service}
    print(f"{service}: live with the store frozen answered in {took:.3f} s")

    freeze(store, False)
    wait_for(lambda: requests.get(ready, timeout=30).status_code == 200, timeout=30,
             what="ready again once the store is back")

    store.stop()
    health.forget()
    answer, took = timed_get(ready)
    print(f"{service}: ready with the store stopped answered {answer.status_code} in {took:.2f} s")
    assert answer.status_code == 503 and answer.json()["checks"]["store"] == "unreachable"
    assert took < 5
    assert requests.get(live, timeout=5).status_code == 200


def test_a_broker_that_refuses_is_unreachable_at_once():
    began = time.monotonic()
    assert health.broker_reachable(f"amqp://guest:guest@127.0.0.1:{free_port()}/") is False
    print(f"refused broker reported in {time.monotonic() - began:.3f} s")


def test_a_cluster_is_reachable_while_one_of_its_nodes_answers(amqp_uri):
    """AMQP_URI may list a cluster's nodes as alternates: the check tries each in turn."""
    down = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    assert health.broker_reachable(f"{down};{down};{amqp_uri}") is True
    assert health.broker_reachable(f"{down};{down}") is False
