"""Inserts that arrive together are written together (a group commit).

While one write is on its way to the store, the documents other workers hand in wait; the
next write takes all of them at once, with `insert_many(ordered=False)`. A lone request
waits for nothing (there is no linger): under load the batches grow by themselves, up to the
number of workers writing at that moment. The embedded store charges each document of an
`insert_many` about a quarter to a third of what a lone `insert_one` costs
(docs/performance.md), so the busier the service, the cheaper each write.

Each caller gets its own document's outcome, as if it had inserted alone: nothing, or
DuplicateKeyError when its natural key exists, or the error that stopped the whole write.
Works with threads and with eventlet's green threads (nameko's), whose monkey-patched
`threading` makes these locks green.
"""
import threading
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

DUPLICATE_KEY = 11000


class _Pending:
    def __init__(self, document: dict):
        self.document = document
        self.error: BaseException | None = None
        self.leads = False  # this caller writes the next batch, its own document included
        self.woken = threading.Event()


class GroupInserter:
    """`insert(document)` for one collection, written together with whatever other callers
    hand in meanwhile. One writer at a time; when it is done, the first of those waiting
    writes the next batch."""

    def __init__(self, collection: Collection):
        self.collection = collection
        self._lock = threading.Lock()
        self._waiting: list[_Pending] = []
        self._writing = False
        self.batches = 0  # how many writes, and how many documents: what the tests look at
        self.documents = 0

    def insert(self, document: dict) -> None:
        pending = _Pending(document)
        with self._lock:
            self._waiting.append(pending)
            pending.leads = not self._writing
            self._writing = True
        if not pending.leads:
            pending.woken.wait()  # either written by another caller, or our turn to write
        if pending.leads:
            self._write_next_batch()
        if pending.error is not None:
            raise pending.error

    def _write_next_batch(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            self._write(batch)
        finally:
            with self._lock:
                following = self._waiting[0] if self._waiting else None
                if following is None:
                    self._writing = False
                else:
                    following.leads = True
            for pending in batch:
                if not pending.leads:
                    pending.woken.set()
            if following is not None:
                following.woken.set()

    def _write(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.documents += len(batch)
        try:
            if len(batch) == 1:
                self.collection.insert_one(batch[0].document)
            else:
                self.collection.insert_many([p.document for p in batch], ordered=False)
        except BulkWriteError as exc:
            _hand_out(batch, exc.details)
        except Exception as exc:  # the whole write failed: every caller hears of it
            for pending in batch:
                pending.error = exc


def _hand_out(batch: list[_Pending], details: dict[str, Any]) -> None:
    """Give each document of a partly failed insert_many its own outcome."""
    for error in details.get("writeErrors", []):
        pending = batch[error["index"]]
        cls = DuplicateKeyError if error.get("code") == DUPLICATE_KEY else WriteError
        pending.error = cls(error.get("errmsg", "write error"), error.get("code"), error)
    if details.get("writeConcernErrors"):
        failed = BulkWriteError(details)
        for pending in batch:
            pending.error = pending.error or failed
