"""Each service's MongoDB database, and how it keeps rule 1 of the brief without transactions.

A service declares `store = ServiceStore(prepare=...)`; its workers get a `Store` whose `db`
is the service's own database. Every state change is one single-document write, atomic in
any MongoDB-wire store; the events it causes travel inside that document
(hocvu.outbox.with_events / set_events) and the service's relay publishes them.

Consumers are idempotent by natural keys instead of an inbox: a plan's `_id` is its
enrollment's, a message's is what it tells, and so on. `insert_once` answers False when the
key exists, which for a redelivered event means "already done". Where a service truly needs
two documents to agree, its code says why the moment between the two writes is harmless.
"""
import logging
import time
from datetime import timedelta
from functools import partial
from typing import Callable, Iterator

from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, CollectionInvalid, DuplicateKeyError

from hocvu import contracts, metrics, storewatch
from hocvu.groupwrite import GroupInserter, failures_by_position
from hocvu.outbox import OUTBOX_FIELD, STATE_COLLECTION, ChangeStreamRelay, relay_gauges
from hocvu.retention import HourlyPurge
from hocvu.storeprofile import StoreProfile

log = logging.getLogger(__name__)


class AlreadyProcessed(Exception):
    """A handler found that this event's effect already happened: the delivery is a duplicate
    (acknowledged, not retried)."""


def insert_once(collection: Collection, document: dict) -> bool:
    """Insert `document`; False if a document with its natural key exists already."""
    try:
        collection.insert_one(document)
    except DuplicateKeyError:
        return False
    return True


def insert_many_once(collection: Collection, documents: list[dict]) -> set[int]:
    """Insert `documents` in one unordered write; return the positions of those whose
    natural key exists already (each "already done"). Any other failure raises."""
    if not documents:
        return set()
    try:
        collection.insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        return _duplicates_only(exc)
    return set()


# _ids asked for in one `$in`: the embedded store checks each document it finds against the
# whole list, so a `$in` costs it the square of what it finds (50 ids found: 3.7 ms; 100:
# 11 ms; 1,000: 0.9 s, docs/performance.md "The harness's own reads")
IDS_AT_ONCE = 50


def find_by_ids(collection: Collection, ids: list, projection: dict | None = None,
                at_once: int = IDS_AT_ONCE) -> Iterator[dict]:
    """The documents of these _ids, in the order of `ids` (those absent left out), read
    `at_once` ids at a time."""
    for start in range(0, len(ids), at_once):
        page = ids[start:start + at_once]
        found = {document["_id"]: document
                 for document in collection.find({"_id": {"$in": page}}, projection)}
        yield from (found[key] for key in page if key in found)


def bulk_write_once(collection: Collection, requests: list) -> set[int]:
    """`bulk_write(requests, ordered=False)`; return the positions of the requests that met
    a duplicate key (an upsert that lost a race, or a conditional upsert whose document
    exists in another state): the caller decides what each means. Any other failure raises."""
    if not requests:
        return set()
    try:
        collection.bulk_write(requests, ordered=False)
    except BulkWriteError as exc:
        return _duplicates_only(exc)
    return set()


def _duplicates_only(exc: BulkWriteError) -> set[int]:
    """The positions that met a duplicate key; any other failure raises."""
    failures, concern_failed = failures_by_position(exc)
    if concern_failed or not all(isinstance(e, DuplicateKeyError) for e in failures.values()):
        raise exc
    return set(failures)


class WriteConflict(Exception):
    """Other writers kept changing a document between our read and our write."""


DELETE = object()  # what `decide` answers to delete the document


def read_modify_write(collection: Collection, doc_id, decide: Callable, attempts: int = 10):
    """Change one document from what it is now, without a transaction.

    `decide(current)` (current is None when there is no document) returns
    `(result, new_document)`: the new content (its `_id` aside), DELETE, or None to leave it
    as it is. The write is conditional on the document's version (`_v`), so a concurrent
    writer makes ours fail and `decide` runs again on what that writer left.
    """
    for _ in range(attempts):
        current = collection.find_one({"_id": doc_id})
        # the previous write's events stay out of what `decide` sees: copied into the new
        # document they would be published again
        result, new = decide(current and {key: value for key, value in current.items()
                                          if key not in (OUTBOX_FIELD, "_v")})
        if new is None:
            return result
        version = (current or {}).get("_v")
        same_version = {"_id": doc_id, "_v": version}
        if new is DELETE:
            if current is None or collection.delete_one(same_version).deleted_count:
                return result
            continue
        new = {key: value for key, value in new.items() if key != "_id"}
        new["_v"] = (version or 0) + 1
        if current is None:
            if insert_once(collection, {"_id": doc_id, **new}):
                return result
        elif collection.replace_one(same_version, new).matched_count:
            return result
    raise WriteConflict(f"{collection.name} {doc_id}: changed by others {attempts} times")


