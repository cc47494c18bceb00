"""Each service's MongoDB database, and the unit of work that keeps rule 1 of the brief.

A service declares `store = ServiceStore(prepare=...)`. Its workers get a `Store` whose
`transact(work)` runs `work(tx)` in one MongoDB transaction: the documents the work
changes and the events it publishes (written to the `outbox` collection) commit together
or not at all. The outbox relay (hocvu.outbox) then publishes them to RabbitMQ.

`work` may run more than once: pymongo retries a transaction on a transient error (a
write conflict, a primary stepping down), so `work` must only touch the store through
`tx` and keep its side effects (HTTP calls, sending SMS) outside.
"""
import logging
from datetime import timedelta
from functools import partial
from typing import Callable, TypeVar

from nameko.extensions import DependencyProvider
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import CollectionInvalid, DuplicateKeyError

from hocvu import events, metrics
from hocvu.clock import utcnow
from hocvu.outbox import OutboxRelay, backlog_gauges, outbox_document, prepare_outbox
from hocvu.retention import RetentionRule

log = logging.getLogger(__name__)

T = TypeVar("T")

INBOX = "inbox"


class AlreadyProcessed(Exception):
    """This consumer already handled this event: the delivery is a duplicate."""


class SessionCollection:
    """A collection whose every operation runs inside the transaction's session."""

    def __init__(self, collection: Collection, session):
        self._collection = collection
        self._session = session

    def __getattr__(self, name):
        operation = getattr(self._collection, name)
        if not callable(operation):
            return operation

        def in_session(*args, **kwargs):
            return operation(*args, session=self._session, **kwargs)

        return in_session


class Transaction:
    def __init__(self, db, session, service_name: str):
        self._db = db
        self.session = session
        self._service_name = service_name
        self._outbox: list[dict] = []

    def __getitem__(self, collection_name: str) -> SessionCollection:
        return SessionCollection(self._db[collection_name], self.session)

    def publish(self, event_type: str, data: dict, correlation_id: str) -> dict:
        """Queue an event to be stored in the outbox when the transaction commits."""
        envelope = events.new_event(event_type, data, correlation_id)
        self._outbox.append(outbox_document(envelope, self._service_name))
        return envelope

    def claim_event(self, consumer: str, event: events.Event) -> None:
        """Record that `consumer` handles `event`; raise AlreadyProcessed if it did before."""
        key = f"{consumer}:{event.event_id}"
        try:
            # no look first: the unique _id answers in the same round trip (a duplicate key
            # aborts the transaction, which is what AlreadyProcessed does anyway)
            self[INBOX].insert_one({"_id": key, "event_type": event.event_type,
                                    "processed_at": utcnow()})
        except DuplicateKeyError:
            raise AlreadyProcessed(key) from None

    def _write_outbox(self) -> int:
        if self._outbox:
            self[OutboxRelay.COLLECTION].insert_many(self._outbox, ordered=True)
        return len(self._outbox)


class Store:
    """What a worker sees: the database, and transactions that carry an outbox."""

    def __init__(self, client: MongoClient, database_name: str, service_name: str,
                 relay: OutboxRelay | None):
        self.client = client
        self.db = client[database_name]
        self.service_name = service_name
        self.relay = relay

    def transact(self, work: Callable[[Transaction], T]) -> T:
        with self.client.start_session() as session:
            def attempt(session):
                tx = Transaction(self.db, session, self.service_name)
                result = work(tx)
                return result, tx._write_outbox()

            result, published = session.with_transaction(attempt)
        if published and self.relay:
            self.relay.wake()
        return result

    def ping(self) -> None:
        self.db.command("ping")

    def ensure_collections(self, *names: str) -> None:
        """Create the collections that transactions write to, before any transaction runs.

        A transaction that writes to a missing collection creates it inside the transaction:
        MongoDB before 4.4 refuses that, and SecantusDB can deadlock when another client
        creates a collection or an index at the same moment (seen when four services start
        together on an empty store).
        """
        existing = set(self.db.list_collection_names())
        for name in names:
            if name not in existing:
                try:
                    self.db.create_collection(name)
                except CollectionInvalid:
                    pass  # another instance created it first

    def ensure_inbox(self, retention: timedelta) -> None:
        """Index the inbox for its hourly purge (its unique key is its _id).

        A TTL index did this before; SecantusDB's sweeper scans the whole collection for it
        every minute (hocvu/retention.py), so it is replaced by a plain one."""
        inbox = self.db[INBOX]
        if inbox.index_information().get("processed_at_1", {}).get("expireAfterSeconds"):
            inbox.drop_index("processed_at_1")
        inbox.create_index("processed_at")
        if self.relay:
            self.relay.housekeeping.add(RetentionRule(
                inbox, expired=lambda cutoff: {"processed_at": {"$lt": cutoff}}, keep=retention))


class ServiceStore(DependencyProvider):
    """Provides a `Store` on the service's own database and runs its outbox relay.

    Config: MONGO_URI, MONGO_DATABASE, and the relay's OUTBOX_* settings.
    `prepare(store)` runs once at start: indexes, seed data.
    """

    def __init__(self, prepare: Callable[[Store], None] | None = None, **kwargs):
        self.prepare = prepare
        self.store: Store | None = None
        super().__init__(**kwargs)

    def setup(self):
        config = self.container.config
        service_name = self.container.service_name
        client = MongoClient(
            config["MONGO_URI"],
            tz_aware=True,
            serverSelectionTimeoutMS=int(config.get("MONGO_TIMEOUT_MS", 5000)),
            appname=f"hocvu-{service_name}",
        )
        database = config.get("MONGO_DATABASE") or f"hocvu_{service_name}"
        relay = OutboxRelay(client[database], service_name, config)
        self.store = Store(client, database, service_name, relay)

    def start(self):
        self.store.ensure_collections(OutboxRelay.COLLECTION, INBOX)
        prepare_outbox(self.store.db)
        self.store.ensure_inbox(retention=timedelta(
            days=float(self.container.config.get("INBOX_RETENTION_DAYS", 30))))
        if self.prepare:
            self.prepare(self.store)
        self.store.relay.start(self.container.spawn_managed_thread)
        metrics.on_scrape(self.store.service_name, "outbox", partial(
            backlog_gauges, self.store.db[OutboxRelay.COLLECTION], self.store.service_name))

    def stop(self):
        metrics.forget(self.store.service_name, "outbox")
        self.store.relay.stop()
        self.store.client.close()

    def kill(self):
        self.store.relay.stop(wait=False)

    def get_dependency(self, worker_ctx) -> Store:
        return self.store

