"""Queue consumers come back by themselves after a broker outage of any length, on a
RabbitMQ node of the test's own, and say meanwhile that they are not consuming (what
readiness reports): the broker killed and kept down for longer than the 10 s after which
consumers used to be interrupted (killing their container), and the broker frozen (up,
holding its connections, answering nothing), the case in which a consumer used to wait
silently for a channel's close-ok for as long as the broker stayed silent. And a service
whose container dies ends its process, so that whatever supervises it starts it again."""
import json
import os
import signal
import time

import eventlet
import pika
import pytest

from hocvu import messaging
from hocvu.messaging import subscribe, subscribe_batch
from hocvu_tools.devstack.processes import BIN, Process
from hocvu_tools.devstack.rabbitmq import PrivateRabbitMQ
from hocvu_tools.devstack.stack import QUIET_EVENTLET_NOTICE
from tests.integration.test_certificates_service import course_completed
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SERVICE = "recovery_probe"


class Handled:
    single: set[str] = set()
    batched: set[str] = set()


class RecoveryProbe:
    """Both kinds of consumer, each slow enough to have work in flight when the broker goes."""
    name = SERVICE

    @subscribe("lessons", "course_completed")
    def one(self, event):
        eventlet.sleep(0.2)
        Handled.single.add(event.data["enrollment_id"])

    @subscribe_batch("lessons", "course_completed", max_batch=10, linger_ms=50)
    def many(self, events):
        eventlet.sleep(0.2)
        Handled.batched.update(event.data["enrollment_id"] for event in events)


@pytest.fixture
def broker(tmp_path):
    node = PrivateRabbitMQ(tmp_path / "rabbitmq").start()
    try:
        yield node
    finally:
        if node.running():
            os.killpg(node.process.pid, signal.SIGCONT)
        node.stop()


@pytest.fixture(autouse=True)
def nothing_handled_yet():
    Handled.single, Handled.batched = set(), set()


def publish(broker: PrivateRabbitMQ, ids: list[str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker.amqp_uri))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for enrollment_id in ids:
            channel.basic_publish("lessons.events", "course_completed",
                                  json.dumps(course_completed(enrollment_id)),
                                  pika.BasicProperties(content_type="application/json",
                                                       delivery_mode=2))
    finally:
        connection.close()


def all_handled(ids: list[str]) -> bool:
    return set(ids) <= Handled.single and set(ids) <= Handled.batched


def consumers() -> list:
    return [c for c in list(messaging._consumers) if c.health.service == SERVICE]


def test_consumers_come_back_after_the_broker_was_killed_and_kept_down(broker, run_service):
    container = run_service(RecoveryProbe, {"AMQP_URI": broker.amqp_uri})
    assert messaging.consumers_connected(SERVICE) is True
    first = [f"enr-a{n}" for n in range(60)]
    publish(broker, first)
    wait_for(lambda: Handled.single, timeout=30, what="work in flight")

    broker.kill()  # workers in flight acknowledge on a dead connection
    wait_for(lambda: messaging.consumers_connected(SERVICE) is False, timeout=10,
             what="readiness saying the consumers are not consuming")
    time.sleep(20)  # refused for twice as long as consumers were once given before dying
    assert messaging.consumers_connected(SERVICE) is False
    assert all(consumer.health.failed_connects > 0 for consumer in consumers())
    assert messaging.consumers_stuck(SERVICE) == []  # reconnecting: liveness stays ok

    broker.start()
    returned = time.monotonic()
    wait_for(lambda: messaging.consumers_connected(SERVICE), timeout=60,
             what="the consumers consuming again")
    print(f"consumers consuming again {time.monotonic() - returned:.1f} s after the broker "
          "came back")
    assert not container._died.ready()  # the container lived through it
    later = [f"enr-b{n}" for n in range(20)]
    publish(broker, later)
    wait_for(lambda: all_handled(first + later), timeout=60,
             what="every event handled by both consumers, those in flight redelivered")


def test_a_consumer_whose_broker_stops_answering_tries_to_connect_again(broker, run_service):
    """Heartbeats of 2 s: the consumer finds the frozen broker gone after about 4 s. Its
    clean-up then waits for the broker's close-ok at most AMQP_REPLY_TIMEOUT_SECONDS (3 s
    here) and it goes on to connect again (each try refused after kombu's connect timeout),
    all while the broker is still frozen. Before, that wait had no limit: not one try was
    made until the broker answered again."""
    run_service(RecoveryProbe, {"AMQP_URI": broker.amqp_uri, "HEARTBEAT": 2,
                                "AMQP_REPLY_TIMEOUT_SECONDS": 3})
    publish(broker, ["enr-before"])
    wait_for(lambda: all_handled(["enr-before"]), timeout=30, what="the first event handled")

    os.killpg(broker.process.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: all(c.health.failed_connects > 0 for c in consumers()), timeout=40,
                 interval=0.5, what="a try at connecting again while the broker is frozen")
        assert messaging.consumers_connected(SERVICE) is False
    finally:
        os.killpg(broker.process.pid, signal.SIGCONT)
    wait_for(lambda: messaging.consumers_connected(SERVICE), timeout=60,
             what="the consumers consuming again once the broker answers")
    publish(broker, ["enr-after"])
    wait_for(lambda: all_handled(["enr-before", "enr-after"]), timeout=60,
             what="an event published after the freeze handled")


def test_a_service_whose_container_dies_ends_its_process_with_an_error(tmp_path, amqp_uri):
    """Run as every service runs (`nameko run`, hocvu_tools.devstack.stack): once a thread of
    its container fails, the process exits with status 1 instead of lingering half alive,
    so systemd, Kubernetes or `make run` starts it again."""
    config = tmp_path / "config.yaml"
    config.write_text("AMQP_URI: ${AMQP_URI}\n")
    process = Process("dying", [str(BIN / "python"), "-m", "nameko", "run", "--config",
                                str(config), "tests.support.dying_service"],
                      tmp_path, {"AMQP_URI": amqp_uri, "PYTHONWARNINGS": QUIET_EVENTLET_NOTICE})
    process.start()
    try:
        process.popen.wait(60)
    finally:
        process.stop()
    assert process.popen.returncode == 1, process.log_tail()
    assert "a thread of the container failed" in process.log_tail()
