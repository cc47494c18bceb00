"""Publishing a batch of messages with one wait for the broker's confirms.

nameko's Publisher waits for the broker's confirm of each message before it sends the next:
a round trip per event, which made the relays' publishing one of the largest parts of
enrollment's and lessons' CPU during a launch burst (docs/performance.md). Here a batch is
sent on a channel in confirm mode and the confirms (RabbitMQ acknowledges several at once)
are awaited once, at the end.

A message the broker cannot route (mandatory, and no queue bound) comes back before its
confirm: `publish` then raises Unroutable with the position of the first such message in
the batch; the caller publishes again from there. Anything else (the broker away, a nack,
no confirm in time) raises, and the connection is opened again at the next call.
"""
import time

from kombu import Connection, Producer

from hocvu import amqpwrite

PERSISTENT = 2


class Unroutable(Exception):
    def __init__(self, position: int):
        super().__init__(f"message {position} of the batch was routed to no queue")
        self.position = position


class NotConfirmed(Exception):
    """The broker nacked a message, or did not confirm them all in time."""


class ConfirmedBatches:
    def __init__(self, amqp_uri: str, exchange, declare: list, timeout: float = 30.0):
        """`exchange`: where every message goes; `declare`: entities (the exchange, the
        queues of known subscribers) declared once per connection."""
        self.amqp_uri = amqp_uri
        self.exchange = exchange
        self.declare = declare
        self.timeout = timeout
        self.connection = None
        self.channel = None
        self._sent = 0        # delivery tags given on this channel (one per message)
        self._floor = 1       # the first tag of the batch under way
        self._confirmed: set[int] = set()  # the batch's confirmed tags
        self._nacked = False
        self._returned: set[str] = set()

    def publish(self, bodies: list[dict], routing_key, properties) -> None:
        """Publish each body (JSON) with `routing_key(body)` and `properties(body)` (kombu's
        publish keywords: mandatory, message_id, type, app_id...); return once the broker
        confirmed every one."""
        if not bodies:
            return
        try:
            self._publish(bodies, routing_key, properties)
        except Unroutable:
            raise
        except BaseException:
            self.close()  # a fresh connection next time: this one's state is unknown
            raise

    def _publish(self, bodies, routing_key, properties) -> None:
        channel = self._open()
        producer = Producer(channel, exchange=self.exchange, serializer="json",
                            auto_declare=False)
        first, ids = self._sent + 1, []
        self._floor, self._confirmed, self._nacked = first, set(), False
        self._returned.clear()
        # the batch's messages go to the broker in one write (hocvu/amqpwrite.py)
        with amqpwrite.one_write(self.connection.connection):
            for body in bodies:
                extra = properties(body)
                ids.append(extra.get("message_id"))
                producer.publish(body, routing_key=routing_key(body),
                                 delivery_mode=PERSISTENT, **extra)
                self._sent += 1
        deadline = time.monotonic() + self.timeout
        while not self._all_confirmed(first):
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotConfirmed(f"no confirm within {self.timeout:g} s")
            self.connection.drain_events(timeout=left)
        if self._nacked:
            raise NotConfirmed("the broker refused (nacked) a message")
        returned = [position for position, message_id in enumerate(ids)
                    if message_id in self._returned]
        if returned:
            raise Unroutable(returned[0])

    def _all_confirmed(self, first: int) -> bool:
        return all(tag in self._confirmed for tag in range(first, self._sent + 1))

    def _open(self):
        if self.channel is not None:
            return self.channel
        self.connection = Connection(self.amqp_uri)
        self.connection.connect()
        channel = self.connection.channel()
        for entity in self.declare:
            entity.bind(channel).declare()  # a copy: the entity itself stays unbound
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self.channel, self._sent = channel, 0
        return channel

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:  # every tag up to this one: those of this batch are all that matter
            self._confirmed.update(range(self._floor, delivery_tag + 1))
        else:
            self._confirmed.add(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._nacked = True
        self._on_ack(delivery_tag, multiple)

    def _on_return(self, exc, exchange, routing_key, message) -> None:
        self._returned.add(message.properties.get("message_id"))

    def close(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        self._nacked = False
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass
