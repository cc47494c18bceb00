"""Consuming events: `@subscribe(source, event_type)` on a service method.

The method receives a parsed, validated `hocvu.events.Event` instead of a raw body. Queues
are nameko's: durable `evt-<source>-<event_type>--<service>.<method>` bound to the topic
exchange `<source>.events`, so several instances of a service share one queue.

A body that is not a valid event is never handed to the handler; a duplicate delivery
(AlreadyProcessed, raised by Transaction.claim_event) is acknowledged quietly.
"""
import logging

from nameko.events import EventHandler

from hocvu.events import MalformedEvent, parse_event
from hocvu.store import AlreadyProcessed

log = logging.getLogger(__name__)


class EventSubscriber(EventHandler):
    def __init__(self, source_service: str, event_type: str, **kwargs):
        kwargs.setdefault("expected_exceptions", (AlreadyProcessed,))
        super().__init__(source_service, event_type, **kwargs)

    def handle_message(self, body, message):
        try:
            event = parse_event(body, self.event_type)
        except MalformedEvent as exc:
            log.error("dropping malformed %s event from %s: %s %s",
                      self.event_type, self.source_service, exc.reason, exc.fields)
            self.queue_consumer.ack_message(message)
            return
        super().handle_message(event, message)

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is not None and not isinstance(exc_info[1], AlreadyProcessed):
            log.error("%s handler for %s failed: %r",
                      self.method_name, self.event_type, exc_info[1])
        super().handle_message_processed(message, result, exc_info)


subscribe = EventSubscriber.decorator
