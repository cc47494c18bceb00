"""Which queued messages are due: read through a narrow range of `next_attempt_at`.

The embedded store decodes every document a query matches before it sorts and limits
(docs/performance.md): a dispatcher asking "the 100 oldest due messages" while 2,000 wait
decodes all 2,000, every round, and falls further behind the longer the queue grows. So the
dispatcher (one at a time, under its lease) keeps a cursor on `next_attempt_at` and reads
one slice after it: one second's worth of messages, twice as wide after each empty slice so
that it catches up quickly over a quiet stretch. Once caught up it keeps a margin behind
"now", so a message written a moment after it was stamped is still read. A sweep over
everything due, once a minute and at the start, picks up whatever a cursor could miss (a
message stamped further in the past than the margin, by a slow writer or a skewed clock).
"""
import time
from datetime import timedelta

from pymongo import ASCENDING

from services.notifications.messages import QUEUED

ORDER = [("next_attempt_at", ASCENDING), ("created_at", ASCENDING)]


class DueReader:
    def __init__(self, messages, batch_size: int, slice_seconds: float = 1.0,
                 margin_seconds: float = 1.0, sweep_seconds: float = 60.0,
                 monotonic=time.monotonic):
        self.messages = messages
        self.batch_size = batch_size
        self.base_width = timedelta(seconds=slice_seconds)
        self.margin = timedelta(seconds=margin_seconds)
        self.sweep_every = sweep_seconds
        self.monotonic = monotonic
        self.cursor = None
        self.width = self.base_width
        self.next_sweep = 0.0

    def read(self, now) -> tuple[list[dict], bool]:
        """(due messages, oldest first; whether more may be due at once)."""
        if self.cursor is None or self.monotonic() >= self.next_sweep:
            return self._sweep(now)
        while True:
            low, high = self.cursor, min(now, self.cursor + self.width)
            batch = self._find({"$gte": low, "$lte": high})
            if len(batch) == self.batch_size:
                self.cursor, self.width = batch[-1]["next_attempt_at"], self.base_width
                return batch, True
            if high >= now:
                self.cursor, self.width = max(low, now - self.margin), self.base_width
                return batch, False
            self.cursor = high
            if batch:
                self.width = self.base_width
                return batch, True
            self.width *= 2  # a quiet stretch: look further at once

    def _sweep(self, now) -> tuple[list[dict], bool]:
        self.next_sweep = self.monotonic() + self.sweep_every
        batch = self._find({"$lte": now})
        full = len(batch) == self.batch_size
        if self.cursor is None:
            self.cursor = batch[-1]["next_attempt_at"] if full else now - self.margin
        return batch, full

    def _find(self, when: dict) -> list[dict]:
        return list(self.messages.find({"status": QUEUED, "next_attempt_at": when})
                    .sort(ORDER).limit(self.batch_size))
