"""Consuming events: `@subscribe(source, event_type)` on a service method.

The method receives a parsed, validated `hocvu.events.Event`. Queues are nameko's: durable
`evt-<source>-<event_type>--<service>.<method>` bound to the topic exchange
`<source>.events`, so several instances of a service share one queue (hocvu.topology).

Nothing is dropped silently (nameko's default acknowledges a message whose handler raised):
- a duplicate delivery (AlreadyProcessed) is acknowledged: its effect already happened;
- a handler that raises is retried: the message waits in a delay queue
  (RETRY_DELAYS_SECONDS, default 1, 2, 5, 15, 60, 300) and comes back to this queue, so
  other messages go on meanwhile and nothing loops hot; after the last delay (about 6.4
  minutes of trying in all) it is dead-lettered;
- a message that can never be processed (not JSON, not an envelope, data breaking its
  contract) is dead-lettered at once.
A dead-lettered message goes to `<queue>.dlq` with headers saying why, from where, after how
many attempts and when; `python -m hocvu_tools.ops` lists, shows and replays them.
The copy is published (with confirms) before the original is acknowledged: a crash in
between delivers the event twice, which the idempotent handlers absorb. A retry is
published `mandatory`: if no delay queue is bound to take it, the broker says so and the
original goes back to its queue instead of the copy vanishing.

Instances of a service share each queue, but not evenly: each consumes with a priority
(RabbitMQ's `x-priority`), CONSUMER_PRIORITY or else a number drawn once per process, and
RabbitMQ hands every message to the highest-priority instance until its prefetch is full
(it is behind), only then to the next. Below that, events stay in one process, in full
batches: two instances on one machine cost no more than one (docs/performance.md, "More
instances on the same 2 cores"), and a second one takes the overflow of a backlog.

A delay queue that an earlier release declared with other arguments (before at-least-once
dead-lettering, hocvu.topology) is used as it is, with a warning, rather than failing every
retry on RabbitMQ's PRECONDITION_FAILED; `python -m hocvu_tools.ops delay-queues migrate`
replaces it (docs/operations.md).

`@subscribe_batch(source, event_type, max_batch=..., linger_ms=...)` is the same queue and
the same promises for a handler that writes many events at once (`insert_many`,
`bulk_write(ordered=False)`), because the store charges per operation: the method receives a
list of events (at most max_batch, gathered for at most linger_ms after the first) and may
return those of them (the objects it was given: one event delivered twice in a batch is two
of them) it found already done, counted as duplicates. Every message of the
batch is acknowledged only after the method returned. If it raises, each event of the batch
is handled again alone, and only one that fails alone takes the retry path above: a poison
message never holds the others back.
"""
import logging
import random
import time
import weakref
from contextlib import contextmanager
from functools import partial

import eventlet
from amqp.exceptions import PreconditionFailed
from kombu import Connection
from nameko.amqp.publish import Publisher, UndeliverableMessage
from nameko.exceptions import ContainerBeingKilled
from nameko.events import EventHandler
from nameko.messaging import QueueConsumer

from hocvu import amqpwrite, logcontext, metrics, topology
from hocvu.clock import isoformat, utcnow
from hocvu.events import Event, MalformedEvent, parse_event
from hocvu.store import AlreadyProcessed

log = logging.getLogger(__name__)

ATTEMPTS = "x-hocvu-attempts"
REASON = "x-hocvu-reason"
ORIGINAL_EXCHANGE = "x-hocvu-exchange"
ORIGINAL_ROUTING_KEY = "x-hocvu-routing-key"
ORIGINAL_QUEUE = "x-hocvu-queue"
FAILED_AT = "x-hocvu-failed-at"
SERVICE = "x-hocvu-service"


# A consuming thread shows a sign of life at least once a second while it consumes (a
# round of its drain loop) and once per try while it connects (at most
# RECONNECT_MAX_SECONDS apart); with every wait bounded, one silent for this long is stuck
# where no retry reaches, and only a restart of the process mends it (liveness).
STALL_SECONDS = 120.0


