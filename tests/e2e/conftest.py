"""The platform as operations runs it: every service its own `nameko run` process with its
own config, the SMS gateway simulator, and nginx in front, against real RabbitMQ and
SecantusDB (hocvu_tools.devstack.stack, the same code as `make run`)."""
import contextlib
import uuid

import pytest

from hocvu_tools.devstack import config
from hocvu_tools.devstack.processes import free_port
from hocvu_tools.devstack.stack import SERVICES, Stack, StackSettings
from hocvu_tools.devstack.store import ServiceStores
from tests.support.broker import Vhost

PARTS = ("edge", "sms_simulator", *SERVICES)


@contextlib.contextmanager
def running_platform(base, database_prefix: str, **settings):
    """The platform on free ports in a vhost of its own, each service with a store of its own,
    stopped (and the vhost removed) after."""
    stores = ServiceStores(SERVICES, base / "stores", base / "log",
                           {service: free_port() for service in SERVICES}).start()
    try:
        with Vhost() as vhost:
            stack = Stack(StackSettings(
                amqp_uri=vhost.amqp_uri, mongo_uri=None, mongo_uris=stores.uris,
                secrets=config.platform_secrets({}, base / "secrets.env"),
                ports={part: free_port() for part in PARTS}, log_dir=base / "log",
                run_dir=base / "run", database_prefix=database_prefix, **settings))
            stack.start()
            try:
                yield stack
            finally:
                stack.stop()
    finally:
        stores.stop()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("platform"),
                          f"e2e_{uuid.uuid4().hex[:8]}_") as stack:
        yield stack
