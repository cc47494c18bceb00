"""RabbitMQ for tests: a throwaway virtual host on the shared broker, and a pika client.

pika (not kombu) talks to the broker here on purpose: it is how an outside client sees
our exchanges, queues and messages.
"""
import json
import os

import pika

from hocvu_tools.devstack import rabbitmq

BROKER_HOST = os.environ.get("HOCVU_TEST_BROKER_HOST", "127.0.0.1")
BROKER_PORT = int(os.environ.get("HOCVU_TEST_BROKER_PORT", "5672"))


class Vhost(rabbitmq.Vhost):
    """A virtual host of our own, so tests never see each other's queues."""

    def __init__(self):
        super().__init__("hocvu-test", BROKER_HOST, BROKER_PORT)


class Pika:
    """A blocking pika connection for publishing raw events and reading queues."""

    def __init__(self, amqp_uri: str):
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()

    def publish(self, exchange: str, routing_key: str, body) -> None:
        raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
        self.channel.basic_publish(
            exchange, routing_key, raw,
            pika.BasicProperties(content_type="application/json", delivery_mode=2))

    def declare_queue(self, name: str, exchange: str, routing_key: str) -> None:
        """Declare a durable queue bound like nameko binds its event queues."""
        self.channel.exchange_declare(exchange, "topic", durable=True)
        self.channel.queue_declare(name, durable=True)
        self.channel.queue_bind(name, exchange, routing_key)

    def drain(self, queue: str) -> list[dict]:
        """Take every message now in `queue` (acknowledging it) and return their bodies."""
        if not self.depth(queue):
            return []
        bodies = []
        while True:
            method, _, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(json.loads(body))

    def drain_with_headers(self, queue: str) -> list[tuple[dict, bytes]]:
        """Like drain, keeping each message's headers and raw body."""
        if not self.depth(queue):
            return []
        messages = []
        while True:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return messages
            messages.append((properties.headers or {}, body))

    def depth(self, queue: str) -> int:
        """Messages ready in `queue`; 0 if it does not exist (yet)."""
        channel = self.connection.channel()  # a failed passive declare closes its channel
        try:
            return channel.queue_declare(queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            return 0
        finally:
            if channel.is_open:
                channel.close()
