"""Each fault scenario gets a platform of its own: a private RabbitMQ node (so restarting
it disturbs nobody), a private SecantusDB per service (so stopping them disturbs nobody),
the SMS gateway simulator and the services as separate processes, all on free ports."""
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from hocvu_tools.devstack import config
from hocvu_tools.devstack.processes import free_port
from hocvu_tools.devstack.rabbitmq import PrivateRabbitMQ
from hocvu_tools.devstack.stack import SERVICES, Stack, StackSettings
from hocvu_tools.devstack.store import ServiceStores
from tests.faults.journeys import progress

REPORT: list[str] = []
PARTS = ("edge", "sms_simulator", *SERVICES)
# consumers not back this long after the broker are taken as never coming back (the
# figures reported are the real times: seconds, see docs/reliability.md)
CONSUMERS_BACK_WITHIN = 120


def _ready_checks(stack: Stack, service: str) -> dict:
    try:
        return requests.get(stack.url_direct(service, "health/ready"),
                            timeout=5).json().get("checks", {})
    except (requests.RequestException, ValueError):
        return {}


def consumes(stack: Stack, service: str) -> bool:
    """Does the service have queue consumers (its readiness checks them)?"""
    return "consumers" in _ready_checks(stack, service)


def consumers_back(stack: Stack, service: str) -> bool:
    return _ready_checks(stack, service).get("consumers") == "ok"


@dataclass
class FaultPlatform:
    broker: PrivateRabbitMQ
    stores: ServiceStores
    log_dir: Path
    stack: Stack
    store_outage_seconds: float = 0.0
    # (outage, service, seconds after the broker's return until its consumers consumed)
    consumer_recovery: list = field(default_factory=list)

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

    def kill_stores(self) -> None:
        """SIGKILL every service's store at once, then start them on the same data."""
        self.stores.kill()
        for service in self.stores.services:
            self.stores.restart(service)

    def kill_broker(self) -> None:
        """SIGKILL the RabbitMQ node, then start it on the same data."""
        self.broker.kill()
        self.broker.start()

    def broker_down_for(self, seconds: float, kill: bool = False) -> None:
        """Stop the RabbitMQ node in order (or SIGKILL it), keep it down for `seconds`, start
        it on the same data, then wait until every service's consumers consume again; each
        one's time after the broker's return goes to `consumer_recovery`."""
        self.broker.kill() if kill else self.broker.stop()
        time.sleep(seconds)
        self.broker.start()
        returned = time.monotonic()
        outage = f"{'killed' if kill else 'stopped'} for {seconds:.0f} s"
        waiting = {service for service in SERVICES if consumes(self.stack, service)}
        deadline = returned + CONSUMERS_BACK_WITHIN
        while waiting and time.monotonic() < deadline:
            for service in sorted(waiting):
                if consumers_back(self.stack, service):
                    self.consumer_recovery.append(
                        (outage, service, time.monotonic() - returned))
                    waiting.discard(service)
            time.sleep(0.2)
        if waiting:
            raise AssertionError(f"after RabbitMQ was {outage}, the consumers of "
                                 f"{sorted(waiting)} were not consuming "
                                 f"{CONSUMERS_BACK_WITHIN} s after its return")

    def kill_services_at_once(self) -> None:
        """SIGKILL every service together, then start them all and wait for each."""
        for service in SERVICES:
            self.stack.processes[service].kill()
        self.stack.restart_services(list(SERVICES))


@contextmanager
def started_platform(tmp_path: Path, sync_on_commit: bool = False):
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    progress(f"starting a platform of its own (logs in {log_dir})")
    broker = PrivateRabbitMQ(tmp_path / "rabbitmq", free_port(), free_port()).start()
    stores = ServiceStores(SERVICES, tmp_path / "stores", log_dir,
                           {service: free_port() for service in SERVICES},
                           sync_on_commit=sync_on_commit).start()
    stack = Stack(StackSettings(
        amqp_uri=broker.amqp_uri, mongo_uri=None, mongo_uris=stores.uris,
        secrets=config.platform_secrets({}, tmp_path / "secrets.env"),
        ports={part: free_port() for part in PARTS},
        log_dir=log_dir, run_dir=tmp_path / "run", with_edge=False,
        # the simulator's default 5 tries of a delivery report (7.5 s) can end while
        # notifications restarts, leaving a delivered SMS `accepted` until the reconciler
        # calls it `unknown`: 12 tries span about 3 minutes
        simulator_args=["--callback-attempts", "12"]))
    platform = FaultPlatform(broker, stores, log_dir, stack)
    try:
        stack.start()
        progress("platform ready")
        yield platform
    finally:
        stack.stop()
        platform.stores.stop()
        broker.stop()


@pytest.fixture
def fault_platform(tmp_path):
    with started_platform(tmp_path) as platform:
        yield platform


@pytest.fixture
def crash_safe_fault_platform(tmp_path):
    """Stores that fsync every commit before acknowledging it (SYNC_ON_COMMIT), for the
    scenario that kills them with SIGKILL."""
    with started_platform(tmp_path, sync_on_commit=True) as platform:
        yield platform


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("fault injection: what was checked")
        for line in REPORT:
            terminalreporter.write_line(line)
