"""The platform as operations runs it: every service its own `nameko run` process with its
own config, against real RabbitMQ, SecantusDB and the SMS gateway simulator."""
import uuid

import pytest
import requests

from tests.support.broker import Vhost
from tests.support.fixtures import HASH_KEY
from tests.support.processes import BIN, Process, free_port
from tests.support.waiting import wait_for

SERVICES = ("enrollment", "lessons", "certificates", "notifications")


class Platform:
    def __init__(self, amqp_uri: str, mongo_uri: str, sms_gateway: str, log_dir):
        self.sms_gateway = sms_gateway
        self.ports = {service: free_port() for service in SERVICES}
        self.urls = {service: f"http://127.0.0.1:{port}" for service, port in self.ports.items()}
        run = uuid.uuid4().hex[:8]
        common = {"AMQP_URI": amqp_uri, "MONGO_URI": mongo_uri, "OUTBOX_POLL_SECONDS": "0.2",
                  "NATIONAL_ID_HASH_KEY": HASH_KEY, "PUBLIC_BASE_URL": "http://hocvu.test",
                  "SMS_GATEWAY_URL": sms_gateway,
                  "SMS_CALLBACK_URL": f"{self.urls['notifications']}"
                                      "/api/notifications/delivery-reports"}
        self.processes = {
            service: Process(f"{service}-{run}", [
                str(BIN / "python"), "-m", "nameko", "run", "--config",
                f"services/{service}/config.yaml", f"services.{service}.service"], log_dir, env={
                    **common, "MONGO_DATABASE": f"e2e_{run}_{service}",
                    "HTTP_ADDRESS": f"127.0.0.1:{self.ports[service]}"})
            for service in SERVICES}

    def url(self, service: str, path: str) -> str:
        return f"{self.urls[service]}/api/{service}/{path.lstrip('/')}"

    def start(self) -> None:
        for process in self.processes.values():
            process.start()
        for service, process in self.processes.items():
            process.wait_http(self.url(service, "health"), timeout=90)
        wait_for(lambda: requests.get(self.url("enrollment", "health")).json()
                 .get("catalog_courses") == 4, what="enrollment's copy of the catalog")

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


@pytest.fixture(scope="module")
def platform(mongo_uri, sms_gateway, tmp_path_factory):
    with Vhost() as vhost:
        running = Platform(vhost.amqp_uri, mongo_uri, sms_gateway, tmp_path_factory.mktemp("logs"))
        try:
            running.start()
            yield running
        finally:
            running.stop()
