"""Frames gathered into one write (hocvu/amqpwrite.py), against the real broker: what it
receives is what it would have received frame by frame, in the same order."""
import amqp
import kombu
import pytest

from hocvu import amqpwrite

pytestmark = pytest.mark.integration


class CountingSend:
    """The transport's socket send, counted: how many writes reached the socket."""

    def __init__(self, transport):
        self.send = transport._write
        self.calls = 0
        transport._write = self

    def __call__(self, data):
        self.calls += 1
        return self.send(data)


@pytest.fixture
def connection(amqp_uri):
    with kombu.Connection(amqp_uri) as conn:
        conn.connect()
        yield conn


def queue_on(channel, name):
    queue = kombu.Queue(name, exchange=kombu.Exchange(name, "direct"), routing_key=name,
                        channel=channel)
    queue.declare()
    return queue


def test_messages_published_in_a_block_reach_the_broker_in_one_write_in_order(connection):
    channel = connection.channel()
    queue = queue_on(channel, "one-write-publish")
    producer = kombu.Producer(channel, exchange=queue.exchange, serializer="json",
                              auto_declare=False)
    sends = CountingSend(connection.connection.transport)

    with amqpwrite.one_write(connection.connection):
        for n in range(50):
            producer.publish({"n": n}, routing_key="one-write-publish")
        assert sends.calls == 0  # nothing sent before the block ends
    assert sends.calls == 1

    received = []
    while (message := queue.get(no_ack=True)) is not None:
        received.append(message.payload["n"])
    assert received == list(range(50))


def test_acknowledgements_in_a_block_acknowledge_every_message(connection):
    channel = connection.channel()
    queue = queue_on(channel, "one-write-ack")
    producer = kombu.Producer(channel, exchange=queue.exchange, serializer="json")
    for n in range(20):
        producer.publish({"n": n}, routing_key="one-write-ack")
    consumer_channel = connection.channel()
    got = []
    consumer = kombu.Consumer(consumer_channel, [queue], callbacks=[
        lambda body, message: got.append(message)], prefetch_count=50)
    with consumer:
        while len(got) < 20:
            connection.drain_events(timeout=5)
        sends = CountingSend(connection.connection.transport)
        with amqpwrite.one_write(got[0].channel.connection):
            for message in got:
                message.ack()
        assert sends.calls == 1
    consumer_channel.close()
    # none left unacknowledged: closing the channel would have put them back
    assert queue.bind(connection.channel()).queue_declare(passive=True).message_count == 0


def test_a_connection_not_open_is_left_alone(amqp_uri):
    with kombu.Connection(amqp_uri) as conn:
        conn.connect()
        closed = conn.connection
        closed.close()  # its frame writer stays, its transport is gone
    never_connected = amqp.Connection(host="127.0.0.1:1")
    for connection in (None, never_connected, closed):
        with amqpwrite.one_write(connection):
            pass
