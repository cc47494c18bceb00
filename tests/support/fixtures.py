"""pytest fixtures: real RabbitMQ (a virtual host per test), a real SecantusDB server per
session (a database per test), and services running in the test process."""
import uuid

import pytest
from nameko.containers import ServiceContainer

from tests.support.broker import Pika, Vhost
from hocvu_tools.devstack.processes import BIN, Process, free_port
from hocvu_tools.devstack.store import start_secantus, store_uri
from hocvu.sealing import new_key_pair
from tests.support.tokens import TestIssuer

HASH_KEY = "test-key-" + "0" * 32
CODE_KEY = "test-code-key-" + "0" * 32
# the session's simulator signs delivery reports with it; notifications checks them
CALLBACK_SECRET = "test-callback-secret-" + "0" * 16
SEALING_PRIVATE_KEY, SEALING_PUBLIC_KEY = new_key_pair()


@pytest.fixture(scope="session")
def issuer():
    """The token issuer the services under test trust (tests.support.tokens)."""
    test_issuer = TestIssuer()
    yield test_issuer
    test_issuer.close()


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory):
    base = tmp_path_factory.mktemp("secantus")
    port = free_port()
    process = start_secantus(port, base / "data", base)
    try:
        yield store_uri(port)
    finally:
        process.stop()


@pytest.fixture
def amqp_uri():
    with Vhost() as vhost:
        yield vhost.amqp_uri


@pytest.fixture
def pika_client(amqp_uri):
    client = Pika(amqp_uri)
    yield client
    client.close()


@pytest.fixture
def service_config(amqp_uri, mongo_uri, issuer):
    """Config for one service in the test process; each test gets fresh databases."""
    run = uuid.uuid4().hex[:8]

    def config(service: str, **extra) -> dict:
        return {
            "AMQP_URI": amqp_uri,
            "MONGO_URI": mongo_uri,
            "MONGO_DATABASE": f"test_{run}_{service}",
            "WEB_SERVER_ADDRESS": "127.0.0.1:0",
            "STORE_PROFILE": "embedded",
            "NATIONAL_ID_HASH_KEY": HASH_KEY,
            "CERTIFICATE_CODE_KEY": CODE_KEY,
            "PUBLIC_BASE_URL": "http://verify.example.test",
            "SMS_CALLBACK_SECRET": CALLBACK_SECRET,
            "NOTIFICATIONS_SEALING_PRIVATE_KEY": SEALING_PRIVATE_KEY,
            "NOTIFICATIONS_SEALING_PUBLIC_KEY": SEALING_PUBLIC_KEY,
            **issuer.config(),
            **extra,
        }

    return config


@pytest.fixture
def run_service():
    """Start a service class in this process; stopped at the end of the test."""
    containers = []

    def start(service_class, config: dict) -> ServiceContainer:
        container = ServiceContainer(service_class, config)
        container.start()
        containers.append(container)
        return container

    yield start
    for container in reversed(containers):
        container.stop()


def base_url(container: ServiceContainer) -> str:
    """Where a started container's HTTP server listens (it was given port 0)."""
    from nameko.web.server import WebServer
    server = next(ext for ext in container.extensions if isinstance(ext, WebServer))
    host, port = server._sock.getsockname()[:2]
    return f"http://{host}:{port}"


@pytest.fixture(scope="session")
def sms_gateway(tmp_path_factory):
    """The SMS gateway simulator as its own process; emptied before each test that uses it."""
    port = free_port()
    process = Process(f"sms-simulator-{port}", [
        str(BIN / "python"), "-m", "sms_simulator", "--port", str(port),
        "--delivery-delay", "0.05", "--callback-backoff", "0.2"],
        tmp_path_factory.mktemp("sms"), {"SMS_CALLBACK_SECRET": CALLBACK_SECRET})
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_http(f"{url}/health")
        yield url
    finally:
        process.stop()


@pytest.fixture
def sms_outbox(sms_gateway):
    """What the gateway received in this test (it is emptied first)."""
    import requests
    requests.delete(f"{sms_gateway}/v1/messages").raise_for_status()
    requests.post(f"{sms_gateway}/v1/admin/faults",
                  json={"fail_rate": 0, "rate_limit_per_minute": None}).raise_for_status()
    return lambda: requests.get(f"{sms_gateway}/v1/messages").json()["messages"]
