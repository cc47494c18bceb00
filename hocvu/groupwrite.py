"""Inserts that arrive together are written together (a group commit).

While a write is on its way to the store, the documents other workers hand in wait; the
next write takes all of them at once, with `insert_many(ordered=False)`. A lone request
waits for nothing (there is no linger): under load the batches grow by themselves, up to the
number of workers writing at that moment. `in_flight` allows more than one write at a time:
smaller batches, less waiting (docs/performance.md has both measured). The embedded store
charges each document of an `insert_many` about a quarter to a third of what a lone
`insert_one` costs, so the busier the service, the cheaper each write.

Each caller gets its own document's outcome, as if it had inserted alone: nothing, or
DuplicateKeyError when its natural key exists, or the error that stopped the whole write.
Works with threads and with eventlet's green threads (nameko's), whose monkey-patched
`threading` makes these locks green.
"""
import threading

from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from hocvu import metrics

DUPLICATE_KEY = 11000


class _Pending:
    def __init__(self, document: dict):
        self.document = document
        self.error: BaseException | None = None
        self.leads = False  # this caller writes the next batch, its own document first
        self.woken = threading.Event()


class GroupInserter:
    """`insert(document)` for one collection, written together with whatever other callers
    hand in meanwhile. At most `in_flight` writers at a time; when one is done, the first of
    those waiting writes the next batch, the others waiting with it."""

    def __init__(self, collection: Collection, in_flight: int = 1, service_name: str = ""):
        self.collection = collection
        self.service_name = service_name  # the label of its metric
        self.in_flight = in_flight
        self._lock = threading.Lock()
        self._waiting: list[_Pending] = []
        self._writers = 0
        self.batches = 0  # how many writes, and how many documents: what the tests look at
        self.documents = 0

    def insert(self, document: dict) -> None:
        pending = _Pending(document)
        with self._lock:
            if self._writers < self.in_flight:
                self._writers += 1
                pending.leads = True
            else:
                self._waiting.append(pending)
        if not pending.leads:
            pending.woken.wait()  # either written in another's batch, or our turn to write
        if pending.leads:
            self._write_batch(pending)
        if pending.error is not None:
            raise pending.error

    def _write_batch(self, first: _Pending) -> None:
        with self._lock:
            batch, self._waiting = [first, *self._waiting], []
        try:
            self._write(batch)
        finally:
            with self._lock:
                if self._waiting:
                    following = self._waiting.pop(0)
                    following.leads = True  # our place as a writer passes to it
                else:
                    following = None
                    self._writers -= 1
            for pending in batch[1:]:
                pending.woken.set()
            if following is not None:
                following.woken.set()

    def _write(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.documents += len(batch)
        metrics.grouped_insert(self.service_name, self.collection.name)
        try:
            if len(batch) == 1:
                self.collection.insert_one(batch[0].document)
            else:
                self.collection.insert_many([p.document for p in batch], ordered=False)
        except BulkWriteError as exc:
            _hand_out(batch, exc)
        except Exception as exc:  # the whole write failed: every caller hears of it
            for pending in batch:
                pending.error = exc


def failures_by_position(exc: BulkWriteError) -> tuple[dict[int, WriteError], bool]:
    """What a partly failed unordered bulk write (insert_many, bulk_write) did not do: each
    failed request's error by its position (DuplicateKeyError for a duplicate key), and
    whether the write concern failed too (then no request is known to be durable). The one
    reader of such a failure: the group inserter and the store's batch writes use it."""
    details = exc.details or {}
    failures = {}
    for error in details.get("writeErrors", []):
        cls = DuplicateKeyError if error.get("code") == DUPLICATE_KEY else WriteError
        failures[error["index"]] = cls(error.get("errmsg", "write error"), error.get("code"),
                                       error)
    return failures, bool(details.get("writeConcernErrors"))


def _hand_out(batch: list[_Pending], exc: BulkWriteError) -> None:
    """Give each document of a partly failed insert_many its own outcome."""
    failures, concern_failed = failures_by_position(exc)
    for position, error in failures.items():
        batch[position].error = error
    if concern_failed:
        for pending in batch:
            pending.error = pending.error or exc
