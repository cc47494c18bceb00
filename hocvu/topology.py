"""The broker topology: exchanges and queues, named as nameko names them.

- Exchanges `<service>.events` (topic, durable): events, routing key = event type.
- One durable queue per subscribing handler, `evt-<source>-<event_type>--<service>.<method>`,
  shared by every instance of that service.
- Its dead-letter queue `<queue>.dlq`: what failed for good, with the reason in headers.
- Exchanges `<service>.nudges` (fanout, transient): an instance wakes a job in the instance
  that holds its lease (hocvu.nudges); each instance reads them from an exclusive queue
  `<service>.nudges.<32 hex digits>`, deleted with its connection.
- Delay queues `hocvu.retry.<N>s` (each behind a fanout exchange of the same name): a
  message to retry waits there N seconds (queue TTL), then RabbitMQ dead-letters it through
  the default exchange with its routing key, the name of the queue it came from. One queue
  per delay, not one per-message TTL, so a long wait never holds up a short one.

QUEUE_TYPE=quorum (config) declares every queue as a quorum queue, for a RabbitMQ cluster.
There the delay queues also dead-letter at least once (RabbitMQ 3.10+, feature flag
`stream_queue`): the queue keeps a message until the queue it goes back to has confirmed
it, so a node stopping while a retry comes back loses nothing. That needs
`x-overflow: reject-publish` (with any other overflow RabbitMQ quietly falls back to at
most once). A classic queue can only dead-letter at most once.
"""
from kombu import Exchange, Queue
from nameko.standalone.events import get_event_exchange

from hocvu import contracts

DEFAULT_RETRY_DELAYS = (1, 2, 5, 15, 60, 300)


def nudge_exchange(service: str) -> str:
    return f"{service}.nudges"


def nudge_queue(service: str, instance: str) -> str:
    return f"{nudge_exchange(service)}.{instance}"


# the names nudge_queue gives, as a regular expression (broker users' permissions)
NUDGE_INSTANCE = "[0-9a-f]{32}"


def queue_arguments(config: dict) -> dict:
    return {"x-queue-type": "quorum"} if config.get("QUEUE_TYPE") == "quorum" else {}


def retry_delays(config: dict) -> tuple[int, ...]:
    """Seconds to wait before each retry; a message fails for good after len + 1 attempts."""
    raw = config.get("RETRY_DELAYS_SECONDS")
    if raw is None or raw == "":
        return DEFAULT_RETRY_DELAYS
    return tuple(int(part) for part in str(raw).split(",") if part.strip())


def subscriber_queue(source: str, event_type: str, service: str, method: str,
                     config: dict) -> Queue:
    """The queue nameko's EventHandler declares for a SERVICE_POOL handler, declared the
    same way so that a publisher can declare it before the consumer ever started."""
    return Queue(f"evt-{source}-{event_type}--{service}.{method}",
                 exchange=get_event_exchange(source, config), routing_key=event_type,
                 durable=True, auto_delete=False, exclusive=False,
                 queue_arguments=queue_arguments(config))


def known_subscriber_queues(source: str, config: dict) -> list[Queue]:
    """Every queue that consumes an event `source` publishes (hocvu.contracts.SUBSCRIBERS)."""
    return [subscriber_queue(source, event_type, service, method, config)
            for event_type, subscribers in contracts.SUBSCRIBERS.items()
            if contracts.SOURCES[event_type] == source
            for service, method in subscribers]


def all_subscriber_queue_names() -> list[str]:
    return [f"evt-{contracts.SOURCES[event_type]}-{event_type}--{service}.{method}"
            for event_type, subscribers in contracts.SUBSCRIBERS.items()
            for service, method in subscribers]


def dead_letter_queue_name(queue_name: str) -> str:
    return f"{queue_name}.dlq"


def dead_letter_queue(queue_name: str, config: dict) -> Queue:
    name = dead_letter_queue_name(queue_name)
    return Queue(name, routing_key=name, durable=True, auto_delete=False,
                 queue_arguments=queue_arguments(config))


def retry_exchange(delay_seconds: int) -> Exchange:
    return Exchange(f"hocvu.retry.{delay_seconds}s", type="fanout", durable=True)


def retry_queue_name(delay_seconds: int) -> str:
    return f"hocvu.retry.{delay_seconds}s"


def retry_queue_arguments(delay_seconds: int, config: dict) -> dict:
    """Wait `delay_seconds`, then back through the default exchange to the queue named by
    the message's routing key (the queue it failed on)."""
    arguments = {**queue_arguments(config), "x-message-ttl": delay_seconds * 1000,
                 "x-dead-letter-exchange": ""}
    if config.get("QUEUE_TYPE") == "quorum":
        arguments.update(AT_LEAST_ONCE_DEAD_LETTERING)
    return arguments


AT_LEAST_ONCE_DEAD_LETTERING = {"x-dead-letter-strategy": "at-least-once",
                                "x-overflow": "reject-publish"}


def retry_queue(delay_seconds: int, config: dict) -> Queue:
    return Queue(retry_queue_name(delay_seconds), exchange=retry_exchange(delay_seconds),
                 durable=True, auto_delete=False,
                 queue_arguments=retry_queue_arguments(delay_seconds, config))
