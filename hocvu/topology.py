"""The broker topology: exchanges and queues, named as nameko names them.

Exchanges: `<service>.events` (topic, durable). Queues: one durable queue per subscribing
handler, `evt-<source>-<event_type>--<service>.<method>`, shared by every instance of
that service.
"""
from kombu import Queue
from nameko.standalone.events import get_event_exchange

from hocvu import contracts


def subscriber_queue(source: str, event_type: str, service: str, method: str,
                     config: dict) -> Queue:
    """The queue nameko's EventHandler declares for a SERVICE_POOL handler, declared the
    same way so that a publisher can declare it before the consumer ever started."""
    return Queue(f"evt-{source}-{event_type}--{service}.{method}",
                 exchange=get_event_exchange(source, config), routing_key=event_type,
                 durable=True, auto_delete=False, exclusive=False)


def known_subscriber_queues(source: str, config: dict) -> list[Queue]:
    """Every queue that consumes an event `source` publishes (hocvu.contracts.SUBSCRIBERS)."""
    return [subscriber_queue(source, event_type, service, method, config)
            for event_type, subscribers in contracts.SUBSCRIBERS.items()
            if contracts.SOURCES[event_type] == source
            for service, method in subscribers]
