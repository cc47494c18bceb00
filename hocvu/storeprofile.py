"""What the platform does differently on the embedded store, kept in one place.

STORE_PROFILE=mongodb (the default, for MongoDB deployments) keeps the normal behaviour:
retryable writes, TTL indexes for data that expires, findAndModify for counters.
STORE_PROFILE=embedded (SecantusDB, what `make run`, the tests and the benchmark use) works
around what SecantusDB does slowly (docs/performance.md):
- retryable writes make it about 30 times slower: they are off;
- its TTL sweeper reads every document of such a collection each minute under the store's
  lock: expiry is an hourly delete through an ordinary index instead (hocvu.retention);
- findAndModify on an existing document scans the whole collection: a counter is a read
  followed by an update conditional on the value read.
"""
from dataclasses import dataclass
from datetime import timedelta

from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from hocvu.retention import HourlyPurge, RetentionRule

MONGODB, EMBEDDED = "mongodb", "embedded"


@dataclass
class StoreProfile:
    name: str = MONGODB

    @classmethod
    def from_config(cls, config: dict) -> "StoreProfile":
        name = str(config.get("STORE_PROFILE") or MONGODB).lower()
        if name not in (MONGODB, EMBEDDED):
            raise ValueError(f"STORE_PROFILE must be {MONGODB} or {EMBEDDED}, not {name!r}")
        return cls(name)

    @property
    def embedded(self) -> bool:
        return self.name == EMBEDDED

    def client_options(self) -> dict:
        return {"retryWrites": False} if self.embedded else {}

    def expire(self, collection: Collection, field: str, keep: timedelta,
               purge: HourlyPurge) -> None:
        """Forget documents once `field` (a datetime) is older than `keep`."""
        if self.embedded:
            _drop_ttl_index(collection, field)
            collection.create_index(field)
            purge.add(RetentionRule(collection, keep=keep,
                                    expired=lambda cutoff: {field: {"$lt": cutoff}}))
        else:
            _drop_plain_index(collection, field)
            collection.create_index(field, expireAfterSeconds=int(keep.total_seconds()))

    def next_value(self, counters: Collection, counter_id: str, count: int = 1) -> int:
        """Add `count` to a counter (created at 0) and return its new value: the values from
        new value - count + 1 to the new value are the caller's alone."""
        if self.embedded:
            return _next_value_without_find_and_modify(counters, counter_id, count)
        return counters.find_one_and_update({"_id": counter_id}, {"$inc": {"value": count}},
                                            upsert=True,
                                            return_document=ReturnDocument.AFTER)["value"]


def _next_value_without_find_and_modify(counters: Collection, counter_id: str,
                                        count: int) -> int:
    """Read the counter, then add `count` only if nobody did since: the values after the one
    we read are then ours alone. Concurrent callers retry instead of sharing a value."""
    for _ in range(100):
        current = counters.find_one({"_id": counter_id})
        if current is None:
            try:
                counters.insert_one({"_id": counter_id, "value": count})
                return count
            except DuplicateKeyError:
                continue
        taken = counters.update_one({"_id": counter_id, "value": current["value"]},
                                    {"$inc": {"value": count}})
        if taken.modified_count:
            return current["value"] + count
    raise RuntimeError(f"counter {counter_id}: changed by others 100 times in a row")


def _index_named(collection: Collection, field: str) -> dict | None:
    return collection.index_information().get(f"{field}_1")


def _drop_ttl_index(collection: Collection, field: str) -> None:
    index = _index_named(collection, field)
    if index and "expireAfterSeconds" in index:
        collection.drop_index(f"{field}_1")


def _drop_plain_index(collection: Collection, field: str) -> None:
    index = _index_named(collection, field)
    if index and "expireAfterSeconds" not in index:
        collection.drop_index(f"{field}_1")
