"""A broker connection that dies under a worker must not kill the service."""
import pytest

from hocvu.messaging import ResilientQueueConsumer


class DeadChannelMessage:
    """A message whose connection the broker has just reset."""

    class channel:
        connection = object()

    def __init__(self, error: OSError):
        self.error = error

    def ack(self):
        raise self.error

    def requeue(self):
        raise self.error


@pytest.mark.parametrize("error", [ConnectionResetError(104, "reset"), BrokenPipeError(32, "pipe")])
def test_acknowledging_on_a_dead_connection_is_left_to_redelivery(error):
    consumer = ResilientQueueConsumer()
    consumer.ack_message(DeadChannelMessage(error))      # must not raise
    consumer.requeue_message(DeadChannelMessage(error))  # must not raise


def blocked_consumer(grace: float):
    """A consumer whose consuming thread is stuck (waiting on an event nobody sends), as
    it was once seen stuck on a connection a worker's write had broken."""
    import eventlet
    from eventlet.event import Event

    consumer = ResilientQueueConsumer()
    consumer.RECONNECT_GRACE_SECONDS = grace
    seen = []

    def consuming():
        try:
            Event().wait()
        except ConnectionResetError as exc:
            seen.append(exc)

    consumer._gt = eventlet.spawn(consuming)
    eventlet.sleep(0)
    return consumer, seen


def test_a_consumer_stuck_after_its_connection_broke_is_interrupted():
    import eventlet

    consumer, seen = blocked_consumer(0.05)
    consumer.ack_message(DeadChannelMessage(BrokenPipeError(32, "pipe")))
    eventlet.sleep(0.2)
    assert len(seen) == 1  # kombu's loop takes it as a lost connection and connects again


def test_a_consumer_that_connected_again_is_left_alone():
    import eventlet

    consumer, seen = blocked_consumer(0.05)
    consumer.ack_message(DeadChannelMessage(BrokenPipeError(32, "pipe")))
    consumer.requeue_message(DeadChannelMessage(BrokenPipeError(32, "pipe")))  # one watch
    consumer._connections_made = 1  # what on_consume_ready counts
    eventlet.sleep(0.2)
    assert seen == []
    consumer._gt.kill()
