"""RabbitMQ as the dev stack gets it (hocvu_tools.devstack.rabbitmq): the shared broker reused, and
a private node a test can restart and stop."""
import time

import pika
import psutil
import pytest

from hocvu_tools.devstack import rabbitmq, system
from hocvu_tools.devstack.processes import StartError, free_port, port_holder

pytestmark = pytest.mark.integration


def test_a_running_broker_is_reused_without_starting_anything(monkeypatch):
    if not rabbitmq.reachable(rabbitmq.DEFAULT_URI):
        pytest.skip("no broker on 127.0.0.1:5672 (make test starts one first)")

    def refuse(command):
        raise AssertionError(f"tried to run {command}")

    monkeypatch.setattr(system, "as_root", refuse)
    assert rabbitmq.ensure_rabbitmq() == rabbitmq.DEFAULT_URI


def test_a_broker_it_cannot_start_is_reported_at_once():
    began = time.monotonic()
    with pytest.raises(StartError, match="no RabbitMQ answers at 127.0.0.1"):
        rabbitmq.ensure_rabbitmq(f"amqp://guest:guest@127.0.0.1:{free_port()}/", timeout=60)
    assert time.monotonic() - began < 10


def test_private_node_keeps_durable_messages_across_a_restart_and_cleans_up():
    broker = rabbitmq.PrivateRabbitMQ()
    began = time.monotonic()
    broker.start()
    print(f"private RabbitMQ accepted a login after {time.monotonic() - began:.1f} s")
    try:
        assert broker.amqp_uri.endswith(f":{broker.port}/")
        publish(broker.amqp_uri, "kept", b"survives")
        node = psutil.Process(broker.process.pid)
        family = [node, *node.children(recursive=True)]

        began = time.monotonic()
        broker.restart()
        print(f"private RabbitMQ restarted in {time.monotonic() - began:.1f} s")
        assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert take(broker.amqp_uri, "kept") == b"survives"
    finally:
        broker.stop()
    assert port_holder(broker.port) is None and port_holder(broker.dist_port) is None
    assert not broker.base.exists()
    assert not rabbitmq.reachable(broker.amqp_uri, timeout=1)


def test_private_node_in_a_given_folder_keeps_it(tmp_path):
    with rabbitmq.PrivateRabbitMQ(tmp_path / "node") as broker:
        assert rabbitmq.reachable(broker.amqp_uri)
        assert (tmp_path / "node" / "mnesia").is_dir()
        assert (tmp_path / f"node/rabbitmq-{broker.port}.log").read_text()
    assert (tmp_path / "node").is_dir()


def publish(uri: str, queue: str, body: bytes) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue, durable=True)
    channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    connection.close()


def take(uri: str, queue: str) -> bytes | None:
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    _, _, body = connection.channel().basic_get(queue, auto_ack=True)
    connection.close()
    return body
