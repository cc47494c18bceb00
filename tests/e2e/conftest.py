"""The platform as operations runs it: every service its own `nameko run` process with its
own config, the SMS gateway simulator, and nginx in front, against real RabbitMQ and
SecantusDB (hocvu.devstack.stack, the same code as `make run`)."""
import contextlib
import uuid

import pytest

from hocvu.devstack import config
from hocvu.devstack.processes import free_port
from hocvu.devstack.stack import Stack, StackSettings
from tests.support.broker import Vhost

PARTS = ("edge", "sms_simulator", "enrollment", "lessons", "certificates", "notifications",
         "identity", "reporting")


@contextlib.contextmanager
def running_platform(mongo_uri: str, base, database_prefix: str, **settings):
    """The platform on free ports in a vhost of its own, stopped (and the vhost removed) after."""
    with Vhost() as vhost:
        stack = Stack(StackSettings(
            amqp_uri=vhost.amqp_uri, mongo_uri=mongo_uri,
            secrets=config.platform_secrets({}, base / "secrets.env"),
            ports={part: free_port() for part in PARTS}, log_dir=base / "log",
            run_dir=base / "run", database_prefix=database_prefix, **settings))
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()


@pytest.fixture(scope="module")
def platform(mongo_uri, tmp_path_factory):
    with running_platform(mongo_uri, tmp_path_factory.mktemp("platform"),
                          f"e2e_{uuid.uuid4().hex[:8]}_",
                          service_env={"OUTBOX_POLL_SECONDS": "0.2"}) as stack:
        yield stack