class ConsumerHealth:
    """Whether one queue consumer is consuming now, and when it last showed a sign of life."""

    def __init__(self, service: str):
        self.service = service
        now = time.monotonic()
        self.consuming_since: float | None = None
        self.lost_at: float | None = None  # when a connection it had consumed on broke
        self.progress_at = now
        self.failed_connects = 0  # tries at connecting that failed, since the start

    def progressed(self) -> None:
        self.progress_at = time.monotonic()

    def consuming(self) -> None:
        now = self.progress_at = time.monotonic()
        if self.lost_at is not None:
            log.warning("%s consumes again, %.1f s after its broker connection was lost",
                        self.service, now - self.lost_at)
            self.lost_at = None
        self.consuming_since = now

    def disconnected(self) -> None:
        now = self.progress_at = time.monotonic()
        if self.consuming_since is not None:
            self.lost_at = now
        self.consuming_since = None

    def stalled(self) -> bool:
        return time.monotonic() - self.progress_at > STALL_SECONDS


_consumers: "weakref.WeakSet[ResilientQueueConsumer]" = weakref.WeakSet()


def consumers_connected(service: str) -> bool | None:
    """True when every queue consumer of `service` in this process consumes, False while any
    is connecting (again); None for a service that consumes nothing."""
    mine = [consumer for consumer in list(_consumers) if consumer.health.service == service]
    if not mine:
        return None
    return all(consumer.health.consuming_since is not None for consumer in mine)


def consumers_stuck(service: str) -> list[str]:
    """Why `service` can no longer consume without a restart: a consuming thread that died
    while its container runs, or one that showed no sign of life for STALL_SECONDS."""
    problems = []
    for consumer in list(_consumers):
        if consumer.health.service != service:
            continue
        name = type(consumer).__name__
        if consumer.thread_dead():
            problems.append(f"{name}: its consuming thread has ended")
        elif consumer.health.stalled():
            problems.append(f"{name}: no sign of life for "
                            f"{time.monotonic() - consumer.health.progress_at:.0f} s")
    return problems


def consumer_gauges(service: str):
    """hocvu_consumers_connected, read at each scrape (hocvu.metrics.on_scrape): 1 while
    every queue consumer of the service in this process consumes, 0 while any connects
    (again); the HocvuConsumersDisconnected alert reads it."""
    yield metrics.gauge("hocvu_consumers_connected",
                        "1 while every queue consumer of this process consumes, 0 while any "
                        "is connecting to the broker (again).", service,
                        1.0 if consumers_connected(service) else 0.0)


