"""The consumer priority an instance takes on its queues (hocvu.messaging); how RabbitMQ
uses it is in tests/integration/test_consumer_priority.py."""
import pytest

from hocvu.messaging import consumer_priority


def test_an_unset_priority_is_drawn_once_per_process_and_a_set_one_is_checked():
    drawn = consumer_priority({})
    assert drawn == consumer_priority({"CONSUMER_PRIORITY": ""}) and 1 <= drawn <= 1_000_000
    assert consumer_priority({"CONSUMER_PRIORITY": "-5"}) == -5
    with pytest.raises(ValueError):
        consumer_priority({"CONSUMER_PRIORITY": str(2**31)})
