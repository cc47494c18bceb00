"""Accepted messages, kept in memory and shared by the request and report threads."""
import json
import threading
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Callable

from .segments import count_segments
from .timestamps import utc_now_iso

STAT_NAMES = ("accepted", "duplicates", "rejected", "unavailable", "rate_limited",
              "delivered", "report_failed")


class DuplicateRequest(Exception):
    def __init__(self, message_id: str):
        super().__init__(f"request_id already accepted as {message_id}")
        self.message_id = message_id


@dataclass(frozen=True)
class Message:
    message_id: str
    request_id: str
    to: str
    brandname: str
    text: str
    encoding: str
    segments: int
    received_at: str
    callback_url: str | None
    status: str = "accepted"
    delivered_at: str | None = None
    report_attempts: int = 0
    report_error: str | None = None
    # the API it came in through, and so the format of its delivery report
    report_format: str = "simulator"

    def to_dict(self) -> dict:
        return asdict(self)


class Recorder:
    """Appends each accepted message to a file as one JSON line."""

    def __init__(self, path: str):
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")

    def write(self, message: Message) -> None:
        line = json.dumps(message.to_dict(), ensure_ascii=False)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class MessageStore:
    """Messages are immutable snapshots; an update swaps in a new one under the lock."""

    def __init__(self, recorder: Recorder | None = None):
        self._lock = threading.Lock()
        self._messages: dict[str, Message] = {}
        self._by_request_id: dict[str, str] = {}
        self._stats = dict.fromkeys(STAT_NAMES, 0)
        self._report_ms: list[float] = []  # each delivery report attempt's answer time
        self._recorder = recorder

    def accept(self, fields: dict, admit: Callable[[], None] = lambda: None, *,
               message_id: str | None = None, report_format: str = "simulator") -> Message:
        """Store a validated message.

        Raises DuplicateRequest for a request_id seen before, or whatever `admit`
        raises (the rate limit). Both checks happen under one lock, so two concurrent
        sends with the same id cannot both be accepted and a limit cannot be overshot.
        """
        with self._lock:
            original = self._by_request_id.get(fields["request_id"])
            if original is not None:
                self._stats["duplicates"] += 1
                raise DuplicateRequest(original)
            admit()
            message = Message(
                message_id=message_id or uuid.uuid4().hex,
                report_format=report_format,
                segments=count_segments(fields["text"], fields["encoding"]),
                received_at=utc_now_iso(),
                **fields,
            )
            self._messages[message.message_id] = message
            self._by_request_id[message.request_id] = message.message_id
            self._stats["accepted"] += 1
        if self._recorder is not None:
            self._recorder.write(message)
        return message

    def get(self, message_id: str) -> Message | None:
        with self._lock:
            return self._messages.get(message_id)

    def find(self, *, to: str | None = None, request_id: str | None = None,
             limit: int = 1000) -> list[Message]:
        """Matching messages, oldest first; the newest `limit` of them."""
        with self._lock:
            found = [
                message for message in self._messages.values()
                if (to is None or message.to == to)
                and (request_id is None or message.request_id == request_id)
            ]
        return found[-limit:]

    def update(self, message_id: str, *, counts_as: str | None = None, **changes) -> bool:
        """Apply report progress; False if the message was cleared meanwhile."""
        with self._lock:
            message = self._messages.get(message_id)
            if message is None:
                return False
            self._messages[message_id] = replace(message, **changes)
            if counts_as:
                self._stats[counts_as] += 1
            return True

    def count(self, stat: str) -> None:
        with self._lock:
            self._stats[stat] += 1

    def report_answered(self, milliseconds: float) -> None:
        """How long the callback took to answer one report attempt (any answer, or none)."""
        with self._lock:
            self._report_ms.append(milliseconds)

    def stats(self, reports_from: int = 0) -> dict:
        """The counters; the report answer times from the `reports_from`-th on (a count an
        earlier call returned: those of one stretch of load)."""
        with self._lock:
            answered = sorted(self._report_ms[reports_from:])
            return dict(self._stats, stored=len(self._messages),
                        report_answer_ms=_percentiles(answered),
                        reports_answered=len(self._report_ms))

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._by_request_id.clear()
            self._stats = dict.fromkeys(STAT_NAMES, 0)
            self._report_ms = []


def _percentiles(ordered: list[float]) -> dict:
    """count, p50, p99 and max of sorted milliseconds (nearest rank; None when empty)."""
    if not ordered:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    rank = lambda share: ordered[min(len(ordered) - 1, int(share * len(ordered)))]  # noqa: E731
    return {"count": len(ordered), "p50": round(rank(0.50), 1), "p99": round(rank(0.99), 1),
            "max": round(ordered[-1], 1)}
