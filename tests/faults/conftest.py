"""Each fault scenario gets a platform of its own: a private RabbitMQ node (so restarting
it disturbs nobody), a private SecantusDB (so stopping it disturbs nobody), the SMS gateway
simulator and the four services as separate processes, all on free ports."""
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hocvu.devstack.processes import Process, free_port
from hocvu.devstack.rabbitmq import PrivateRabbitMQ
from hocvu.devstack.stack import Stack, StackSettings
from hocvu.devstack.store import start_secantus, store_uri
from hocvu.devstack import config

REPORT: list[str] = []
PARTS = ("edge", "sms_simulator", "enrollment", "lessons", "certificates", "notifications",
         "identity", "reporting")


@dataclass
class FaultPlatform:
    broker: PrivateRabbitMQ
    store: Process
    store_port: int
    store_dir: Path
    log_dir: Path
    stack: Stack
    store_outage_seconds: float = 0.0

    @property
    def store_uri(self) -> str:
        return store_uri(self.store_port)

    def stop_store_for(self, seconds: float) -> float:
        """Stop the store, keep it stopped for `seconds`, start it on the same data; return
        how long it was unreachable in all (the wait plus its shutdown and start-up)."""
        stopping = time.monotonic()
        self.store.stop()
        time.sleep(seconds)
        self.store = start_secantus(self.store_port, self.store_dir, self.log_dir)
        self.store_outage_seconds = time.monotonic() - stopping
        return self.store_outage_seconds


@pytest.fixture
def fault_platform(tmp_path):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    broker = PrivateRabbitMQ(tmp_path / "rabbitmq", free_port(), free_port()).start()
    store_port = free_port()
    store = start_secantus(store_port, tmp_path / "store", log_dir)
    stack = Stack(StackSettings(
        amqp_uri=broker.amqp_uri, mongo_uri=store_uri(store_port),
        secrets=config.platform_secrets({}, tmp_path / "secrets.env"),
        ports={part: free_port() for part in PARTS},
        log_dir=log_dir, run_dir=tmp_path / "run", with_edge=False,
        service_env={"OUTBOX_POLL_SECONDS": "0.5"}))
    platform = FaultPlatform(broker, store, store_port, tmp_path / "store", log_dir, stack)
    try:
        stack.start()
        yield platform
    finally:
        stack.stop()
        platform.store.stop()
        broker.stop()


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("fault injection: what was checked")
        for line in REPORT:
            terminalreporter.write_line(line)
