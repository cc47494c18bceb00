"""Replacing the delay queues `hocvu.retry.<N>s` that an earlier release declared with other
arguments: on quorum queues, those from before at-least-once dead-lettering
(hocvu.topology). RabbitMQ cannot change a queue's arguments, and refuses a declaration with
different ones (PRECONDITION_FAILED), so each such queue is replaced, while the services run,
without losing or doubling a retry:

1. a stand-in `hocvu.retry.<N>s.migrating`, declared with the new arguments (same wait, same
   way back), is bound to the exchange `hocvu.retry.<N>s`: retries from now on wait there;
2. the old queue is unbound: nothing new goes in, and what it holds goes back to its queues
   as its time runs out (N seconds at most); once empty it is deleted;
3. the queue is declared again with the new arguments; the stand-in is unbound and the new
   queue bound (in that order: a retry published in between finds no queue and, published
   `mandatory`, goes back to its own queue to be tried again, hocvu.messaging); the
   stand-in, once empty, is deleted.
"Empty" is what AMQP reports, the messages ready: a quorum queue with at-least-once
dead-lettering also holds, for the milliseconds until the target confirms them, messages it
is moving (`rabbitmqctl list_queues name messages` counts them), so the stand-in is deleted
only `settle_seconds` after it last had a ready message. Quorum queues cannot be deleted
"if empty"; neither queue is bound any more when it is deleted, so nothing can arrive.
A queue that already has the new arguments is left alone, so running it twice is harmless.
"""
import time
from dataclasses import dataclass
from typing import Callable

import pika
from pika.exceptions import ChannelClosedByBroker

from hocvu import topology

STAND_IN_SUFFIX = ".migrating"
PRECONDITION_FAILED = 406


@dataclass
class Migration:
    queue: str
    replaced: bool
    waited_seconds: float = 0.0


class DelayQueues:
    def __init__(self, amqp_uri: str, config: dict, report: Callable[[str], None] = print,
                 poll_seconds: float = 0.5, settle_seconds: float = 5.0):
        # one node of a cluster is enough: queues and bindings are the cluster's
        self.parameters = pika.URLParameters(amqp_uri.split(";")[0])
        self.config = config
        self.report = report
        self.poll_seconds = poll_seconds
        self.settle_seconds = settle_seconds

    def migrate(self) -> list[Migration]:
        with pika.BlockingConnection(self.parameters) as connection:
            return [self._migrate_one(connection, delay)
                    for delay in sorted(set(topology.retry_delays(self.config)))]

    def _migrate_one(self, connection, delay: int) -> Migration:
        name = topology.retry_queue_name(delay)
        exchange = topology.retry_exchange(delay).name
        arguments = topology.retry_queue_arguments(delay, self.config)
        channel = connection.channel()
        channel.exchange_declare(exchange, "fanout", durable=True)
        try:
            channel.queue_declare(name, durable=True, arguments=arguments)
            channel.queue_bind(name, exchange)
            self.report(f"{name}: already declared as this release declares it")
            return Migration(name, replaced=False)
        except ChannelClosedByBroker as exc:
            if exc.reply_code != PRECONDITION_FAILED:
                raise
        started = time.monotonic()
        stand_in = name + STAND_IN_SUFFIX
        channel = connection.channel()
        channel.queue_declare(stand_in, durable=True, arguments=arguments)
        channel.queue_bind(stand_in, exchange)
        channel.queue_unbind(name, exchange)
        self.report(f"{name}: has other arguments; retries now wait in {stand_in}, and the "
                    f"old queue empties itself within {delay} s")
        self._delete_when_empty(channel, name)
        channel.queue_declare(name, durable=True, arguments=arguments)
        channel.queue_unbind(stand_in, exchange)
        channel.queue_bind(name, exchange)
        self._delete_when_empty(channel, stand_in, self.settle_seconds)
        waited = time.monotonic() - started
        self.report(f"{name}: declared again with {arguments} ({waited:.0f} s)")
        return Migration(name, replaced=True, waited_seconds=waited)

    def _delete_when_empty(self, channel, queue: str, settle_seconds: float = 0.0) -> None:
        empty_since = None
        while True:
            if channel.queue_declare(queue, passive=True).method.message_count:
                empty_since = None
            else:
                empty_since = empty_since or time.monotonic()
                if time.monotonic() - empty_since >= settle_seconds:
                    break
            time.sleep(self.poll_seconds)
        channel.queue_delete(queue)