class Store:
    """What a worker sees: the service's database, and its relay."""

    def __init__(self, client: MongoClient, database_name: str, service_name: str,
                 relay: ChangeStreamRelay | None, profile: StoreProfile,
                 writes_in_flight: int = 1):
        self.client = client
        self.db = client[database_name]
        self.service_name = service_name
        self.relay = relay
        self.profile = profile
        # what is deleted by the hour: what STORE_PROFILE=embedded expires instead of with TTL
        # indexes, and the retention rules other parts of the service add
        self.housekeeping = HourlyPurge()
        self._inserters: dict[str, GroupInserter] = {}
        self._writes_in_flight = writes_in_flight

    def insert_together(self, collection_name: str, document: dict) -> None:
        """Insert `document`, in one write with those other workers insert into the same
        collection at the same moment (hocvu.groupwrite); DuplicateKeyError as insert_one."""
        inserter = self._inserters.get(collection_name)
        if inserter is None:
            inserter = self._inserters.setdefault(collection_name,
                                                  GroupInserter(self.db[collection_name],
                                                                self._writes_in_flight,
                                                                self.service_name))
        inserter.insert(document)

    def expire(self, collection_name: str, field: str, keep: timedelta) -> None:
        """Forget documents of `collection_name` once `field` is older than `keep`."""
        self.profile.expire(self.db[collection_name], field, keep, self.housekeeping)

    def next_value(self, counter_id: str, count: int = 1) -> int:
        """Add `count` to a counter; the new value (the last of the `count` values taken)."""
        return self.profile.next_value(self.db["counters"], counter_id, count)

    def ping(self) -> None:
        self.db.command("ping")

    def ensure_collections(self, *names: str) -> None:
        """Create collections before the service's workers write to them: SecantusDB can
        deadlock when another client creates a collection or an index at the same moment
        (seen when several services start together on an empty store)."""
        existing = set(self.db.list_collection_names())
        for name in names:
            if name not in existing:
                try:
                    self.db.create_collection(name)
                except CollectionInvalid:
                    pass  # another instance created it first


class ServiceStore(DependencyProvider):
    """Provides a `Store` on the service's own database and runs its relay.

    Config: MONGO_URI, MONGO_DATABASE, STORE_PROFILE (hocvu.storeprofile), the relay's
    OUTBOX_* settings and GROUP_WRITES_IN_FLIGHT (hocvu.groupwrite). `prepare(store)` runs once
    as the container sets up, before any entrypoint starts: indexes, seed data.
    """

    def __init__(self, prepare: Callable[[Store], None] | None = None, **kwargs):
        self.prepare = prepare
        self.store: Store | None = None
        super().__init__(**kwargs)

    def setup(self):
        config = self.container.config
        service_name = self.container.service_name
        profile = StoreProfile.from_config(config)
        client = MongoClient(
            config["MONGO_URI"],
            tz_aware=True,
            serverSelectionTimeoutMS=int(config.get("MONGO_TIMEOUT_MS", 5000)),
            appname=f"hocvu-{service_name}",
            event_listeners=storewatch.listeners(config, service_name),
            **profile.client_options(),
        )
        database = config.get("MONGO_DATABASE") or f"hocvu_{service_name}"
        # a service that publishes no event (reporting) reads no change stream
        relay = (ChangeStreamRelay(client[database], service_name, config)
                 if service_name in contracts.SOURCES.values() else None)
        self.store = Store(client, database, service_name, relay, profile,
                           int(config.get("GROUP_WRITES_IN_FLIGHT") or 1))
        # here, not at start: nameko starts every extension at once, and a consumer started
        # beside the store could write before the unique indexes exist (a redelivered event
        # then stored twice, and the index's build failing on it)
        if relay:
            self.store.ensure_collections(STATE_COLLECTION)
            relay.mark_start()
        if self.prepare:
            self.prepare(self.store)

    def start(self):
        relay = self.store.relay
        if relay:
            relay.start(self.container.spawn_managed_thread, self.container.service_name)
            metrics.on_scrape(self.store.service_name, "relay", partial(relay_gauges, relay))
        # the one hourly purge of the service: what the store profile expires and what other
        # providers add to `housekeeping` (an import's jobs, say), whenever they add it
        self._purge = self.container.spawn_managed_thread(
            self._purge_hourly, identifier=f"{self.store.service_name}.purge")

    def _purge_hourly(self):
        while True:
            try:
                self.store.housekeeping.run_when_due()
            except Exception:
                log.exception("the hourly purge failed; it runs again within the hour")
            time.sleep(60)

    def stop(self):
        metrics.forget(self.store.service_name, "relay")
        self._stop_purge()
        if self.store.relay:
            self.store.relay.stop()
        self.store.client.close()

    def kill(self):
        self._stop_purge()
        if self.store.relay:
            self.store.relay.stop(wait=False)

    def _stop_purge(self):
        if getattr(self, "_purge", None) is not None:
            self._purge.kill()  # it only sleeps between purges; one cut short runs next hour
            self._purge = None

    def get_dependency(self, worker_ctx) -> Store:
        return self.store


def drop_indexes_if_present(collection: Collection, *names: str) -> None:
    """Drop indexes an earlier release made and this one no longer wants (each index makes
    every write of the collection dearer)."""
    present = collection.index_information()
    for name in names:
        if name in present:
            collection.drop_index(name)


def dependency(container, attr_name: str):
    """The container's dependency provider declared as `attr_name` on the service class: how
    one provider is handed another (`PersonalDataKeys(store="store")`). nameko binds a copy
    of each declaration to each container, so a provider cannot keep the declaration it was
    given; the attribute's name finds the bound copy."""
    for provider in container.dependencies:
        if provider.attr_name == attr_name:
            return provider
    raise ConfigurationError(f"{container.service_name} declares no dependency {attr_name!r}")