class ResilientQueueConsumer(QueueConsumer):
    """nameko's QueueConsumer, made to come back by itself after a broker outage of any
    length, and to say how it is doing (readiness and liveness, hocvu.health):

    - a body kombu cannot decode goes to its subscriber to be dead-lettered (kombu would log
      it and acknowledge it: a silent drop);
    - acknowledging on a connection that just died raises a socket error that nameko does
      not catch, and it kills the whole service. The broker redelivers an unacknowledged
      message once the consumer reconnects, and the idempotent handler absorbs it;
    - every answer the broker owes (channel open and close, qos, declare, consume, cancel)
      is waited for at most REPLY_TIMEOUT_SECONDS. py-amqp waits for them without a limit
      (its read_timeout is SO_RCVTIMEO, which eventlet's non-blocking green sockets never
      apply), so a connection lost while its socket stayed open (missed heartbeats, a node
      that stopped answering) left the consuming thread waiting for a channel's close-ok
      in kombu's clean-up for as long as the peer stayed silent: it logged nothing, tried
      no other node, and the queues had no consumer (docs/reliability.md, "Consumers after
      a broker outage");
    - connecting again is tried every 1, 2, 3... seconds up to RECONNECT_MAX_SECONDS
      (kombu's default grows to 30 s, so a consumer could come back half a minute after
      the broker did).
    """

    REPLY_TIMEOUT_SECONDS = 15.0
    RECONNECT_MAX_SECONDS = 5.0

    def setup(self):
        super().setup()
        config = self.container.config
        self.reply_timeout = float(config.get("AMQP_REPLY_TIMEOUT_SECONDS")
                                   or self.REPLY_TIMEOUT_SECONDS)
        self.reconnect_max = float(config.get("AMQP_RECONNECT_MAX_SECONDS")
                                   or self.RECONNECT_MAX_SECONDS)
        self.health = ConsumerHealth(self.container.service_name)
        _consumers.add(self)
        metrics.on_scrape(self.health.service, "consumers",
                          partial(consumer_gauges, self.health.service))

    def stop(self):
        self._forget()
        super().stop()

    def kill(self):
        self._forget()
        super().kill()

    def _forget(self) -> None:
        _consumers.discard(self)
        if consumers_connected(self.health.service) is None:
            metrics.forget(self.health.service, "consumers")  # its last consumer stopped

    @contextmanager
    def establish_connection(self):
        with self.create_connection() as connection:
            connection.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                         interval_start=1, interval_step=1,
                                         interval_max=self.reconnect_max)
            # the socket's own timeout bounds every wait for the broker's answer (the drain
            # loop sets a shorter one of its own for each read)
            connection.connection.sock.settimeout(self.reply_timeout)
            try:
                yield connection
            except BaseException:
                self.health.disconnected()
                raise

    def on_connection_error(self, exc, interval):
        self.health.disconnected()
        self.health.failed_connects += 1
        super().on_connection_error(exc, interval)

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        super().on_consume_ready(connection, channel, consumers, **kwargs)
        self.health.consuming()

    def on_iteration(self):
        self.health.progressed()
        super().on_iteration()

    def ack_message(self, message):
        try:
            super().ack_message(message)
        except OSError as exc:
            log.warning("could not acknowledge a message (%r); the broker will redeliver it", exc)

    def requeue_message(self, message):
        try:
            super().requeue_message(message)
        except OSError as exc:
            log.warning("could not requeue a message (%r); the broker will redeliver it", exc)

    def thread_dead(self) -> bool:
        return self._gt is not None and self._gt.dead and not self.should_stop

    def on_decode_error(self, message, exc):
        tag = message.delivery_info.get("consumer_tag")
        for provider, consumer in list(self._consumers.items()):
            if tag in getattr(consumer, "_active_tags", {}).values():
                provider.dead_letter(message, f"undecodable body: {exc}")
                return
        log.error("undecodable message on an unknown consumer (%s); rejecting it", tag)
        message.reject(requeue=False)


# this process's consumer priority when CONSUMER_PRIORITY is not set: drawn once, so that
# every queue of the process ranks the instances alike (ties, one in a million, share)
_DRAWN_PRIORITY = random.SystemRandom().randint(1, 1_000_000)
PRIORITY_LIMIT = 2**31 - 1  # x-priority is a signed 32-bit integer


def consumer_priority(config: dict) -> int:
    """The priority this instance consumes with: CONSUMER_PRIORITY, or one drawn at random
    for the process (module docstring)."""
    given = config.get("CONSUMER_PRIORITY")
    if given in (None, ""):
        return _DRAWN_PRIORITY
    priority = int(given)
    if not -PRIORITY_LIMIT <= priority <= PRIORITY_LIMIT:
        raise ValueError(f"CONSUMER_PRIORITY must be within ±{PRIORITY_LIMIT}, not {given}")
    return priority


class EventSubscriber(EventHandler):
    queue_consumer = ResilientQueueConsumer()

    def __init__(self, source_service: str, event_type: str, **kwargs):
        kwargs.setdefault("expected_exceptions", (AlreadyProcessed, MalformedEvent))
        super().__init__(source_service, event_type, **kwargs)

    def setup(self):
        super().setup()
        config = self.container.config
        # declared like a publisher declares it (topology.known_subscriber_queues)
        self.queue = topology.subscriber_queue(self.source_service, self.event_type,
                                               self.container.service_name, self.method_name,
                                               config)
        self.queue.consumer_arguments = {"x-priority": consumer_priority(config)}
        self.delays = topology.retry_delays(config)
        self.dead_letters = topology.dead_letter_queue(self.queue.name, config)
        self.failures = Publisher(config["AMQP_URI"], use_confirms=True, declare=[
            self.dead_letters, *(topology.retry_exchange(d) for d in self.delays)])

    def handle_message(self, body, message):
        event = self._parse_or_dead_letter(body, message)
        if event is None:
            return
        with logcontext.bound(correlation_id=event.correlation_id, event_id=event.event_id):
            message.hocvu_received_at = time.perf_counter()  # for the handler's latency
            try:
                logcontext.spawn_worker(self, (event,), {},
                                        context_data=self.unpack_message_headers(message),
                                        handle_result=partial(self.handle_result, message))
            except ContainerBeingKilled:
                self.queue_consumer.requeue_message(message)

    def _parse_or_dead_letter(self, body, message) -> Event | None:
        """The event in `body`; None once a malformed one is dead-lettered (no retry mends it)."""
        try:
            return parse_event(body, self.event_type)
        except MalformedEvent as exc:
            with logcontext.bound(**_envelope_ids(body)):
                self.dead_letter(message, f"{exc.reason}: {exc.fields}" if exc.fields
                                 else exc.reason)
            return None

    def handle_message_processed(self, message, result=None, exc_info=None):
        seconds = time.perf_counter() - getattr(message, "hocvu_received_at", time.perf_counter())
        if exc_info is None or isinstance(exc_info[1], AlreadyProcessed):
            self._count("ok" if exc_info is None else "duplicate", seconds)
            self.queue_consumer.ack_message(message)
            return
        attempts = int((message.headers or {}).get(ATTEMPTS, 0)) + 1
        reason = f"{type(exc_info[1]).__name__}: {exc_info[1]}"[:500]
        if isinstance(exc_info[1], MalformedEvent):
            # the handler found the event unusable (a sealed value it cannot open): no retry
            # will change that
            self.dead_letter(message, reason, attempts)
            return
        if attempts > len(self.delays):
            self.dead_letter(message, f"failed {attempts} times; last: {reason}", attempts)
            return
        delay = self.delays[attempts - 1]
        self._count("retried", seconds)
        log.warning("%s failed on %s (attempt %s), retrying in %ss: %s",
                    self.method_name, self.event_type, attempts, delay, reason)
        self._republish(message, topology.retry_exchange(delay), self.queue.name,
                        {ATTEMPTS: attempts, REASON: reason}, delay=delay)

    def dead_letter(self, message, reason: str, attempts: int | None = None) -> None:
        if attempts is None:
            attempts = int((message.headers or {}).get(ATTEMPTS, 0)) + 1
        log.error("dead-lettering a %s message from %s after %s attempt(s): %s",
                  self.event_type, self.source_service, attempts, reason)
        self._count("dead_lettered")
        self._republish(message, "", self.dead_letters.name, {
            ATTEMPTS: attempts, REASON: reason[:1000], FAILED_AT: isoformat(utcnow()),
            ORIGINAL_QUEUE: self.queue.name, SERVICE: self.container.service_name})

    def _count(self, outcome: str, handler_seconds: float | None = None) -> None:
        metrics.event_consumed(self.container.service_name, self.event_type, outcome,
                               handler_seconds)
        if handler_seconds is not None and outcome in ("ok", "duplicate"):
            # one line per event handled, with its ids: how a journey is followed in the logs
            log.info("%s handled %s from %s: %s in %.1f ms", self.method_name, self.event_type,
                     self.source_service, outcome, handler_seconds * 1000)

    def _republish(self, message, exchange, routing_key: str, headers: dict,
                   delay: int | None = None) -> None:
        """Publish a copy of `message` with `headers` (to the delay queue of `delay` seconds,
        if given), then acknowledge the original; if the copy cannot be published (the
        broker is away, no delay queue takes it), leave the original to be redelivered."""
        try:
            # with the first copy of any kind, so that the delay queues exist before a
            # retry needs them (and show in the broker's listings)
            ensure_delay_queues(self.container.config, self.delays)
            self._publish_copy(message, exchange, routing_key, headers,
                               mandatory=delay is not None)
        except UndeliverableMessage:
            log.error("no delay queue took a %s message to retry; it goes back to its queue",
                      self.event_type)
            _declared_delay_queues.clear()  # declare them again on the next retry
            self.queue_consumer.requeue_message(message)
            return
        except Exception as exc:
            log.error("could not set a %s message aside (%r); it goes back to its queue",
                      self.event_type, exc)
            self.queue_consumer.requeue_message(message)
            return
        self.queue_consumer.ack_message(message)

    def _publish_copy(self, message, exchange, routing_key: str, headers: dict,
                      mandatory: bool = False) -> None:
        info = message.delivery_info or {}
        previous = dict(message.headers or {})
        # a message back from a delay queue arrives through the default exchange: keep
        # where it first came from
        previous.setdefault(ORIGINAL_EXCHANGE, info.get("exchange", ""))
        previous.setdefault(ORIGINAL_ROUTING_KEY, info.get("routing_key", ""))
        previous.pop("x-death", None)
        self.failures.publish(
            message.body, exchange=exchange, routing_key=routing_key,
            headers={**previous, **headers}, serializer=None, mandatory=mandatory,
            content_type=message.content_type or "application/json",
            content_encoding=message.content_encoding or "utf-8")


