"""Dead-letter queues, seen and handled with pika from outside the services.

A dead-lettered message (hocvu.messaging) keeps its body as it was published and carries
headers saying why it failed, where it came from, after how many attempts and when.
Reading a queue here never loses a message: messages are taken without acknowledgement and
only acknowledged once replayed (after the broker confirmed the copy) or purged.
"""
import json
import re
from dataclasses import dataclass
from typing import Callable, Iterable

import pika

from hocvu import messaging, topology
from hocvu.clock import isoformat, utcnow

REPLAYED_AT = "x-hocvu-replayed-at"
PREVIOUS_REASON = "x-hocvu-previous-reason"
_PHONE = re.compile(r"(\+?84|0)(\d{5})(\d{4})\b")


class NoSuchQueue(LookupError):
    pass


@dataclass
class DeadLetter:
    position: int
    delivery_tag: int
    headers: dict
    body: bytes

    @property
    def event_id(self) -> str | None:
        return self._field("event_id")

    @property
    def event_type(self) -> str | None:
        return self._field("event_type")

    def _field(self, name: str):
        try:
            value = json.loads(self.body)
            return value.get(name) if isinstance(value, dict) else None
        except ValueError:
            return None

    def summary(self) -> dict:
        h = self.headers
        return {"position": self.position, "event_type": self.event_type,
                "event_id": self.event_id, "reason": h.get(messaging.REASON),
                "attempts": h.get(messaging.ATTEMPTS), "failed_at": h.get(messaging.FAILED_AT),
                "exchange": h.get(messaging.ORIGINAL_EXCHANGE),
                "routing_key": h.get(messaging.ORIGINAL_ROUTING_KEY),
                "queue": h.get(messaging.ORIGINAL_QUEUE), "service": h.get(messaging.SERVICE),
                "body": preview(self.body)}


def preview(body: bytes, length: int = 160) -> str:
    """The start of a body, with phone numbers masked to their last 4 digits."""
    text = body.decode("utf-8", errors="replace")
    text = _PHONE.sub(lambda m: "*" * (len(m.group(1)) + 5) + m.group(3), text)
    return text if len(text) <= length else text[:length] + "…"


def dead_letter_queue(name: str) -> str:
    return name if name.endswith(".dlq") else topology.dead_letter_queue_name(name)


class DeadLetters:
    def __init__(self, amqp_uri: str):
        parameters = pika.URLParameters(amqp_uri)
        parameters.connection_attempts = 1
        parameters.socket_timeout = 5
        self.connection = pika.BlockingConnection(parameters)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()

    def depth(self, queue: str) -> int:
        """Messages in `queue`; NoSuchQueue if it was never declared."""
        channel = self.connection.channel()  # a failed passive declare closes its channel
        try:
            return channel.queue_declare(queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker:
            raise NoSuchQueue(queue) from None
        finally:
            if channel.is_open:
                channel.close()

    def counts(self) -> dict[str, int | None]:
        """Every known dead-letter queue and its depth (None: not declared yet)."""
        found = {}
        for queue in topology.all_subscriber_queue_names():
            name = topology.dead_letter_queue_name(queue)
            try:
                found[name] = self.depth(name)
            except NoSuchQueue:
                found[name] = None
        return found

    def _take(self, channel, queue: str, limit: int | None) -> list[DeadLetter]:
        wanted = self.depth(queue) if limit is None else min(limit, self.depth(queue))
        taken = []
        for position in range(1, wanted + 1):
            method, properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            taken.append(DeadLetter(position, method.delivery_tag, dict(properties.headers or {}),
                                    body))
        return taken

    def peek(self, queue: str, limit: int | None = None) -> list[DeadLetter]:
        """The first `limit` messages, left in the queue in their order."""
        channel = self.connection.channel()
        try:
            return self._take(channel, queue, limit)
        finally:
            channel.close()  # unacknowledged: they go back, in order

    def replay(self, queue: str, selected: Callable[[DeadLetter], bool],
               progress: Callable[[Iterable], Iterable] = lambda items: items) -> tuple[int, int]:
        """Send the selected messages back to the queue they failed in; return (replayed, left)."""
        channel = self.connection.channel()
        channel.confirm_delivery()
        try:
            letters = self._take(channel, queue, None)
            chosen = [letter for letter in letters if selected(letter)]
            for letter in progress(chosen):
                exchange, routing_key = self._origin(letter.headers)
                headers = {**letter.headers, messaging.ATTEMPTS: 0, REPLAYED_AT: isoformat(utcnow()),
                           PREVIOUS_REASON: letter.headers.get(messaging.REASON, "")}
                headers.pop(messaging.REASON, None)
                channel.basic_publish(exchange, routing_key, letter.body, pika.BasicProperties(
                    content_type="application/json", delivery_mode=2, headers=headers),
                    mandatory=True)
                channel.basic_ack(letter.delivery_tag)  # only once the copy is confirmed
            return len(chosen), len(letters) - len(chosen)
        finally:
            if channel.is_open:
                channel.close()  # what was not replayed goes back, in order

    @staticmethod
    def _origin(headers: dict) -> tuple[str, str]:
        if headers.get(messaging.ORIGINAL_QUEUE):
            return "", headers[messaging.ORIGINAL_QUEUE]
        return headers.get(messaging.ORIGINAL_EXCHANGE, ""), headers.get(
            messaging.ORIGINAL_ROUTING_KEY, "")

    def purge(self, queue: str) -> int:
        channel = self.connection.channel()
        try:
            return channel.queue_purge(queue).method.message_count
        finally:
            channel.close()
