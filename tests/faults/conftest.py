"""Each fault scenario gets a platform of its own: a private RabbitMQ node (so restarting
it disturbs nobody), a private SecantusDB per service (so stopping them disturbs nobody),
the SMS gateway simulator and the services as separate processes, all on free ports."""
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hocvu.devstack import config
from hocvu.devstack.processes import free_port
from hocvu.devstack.rabbitmq import PrivateRabbitMQ
from hocvu.devstack.stack import SERVICES, Stack, StackSettings
from hocvu.devstack.store import ServiceStores

REPORT: list[str] = []
PARTS = ("edge", "sms_simulator", *SERVICES)


@dataclass
class FaultPlatform:
    broker: PrivateRabbitMQ
    stores: ServiceStores
    log_dir: Path
    stack: Stack
    store_outage_seconds: float = 0.0

    def stop_stores_for(self, seconds: float) -> float:
        """Stop every service's store, keep them stopped for `seconds`, start them on the same
        data; return how long they were unreachable in all (with shutdown and start-up)."""
        stopping = time.monotonic()
        self.stores.stop()
        time.sleep(seconds)
        for service in self.stores.services:
            self.stores.restart(service)
        self.store_outage_seconds = time.monotonic() - stopping
        return self.store_outage_seconds


@pytest.fixture
def fault_platform(tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    broker = PrivateRabbitMQ(tmp_path / "rabbitmq", free_port(), free_port()).start()
    stores = ServiceStores(SERVICES, tmp_path / "stores", log_dir,
                           {service: free_port() for service in SERVICES}).start()
    stack = Stack(StackSettings(
        amqp_uri=broker.amqp_uri, mongo_uri=None, mongo_uris=stores.uris,
        secrets=config.platform_secrets({}, tmp_path / "secrets.env"),
        ports={part: free_port() for part in PARTS},
        log_dir=log_dir, run_dir=tmp_path / "run", with_edge=False))
    platform = FaultPlatform(broker, stores, log_dir, stack)
    try:
        stack.start()
        yield platform
    finally:
        stack.stop()
        platform.stores.stop()
        broker.stop()


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("fault injection: what was checked")
        for line in REPORT:
            terminalreporter.write_line(line)
