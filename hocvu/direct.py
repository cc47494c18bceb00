"""Events published at once, confirmed by the broker, without the store: for a call that must
be answered before the store could be asked (a provider's callback while a launch morning's
backlog keeps the store busy).

Everything else a service publishes goes through its outbox (hocvu.outbox): an event there
is committed with the change it announces. An event published here announces no change of
ours yet: it carries what a caller told us, to a consumer of this service that applies it
(in batches). So the caller is answered once the broker has confirmed the event; if the
broker cannot take it, the caller is told to try again later (503), as a provider's retries
expect. The event's queues are declared before its first publication (known subscribers,
hocvu.contracts.SUBSCRIBERS), and it is published `mandatory`: it is never dropped for want
of a queue.
"""
import logging

from kombu.exceptions import KombuError
from nameko.amqp.publish import Publisher, UndeliverableMessage
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange

from hocvu import contracts
from hocvu.events import new_event
from hocvu.topology import known_subscriber_queues

log = logging.getLogger(__name__)

# a few quick tries while the caller waits; beyond that, the caller retries
RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                "interval_max": 0.5}


class NotPublished(Exception):
    """The broker did not confirm the event: tell the caller to try again."""


class DirectPublish:
    def __init__(self, publisher: Publisher, exchange, declare: list, service_name: str):
        self._publisher = publisher
        self._exchange = exchange
        self._declare = declare
        self._service_name = service_name

    def __call__(self, event_type: str, data: dict, correlation_id: str) -> str:
        """Publish the event; its id once the broker confirmed it, else NotPublished."""
        if contracts.SOURCES.get(event_type) != self._service_name:
            raise ValueError(f"{self._service_name} does not publish {event_type}")
        envelope = new_event(event_type, data, correlation_id)
        try:
            self._publisher.publish(
                envelope, exchange=self._exchange, routing_key=event_type, mandatory=True,
                declare=self._declare, message_id=envelope["event_id"], type=event_type,
                app_id=self._service_name, retry=True, retry_policy=RETRY_POLICY)
        except (UndeliverableMessage, KombuError, OSError) as exc:
            log.warning("%s not published: %s", event_type, type(exc).__name__)
            raise NotPublished(event_type) from exc
        return envelope["event_id"]


class DirectPublisher(DependencyProvider):
    """`self.publish(event_type, data, correlation_id)` in an entrypoint of the service that
    owns the event (hocvu.contracts.SOURCES)."""

    def setup(self):
        config = self.container.config
        name = self.container.service_name
        self._publish = DirectPublish(
            Publisher(config["AMQP_URI"], use_confirms=True),
            get_event_exchange(name, config),
            [get_event_exchange(name, config), *known_subscriber_queues(name, config)], name)

    def get_dependency(self, worker_ctx):
        return self._publish
