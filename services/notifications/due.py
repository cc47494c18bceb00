"""Which queued messages of a lane are due: read through a narrow range of `next_attempt_at`
of the queue's entries (repository.py: `sms_queue`, entries only while a message waits).

The embedded store decodes every document a query matches before it sorts and limits
(docs/performance.md): a dispatcher asking "the 100 oldest due messages" while 2,000 wait
decodes all 2,000, every round, and falls further behind the longer the queue grows. So the
dispatcher (one at a time, under its lease) keeps a cursor on `next_attempt_at` and reads
one slice after it: one second's worth of messages, twice as wide after each empty slice so
that it catches up quickly over a quiet stretch. Once caught up it keeps a margin of 10 s
behind "now", so a message written a while after it was stamped (a busy machine) is still
read; the margin costs little, as only messages still queued have an entry, and it is read
in one query. The cursor never moves past that margin, not even after a full round or a
slice of a backlog: before, a round of 100 moved it to its last message's stamp, and a
message another instance stamped earlier but wrote a moment later waited up to a minute for
the sweep (seen as 12 to 52 s outliers with two and four instances, docs/performance.md).
A sweep over everything due, once a minute, at the start, and again at once while it finds
a full batch, picks up whatever the cursor missed (a writer slower than the margin, a skewed
clock).

The dispatcher keeps one reader per lane (domain.LANES) and asks each, in the lanes' order,
for at most the room left in its round.
"""
import time
from datetime import timedelta

from pymongo import ASCENDING

ORDER = [("next_attempt_at", ASCENDING), ("created_at", ASCENDING)]


class DueReader:
    def __init__(self, queue, batch_size: int, lane: int = 0, slice_seconds: float = 1.0,
                 margin_seconds: float = 10.0, sweep_seconds: float = 60.0,
                 monotonic=time.monotonic):
        self.queue = queue
        self.batch_size = batch_size
        self.lane = lane
        self.base_width = timedelta(seconds=slice_seconds)
        self.margin = timedelta(seconds=margin_seconds)
        self.sweep_every = sweep_seconds
        self.monotonic = monotonic
        self.cursor = None
        self.width = self.base_width
        self.next_sweep = 0.0

    def read(self, now, limit: int | None = None) -> tuple[list[dict], bool]:
        """(at most `limit` due messages, oldest first; whether more may be due at once)."""
        limit = min(limit or self.batch_size, self.batch_size)
        if self.cursor is None or self.monotonic() >= self.next_sweep:
            return self._sweep(now, limit)
        # the cursor never passes "now" less the margin: a message stamped within it and
        # written after this read (another instance's, a busy writer's) is read next round
        settled = now - self.margin
        while True:
            low = self.cursor
            # within the margin of now, the rest is read at once: what is still queued there
            # is at most the margin's worth of messages, and each round reads it again
            high = now if low >= settled - self.base_width else min(now, low + self.width)
            batch = self._find({"$gte": low, "$lte": high}, limit)
            farthest = max(low, settled)  # where the cursor may go this round
            if len(batch) == limit:
                self.cursor = min(batch[-1]["next_attempt_at"], farthest)
                self.width = self.base_width
                return batch, True
            if high >= now:
                self.cursor, self.width = farthest, self.base_width
                return batch, False
            self.cursor = min(high, farthest)
            if batch:
                self.width = self.base_width
                return batch, True
            self.width *= 2  # a quiet stretch: look further at once

    def _sweep(self, now, limit: int) -> tuple[list[dict], bool]:
        """At the start: everything due, oldest first, and the cursor set after it. Then:
        only what lies behind the cursor, which the walk never reads again."""
        first = self.cursor is None
        batch = self._find({"$lte": now} if first else {"$lt": self.cursor}, limit)
        full = len(batch) == limit
        if first:
            settled = now - self.margin
            self.cursor = min(batch[-1]["next_attempt_at"], settled) if full else settled
        # a full sweep behind the cursor means more may be there: sweep again next round
        self.next_sweep = self.monotonic() + (0 if full and not first else self.sweep_every)
        return batch, full

    def _find(self, when: dict, limit: int) -> list[dict]:
        return list(self.queue.find({"lane": self.lane, "next_attempt_at": when})
                    .sort(ORDER).limit(limit))