_declared_delay_queues: set[tuple[str, tuple[int, ...]]] = set()


def ensure_delay_queues(config: dict, delays: tuple[int, ...]) -> None:
    """Declare the delay queues and bind each to its exchange, once per process and broker.
    One that exists with other arguments (declared by an earlier release) is bound as it
    is, with a warning: retries keep working through it, at most once, until it is
    migrated."""
    key = (config["AMQP_URI"], tuple(delays))
    if key in _declared_delay_queues:
        return
    with Connection(config["AMQP_URI"], connect_timeout=5) as connection:
        connection.ensure_connection(max_retries=3)
        for delay in delays:
            queue = topology.retry_queue(delay, config)
            try:
                queue(connection.channel()).declare()
            except PreconditionFailed as exc:
                log.warning("delay queue %s exists with other arguments than this release "
                            "declares (%s); using it as it is until `python -m hocvu_tools.ops "
                            "delay-queues migrate` replaces it (docs/operations.md)",
                            queue.name, exc)
                channel = connection.channel()
                queue.exchange(channel).declare()
                channel.queue_bind(queue.name, queue.exchange.name, routing_key="")
    _declared_delay_queues.add(key)


def _envelope_ids(body) -> dict:
    """The ids a malformed event still carries, if any, for the lines about it."""
    if not isinstance(body, dict):
        return {}
    return {"correlation_id": body.get("correlation_id"), "event_id": body.get("event_id")}


subscribe = EventSubscriber.decorator


class BatchQueueConsumer(ResilientQueueConsumer):
    """The queue consumer of batch subscribers: a connection of its own (nameko shares one
    consumer, and one prefetch of max_workers per queue, per class of consumer), whose
    queues each get the prefetch their subscriber asks for.

    RabbitMQ applies a (per-consumer) basic.qos to the consumers started after it on the
    channel, and nameko starts them all after setting every qos, so each consumer is started
    right after its own qos here (kombu's later consume() skips a queue already consumed).
    """

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            consumer.qos(prefetch_count=provider.prefetch_count)
            consumer.consume()
        return consumers


