"""Events travel inside the document whose change causes them, and a relay publishes them.

A service that changes an aggregate and must tell others about it writes both at once, in
one single-document write (atomic in every MongoDB-wire store, with no transaction):

    db.plans.insert_one(with_events(plan, [lessons_assigned]))
    db.certificates.update_one(which, set_events({"$set": {...}}, [certificate_revoked]))

The events sit in the document's `_outbox` field, which holds only the last write's events.
The relay tails the service database's change stream, keeps the changes that wrote an
`_outbox`, publishes their events to `<service>.events` with publisher confirms (mandatory
when the event has subscribers; a read's events sent together, with one wait for their
confirms: hocvu/confirmed.py), and saves its resume token only after the broker confirmed
them. A crash between the confirm and the save publishes a few events again: consumers are
idempotent (natural keys). Nothing polls a backlog: the relay reads each change once, in
commit order, so an aggregate's events leave in the order they were written.

One instance of a service relays at a time, under a lease it renews in `relay_state`; the
others stand by and take over, from the saved token, when the lease runs out.
Before its first publish the relay declares the queues of every known subscriber
(hocvu.contracts.SUBSCRIBERS), so an event waits in a durable queue for a consumer that has
not started yet. If the broker still cannot route one (someone deleted a queue), the relay
retries it with backoff and does not move past it.
"""
import logging
import time
import uuid
from datetime import datetime, timedelta

from nameko.standalone.events import get_event_exchange
from pymongo.errors import DuplicateKeyError

from hocvu import backoff, contracts, metrics
from hocvu.background import WakeableLoop
from hocvu.clock import utcnow
from hocvu.confirmed import ConfirmedBatches, Unroutable
from hocvu.leases import OwnerLease
from hocvu.topology import known_subscriber_queues

log = logging.getLogger(__name__)

OUTBOX_FIELD = "_outbox"
STATE_COLLECTION = "relay_state"
_STATE_ID = "relay"
LEGACY_OUTBOX = "outbox"  # where releases before the change-stream relay kept events

# only the changes that carry events reach the relay (the store filters the rest)
CHANGES_WITH_EVENTS = [{"$match": {"$or": [
    {"operationType": {"$in": ["insert", "replace"]},
     f"fullDocument.{OUTBOX_FIELD}": {"$exists": True}},
    {"operationType": "update",
     f"updateDescription.updatedFields.{OUTBOX_FIELD}": {"$exists": True}},
]}}]


def with_events(document: dict, envelopes: list[dict]) -> dict:
    """`document`, carrying the events its insertion causes."""
    return {**document, OUTBOX_FIELD: list(envelopes)} if envelopes else document


def set_events(update: dict, envelopes: list[dict]) -> dict:
    """`update`, also recording the events it causes (replacing the previous write's)."""
    if not envelopes:
        return update
    return {**update, "$set": {**update.get("$set", {}), OUTBOX_FIELD: list(envelopes)}}


def events_of(change: dict) -> list[dict]:
    """The envelopes a change stream event wrote."""
    if change.get("operationType") == "update":
        return list(change["updateDescription"]["updatedFields"].get(OUTBOX_FIELD) or [])
    return list((change.get("fullDocument") or {}).get(OUTBOX_FIELD) or [])


