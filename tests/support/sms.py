"""Helpers for the SMS tests: a controllable clock, notifications' settings, a bare
notifications store, and gateway simulators in any provider mode."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pymongo import MongoClient

from hocvu_tools.devstack.processes import BIN, Process, free_port
from hocvu.settings import load
from hocvu.store import Store
from hocvu.storeprofile import EMBEDDED, StoreProfile
from services.notifications.settings import NotificationsSettings
from tests.support.fixtures import CALLBACK_SECRET, SEALING_PRIVATE_KEY

VN = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh: no DST since 1975


def local(*args) -> datetime:
    """A Ho Chi Minh City wall-clock time, as the UTC moment it is."""
    return datetime(*args, tzinfo=VN).astimezone(timezone.utc)


class Clock:
    """A clock the test moves: the services' code takes it instead of hocvu.clock.utcnow."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def sms_settings(**config):
    """notifications' settings as the service loads them from `config` (its keys), with the
    tests' sealing key unless `config` names one."""
    return load(NotificationsSettings,
                {"NOTIFICATIONS_SEALING_PRIVATE_KEY": SEALING_PRIVATE_KEY, **config})


@pytest.fixture
def notifications_store(mongo_uri):
    """notifications' database, prepared as the service prepares it, without the service."""
    from services.notifications.repository import prepare
    client = MongoClient(mongo_uri, tz_aware=True)
    name = f"test_{uuid.uuid4().hex[:8]}_notifications"
    store = Store(client, name, "notifications", relay=None,
                  profile=StoreProfile(EMBEDDED))
    prepare(store)
    yield store
    client.drop_database(name)
    client.close()


@pytest.fixture
def start_gateway(tmp_path):
    """Start the gateway simulator in its own process with extra options; returns its URL."""
    processes = []

    def start(*options: str) -> str:
        port = free_port()
        process = Process(f"sms-gateway-{port}", [
            str(BIN / "python"), "-m", "sms_simulator", "--port", str(port),
            "--delivery-delay", "0.05", "--callback-backoff", "0.2",
            "--callback-secret", CALLBACK_SECRET, *options], tmp_path)
        process.start()
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        process.wait_http(f"{url}/health")
        return url

    yield start
    for process in processes:
        process.stop()