class BatchEventSubscriber(EventSubscriber):
    """`subscribe_batch`: events handed to one worker as a list (module docstring)."""

    queue_consumer = BatchQueueConsumer()

    def __init__(self, source_service: str, event_type: str, max_batch: int = 100,
                 linger_ms: float = 20, **kwargs):
        if max_batch < 1 or linger_ms < 0:
            raise ValueError("max_batch must be at least 1 and linger_ms not negative")
        self.max_batch = max_batch
        self.linger_seconds = linger_ms / 1000
        super().__init__(source_service, event_type, **kwargs)

    @property
    def prefetch_count(self) -> int:
        # the next batch gathers while one is being written
        return 2 * self.max_batch

    def setup(self):
        super().setup()
        # a deployment tunes every batch subscriber of a service at once (docs/configuration.md)
        config = self.container.config
        self.max_batch = int(config.get("EVENT_BATCH_MAX") or self.max_batch)
        linger_ms = config.get("EVENT_BATCH_LINGER_MS")
        if linger_ms not in (None, ""):
            self.linger_seconds = float(linger_ms) / 1000
        self._pending: list[tuple] = []  # (event, message), in arrival order
        self._generation = 0  # batches handed out so far: a linger timer of an older one idles
        self._lingering = False

    def stop(self):
        # what is gathered is handled before the container waits for its workers; what
        # arrives until the consumer is cancelled too (the channel stays open for their acks
        # until the workers are done); anything later is redelivered to the next consumer
        self._hand_out()
        super().stop()
        self._hand_out()

    def handle_message(self, body, message):
        event = self._parse_or_dead_letter(body, message)
        if event is None:
            return
        message.hocvu_received_at = time.perf_counter()
        # one green thread per message runs this; they never switch between these lines
        self._pending.append((event, message))
        if len(self._pending) >= self.max_batch:
            self._hand_out()
        elif not self._lingering:
            self._lingering = True
            generation = self._generation
            self.container.spawn_managed_thread(partial(self._hand_out_after, generation),
                                                identifier=f"{self.method_name}.linger")

    def _hand_out_after(self, generation: int) -> None:
        eventlet.sleep(self.linger_seconds)
        if self._generation == generation:
            self._hand_out()

    def _hand_out(self) -> None:
        batch, self._pending = self._pending, []
        self._generation += 1
        self._lingering = False
        if batch:
            metrics.event_batch(self.container.service_name, self.event_type)
            self._spawn(batch, self._batch_done)

    def _spawn(self, batch: list[tuple], done) -> None:
        try:
            logcontext.spawn_worker(self, ([event for event, _ in batch],), {},
                                    context_data=self.unpack_message_headers(batch[0][1]),
                                    handle_result=partial(done, batch))
        except ContainerBeingKilled:
            for _, message in batch:
                self.queue_consumer.requeue_message(message)

    def _batch_done(self, batch, worker_ctx, result=None, exc_info=None):
        if exc_info is None:
            self._acknowledge(batch, result)
        elif len(batch) == 1:
            self._single_done(batch, worker_ctx, result, exc_info)
        else:
            reason = f"{type(exc_info[1]).__name__}: {exc_info[1]}"[:500]
            log.warning("%s failed on a batch of %s %s events (%s); handling each alone",
                        self.method_name, len(batch), self.event_type, reason)
            # from a thread of its own: a worker waiting here for a free worker could wait
            # for ever when every worker does the same
            self.container.spawn_managed_thread(partial(self._one_by_one, batch),
                                                identifier=f"{self.method_name}.one_by_one")
        return result, exc_info

    def _one_by_one(self, batch: list[tuple]) -> None:
        for pair in batch:
            self._spawn([pair], self._single_done)

    def _single_done(self, batch, worker_ctx, result=None, exc_info=None):
        event, message = batch[0]
        if exc_info is None:
            self._acknowledge(batch, result)
        else:
            with logcontext.bound(correlation_id=event.correlation_id, event_id=event.event_id):
                self.handle_message_processed(message, None, exc_info)
        return result, exc_info

    def _acknowledge(self, batch: list[tuple], already_done) -> None:
        """Each event counted and logged, and the batch's acknowledgements sent to the broker
        in one write (hocvu/amqpwrite.py); one that cannot be sent is redelivered."""
        already_done = {id(event) for event in already_done or ()}
        now = time.perf_counter()
        try:
            with amqpwrite.one_write(getattr(batch[0][1].channel, "connection", None)):
                for event, message in batch:
                    with logcontext.bound(correlation_id=event.correlation_id,
                                          event_id=event.event_id):
                        self._count("duplicate" if id(event) in already_done else "ok",
                                    now - message.hocvu_received_at)
                    self.queue_consumer.ack_message(message)
        except OSError as exc:
            log.warning("could not acknowledge %s messages (%r); the broker will redeliver "
                        "them", len(batch), exc)


subscribe_batch = BatchEventSubscriber.decorator
