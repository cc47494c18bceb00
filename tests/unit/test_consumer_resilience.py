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
