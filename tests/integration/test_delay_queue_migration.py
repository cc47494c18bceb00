"""`python -m hocvu_tools.ops delay-queues migrate`: delay queues an earlier release declared
without at-least-once dead-lettering are replaced, with the retries waiting in them
delivered, none lost, none doubled."""
import json

import pika
import pytest

from hocvu import topology
from hocvu_tools.ops.__main__ import main
from tests.integration.test_quorum_queues import queue_listing, vhost_of
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

CONFIG = {"QUEUE_TYPE": "quorum", "RETRY_DELAYS_SECONDS": "1,2"}
OLD_ARGUMENTS = {"x-queue-type": "quorum", "x-dead-letter-exchange": ""}
TARGET = "evt-test-migration--somebody.handler"


def test_old_delay_queues_are_replaced_and_what_waits_in_them_arrives(amqp_uri, pika_client,
                                                                        capsys):
    with pika.BlockingConnection(pika.URLParameters(amqp_uri)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare(TARGET, durable=True)
        for delay in (1, 2):
            name = topology.retry_queue_name(delay)
            channel.exchange_declare(name, "fanout", durable=True)
            channel.queue_declare(name, durable=True, arguments={
                **OLD_ARGUMENTS, "x-message-ttl": delay * 1000})
            channel.queue_bind(name, name)
        # retries waiting when the migration starts, as a service publishes them
        for n in range(5):
            channel.basic_publish("hocvu.retry.2s", TARGET, json.dumps({"n": n}),
                                  pika.BasicProperties(delivery_mode=2))

    assert main(["--amqp-uri", amqp_uri, "delay-queues", "migrate", "--queue-type", "quorum",
                 "--retry-delays", "1,2"]) == 0
    assert "2 of 2 delay queues replaced" in capsys.readouterr().out

    queues = queue_listing(vhost_of(amqp_uri))
    for delay in (1, 2):
        assert queues[topology.retry_queue_name(delay)]["arguments"] == \
            topology.retry_queue_arguments(delay, CONFIG)
    assert not [name for name in queues if name.endswith(".migrating")]
    arrived = wait_for(lambda: pika_client.depth(TARGET) == 5 and pika_client.drain(TARGET),
                       timeout=10, what="the retries that waited in the old queue")
    assert sorted(body["n"] for body in arrived) == [0, 1, 2, 3, 4]

    # the new queues are bound: a retry published now comes back through them
    pika_client.publish("hocvu.retry.1s", TARGET, {"n": 5})
    assert wait_for(lambda: pika_client.drain(TARGET), timeout=10,
                    what="a retry through the new queue") == [{"n": 5}]

    # a second run finds nothing to do
    assert main(["--amqp-uri", amqp_uri, "delay-queues", "migrate", "--queue-type", "quorum",
                 "--retry-delays", "1,2"]) == 0
    assert "0 of 2 delay queues replaced" in capsys.readouterr().out