class ChangeStreamRelay(WakeableLoop):
    def __init__(self, db, service_name: str, config: dict):
        super().__init__()
        self.db = db
        self.state = db[STATE_COLLECTION]
        self.service_name = service_name
        self.name = f"{service_name}.outbox_relay"
        self.owner = f"{service_name}-{uuid.uuid4().hex[:12]}"
        self.exchange = get_event_exchange(service_name, config)
        self.publisher = ConfirmedBatches(
            config["AMQP_URI"], self.exchange,
            declare=[self.exchange, *known_subscriber_queues(service_name, config)])
        self.batch_size = int(config.get("OUTBOX_BATCH_SIZE", 200))
        # how long one read of the stream waits for changes: the relay's latency when idle,
        # and its cost to the store (one short read per interval)
        self.await_ms = int(float(config.get("OUTBOX_AWAIT_SECONDS", 0.1)) * 1000)
        lease = timedelta(seconds=float(config.get("OUTBOX_LEASE_SECONDS", 15)))
        # the field names are those of every release since the relay began: instances of the
        # old and the new release share one lease during a rolling upgrade
        self.ownership = OwnerLease(self.state, _STATE_ID, lease, owner=self.owner,
                                    until_field="lease_until")
        self.renew_every = lease.total_seconds() / 3
        self.poll_seconds = self.renew_every  # a standby's look at the lease
        self.retry_seconds = 1.0
        self.max_backoff_seconds = float(config.get("OUTBOX_MAX_BACKOFF_SECONDS", 60))
        self.published = 0
        self.last_lag_seconds = None

    # -- the starting point ------------------------------------------------------------
    def mark_start(self) -> None:
        """On a database's first start, remember where its history begins, before anything
        writes events (the service's `prepare` may), so that none is missed."""
        if self.state.find_one({"_id": _STATE_ID}, projection={"_id": 1}):
            return
        with self.db.watch(CHANGES_WITH_EVENTS, max_await_time_ms=1) as stream:
            stream.try_next()
            token = stream.resume_token
        try:
            self.state.insert_one({"_id": _STATE_ID, "resume_token": token,
                                   "owner": None, "lease_until": utcnow()})
        except DuplicateKeyError:
            pass  # another instance of the service marked it first

    # -- the loop ----------------------------------------------------------------------
    def start(self, spawn, service_name: str | None = None) -> None:
        super().start(spawn, service_name)
        self.wake()  # the first look at the lease now, not a poll interval after the start

    def run_once(self) -> bool:
        if self.ownership.hold():
            self._relay_while_owner()
        return False

    def failed(self) -> None:
        # the store or the broker is away: the events stay in their documents and the saved
        # token says where to resume
        metrics.relay_failed(self.service_name)

    def _publish_legacy_outbox(self) -> None:
        """Events an earlier release left pending in its `outbox` collection go out first,
        in their commit order (read once: the collection gets no new events)."""
        legacy = self.db[LEGACY_OUTBOX]
        for doc in legacy.find({"status": "pending"}).sort([("created_at", 1), ("seq", 1)]):
            self._publish([doc["payload"]])
            legacy.update_one({"_id": doc["_id"]}, {"$set": {"status": "sent",
                                                             "sent_at": utcnow()}})

    def _relay_while_owner(self) -> None:
        if LEGACY_OUTBOX in self.db.list_collection_names():
            self._publish_legacy_outbox()
        token = self.state.find_one({"_id": _STATE_ID})["resume_token"]
        renewed = time.monotonic()
        with self.db.watch(CHANGES_WITH_EVENTS, resume_after=token,
                           max_await_time_ms=self.await_ms, batch_size=self.batch_size) as stream:
            while not self.stopping:
                changes = self._read_batch(stream)
                self._publish([envelope for change in changes
                               for envelope in events_of(change)])
                due = time.monotonic() - renewed >= self.renew_every
                metrics.relay_read(self.service_name, bool(changes))
                if changes or due:
                    # only after the broker confirmed what was read: a crash before this
                    # publishes those events again, never skips them
                    if not self.ownership.renew(resume_token=stream.resume_token):
                        log.warning("%s: lost the relay lease; standing by", self.name)
                        return
                    renewed = time.monotonic()

    def _read_batch(self, stream) -> list[dict]:
        changes = []
        while len(changes) < self.batch_size:
            change = stream.try_next()
            if change is None:
                break
            changes.append(change)
        return changes

    def _publish(self, envelopes: list[dict]) -> None:
        """Publish a read's events in order, with one wait for their confirms. An event the
        broker routes nowhere is published again, with those after it, after a backoff:
        the relay never moves past it (the events behind it wait, in order)."""
        attempts = 0
        while envelopes:
            try:
                self.publisher.publish(envelopes, _routing_key, self._properties)
                break
            except Unroutable as exc:
                # those before it went out; it and the rest go again, in order
                self._published(envelopes[:exc.position])
                envelopes = envelopes[exc.position:]
                attempts += 1
                delay = backoff.exponential(attempts, self.max_backoff_seconds, first=2)
                log.warning("no queue is bound for %s event %s; retrying in %ss",
                            envelopes[0]["event_type"], envelopes[0]["event_id"], delay)
                self.pause(delay)
                if self.stopping:
                    raise
        self._published(envelopes)

    def _properties(self, envelope: dict) -> dict:
        # mandatory when the event has subscribers: a message routed nowhere comes back
        return {"mandatory": bool(contracts.SUBSCRIBERS.get(envelope["event_type"])),
                "message_id": envelope["event_id"], "type": envelope["event_type"],
                "app_id": self.service_name}

    def _published(self, envelopes: list[dict]) -> None:
        for envelope in envelopes:
            self.published += 1
            self.last_lag_seconds = _lag_seconds(envelope)
            metrics.event_published(self.service_name, envelope["event_type"],
                                    self.last_lag_seconds)

    def stop(self, wait: bool = True) -> None:
        super().stop(wait)
        self.ownership.let_go()
        self.publisher.close()


def _routing_key(envelope: dict) -> str:
    return envelope["event_type"]


def _lag_seconds(envelope: dict) -> float | None:
    """From the event's commit (its occurred_at) to the broker's confirm."""
    try:
        occurred = datetime.fromisoformat(envelope["occurred_at"].replace("Z", "+00:00"))
    except (KeyError, AttributeError, ValueError):
        return None
    return (utcnow() - occurred).total_seconds()


def relay_gauges(relay: ChangeStreamRelay):
    """hocvu_outbox_relay_leader, read at each scrape (hocvu.metrics.on_scrape): 1 when this
    instance holds the relay's lease. Summed over a service's instances it is 1; 0 for
    minutes means nobody publishes that service's events."""
    state = relay.state.find_one({"_id": _STATE_ID}, projection={"owner": 1, "lease_until": 1})
    leading = bool(state and state.get("owner") == relay.owner
                   and metrics.seconds_since(state["lease_until"]) < 0)
    yield metrics.gauge("hocvu_outbox_relay_leader",
                        "1 when this instance publishes its service's events (holds the lease).",
                        relay.service_name, int(leading))
