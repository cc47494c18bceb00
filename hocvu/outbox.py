"""The outbox relay: publishes the events that transactions stored, and marks them sent.

A transaction writes its events into the `outbox` collection (hocvu.store). The relay,
one green thread per service process, claims pending events in batches under a lease (so
several instances of a service never publish the same event at once, and a crashed
instance's claim runs out), publishes each with publisher confirms and the mandatory flag
to `<service>.events` with the event type as routing key, and marks it sent.

The relay wakes at once when its own process commits events, and polls every
OUTBOX_POLL_SECONDS for events that another instance, or a crashed process, left behind.
Before its first publish the relay declares the queues of every known subscriber
(hocvu.contracts.SUBSCRIBERS), so an event waits in a durable queue for a consumer that has
not started yet. Events with subscribers are published mandatory: if the broker still cannot
route one (someone deleted a queue), it stays pending and is retried with backoff.
"""
import logging
import threading
from datetime import timedelta

from nameko.amqp.publish import Publisher, UndeliverableMessage
from nameko.standalone.events import get_event_exchange
from pymongo import ASCENDING

from hocvu import contracts, metrics
from hocvu.background import WakeableLoop
from hocvu.clock import utcnow
from hocvu.leases import NEVER, claim_batch, release
from hocvu.retention import HourlyPurge, RetentionRule
from hocvu.topology import known_subscriber_queues

log = logging.getLogger(__name__)

PENDING, SENT = "pending", "sent"
_ORDER = [("created_at", ASCENDING), ("seq", ASCENDING)]
_seq_lock = threading.Lock()
_seq = 0


def _next_seq() -> int:
    # orders events committed in the same millisecond by one process
    global _seq
    with _seq_lock:
        _seq += 1
        return _seq


def aggregate_of(envelope: dict) -> str:
    """What the event is about, for ordering: its enrollment, else its course."""
    data = envelope["data"]
    return str(data.get("enrollment_id") or data.get("course_id") or envelope["event_id"])


def outbox_document(envelope: dict, service_name: str) -> dict:
    now = utcnow()
    return {
        "_id": envelope["event_id"],
        "event_type": envelope["event_type"],
        "aggregate_id": aggregate_of(envelope),
        "source": service_name,
        "payload": envelope,
        "status": PENDING,
        "created_at": now,
        "seq": _next_seq(),
        "attempts": 0,
        "next_attempt_at": now,
        "lease_until": NEVER,
    }


def prepare_outbox(db) -> None:
    outbox = db[OutboxRelay.COLLECTION]
    outbox.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    outbox.create_index([("aggregate_id", ASCENDING), ("status", ASCENDING)])
    # every write of an outbox document rewrites all its index entries, and the outbox is
    # written three times per event: these two cost more than they gave (docs/performance.md)
    drop_indexes_if_present(outbox, "lease_owner_1", "sent_at_1")


def drop_indexes_if_present(collection, *names: str) -> None:
    present = collection.index_information()
    for name in names:
        if name in present:
            collection.drop_index(name)


class OutboxRelay(WakeableLoop):
    COLLECTION = "outbox"

    def __init__(self, db, service_name: str, config: dict):
        super().__init__()
        self.name = f"{service_name}.outbox_relay"
        self.outbox = db[self.COLLECTION]
        self.service_name = service_name
        self.exchange = get_event_exchange(service_name, config)
        self.publisher = Publisher(
            config["AMQP_URI"], use_confirms=True,
            declare=[self.exchange, *known_subscriber_queues(service_name, config)])
        self.batch_size = int(config.get("OUTBOX_BATCH_SIZE", 200))
        self.poll_seconds = float(config.get("OUTBOX_POLL_SECONDS", 1.0))
        self.linger_seconds = float(config.get("OUTBOX_LINGER_SECONDS", 0.02))
        self.lease = timedelta(seconds=float(config.get("OUTBOX_LEASE_SECONDS", 15)))
        self.max_backoff_seconds = float(config.get("OUTBOX_MAX_BACKOFF_SECONDS", 60))
        # sent events are kept a while so operations can see what went out (and the benchmark
        # can time each hop); an event's next_attempt_at is never after its sending, so the
        # claim index finds the old ones
        self.housekeeping = HourlyPurge()
        self.housekeeping.add(RetentionRule(
            self.outbox,
            expired=lambda cutoff: {"status": SENT, "next_attempt_at": {"$lt": cutoff}},
            keep=timedelta(days=float(config.get("OUTBOX_RETENTION_DAYS", 7)))))

    def pending_count(self) -> int:
        return self.outbox.count_documents({"status": PENDING})

    def run_once(self) -> bool:
        self.housekeeping.run_when_due()
        return self.relay_due() == self.batch_size

    def relay_due(self) -> int:
        """Publish one batch of due events; return how many were claimed."""
        claimed = self._claim_batch()
        if not claimed:
            return 0
        blocked = self._aggregates_with_older_pending_events(claimed)
        sent, unroutable = [], []
        try:
            for doc in claimed:
                if doc["aggregate_id"] in blocked:
                    continue  # handed back below, to follow its aggregate's older event
                try:
                    self._publish(doc)
                    sent.append(doc["_id"])
                    metrics.event_published(self.service_name, doc["event_type"],
                                            metrics.seconds_since(doc["created_at"]))
                except UndeliverableMessage:
                    unroutable.append(doc)
                    blocked.add(doc["aggregate_id"])
        finally:
            self._settle(claimed, sent, unroutable, blocked)
        return len(claimed)

    def _aggregates_with_older_pending_events(self, claimed: list[dict]) -> set[str]:
        """Aggregates of this batch that have an older event still pending outside it (in
        another instance's batch, or waiting to be retried): their events must wait, so that
        each aggregate's events are published in the order they were committed."""
        first = {}
        for doc in claimed:
            first.setdefault(doc["aggregate_id"], (doc["created_at"], doc["seq"]))
        others = self.outbox.find(
            {"aggregate_id": {"$in": list(first)}, "status": PENDING,
             "_id": {"$nin": [doc["_id"] for doc in claimed]}},
            projection={"aggregate_id": 1, "created_at": 1, "seq": 1})
        return {doc["aggregate_id"] for doc in others
                if (doc["created_at"], doc["seq"]) < first[doc["aggregate_id"]]}

    def _claim_batch(self) -> list[dict]:
        due = {"status": PENDING, "next_attempt_at": {"$lte": utcnow()}}
        claimed = claim_batch(self.outbox, due, _ORDER, self.batch_size, self.lease)
        for doc in claimed:
            doc.setdefault("aggregate_id", doc["_id"])  # stored before aggregates were kept
        return claimed

    def _publish(self, doc: dict) -> None:
        envelope = doc["payload"]
        self.publisher.publish(
            envelope,
            exchange=self.exchange,
            routing_key=doc["event_type"],
            mandatory=bool(contracts.SUBSCRIBERS.get(doc["event_type"])),
            message_id=envelope["event_id"],
            type=doc["event_type"],
            app_id=self.service_name,
        )

    def _settle(self, claimed, sent_ids, unroutable, blocked) -> None:
        now = utcnow()
        if sent_ids:
            self.outbox.update_many(
                {"_id": {"$in": sent_ids}},
                {"$set": {"status": SENT, "sent_at": now}, "$unset": {"lease_owner": ""}})
        for doc in unroutable:
            attempts = doc["attempts"] + 1
            delay = min(2 ** attempts, self.max_backoff_seconds)
            log.warning("no queue is bound for %s event %s yet; retrying in %ss",
                        doc["event_type"], doc["_id"], delay)
            release(self.outbox, [doc["_id"]], {"$set": {
                "attempts": attempts, "last_error": "unroutable",
                "next_attempt_at": now + timedelta(seconds=delay)}})
        waiting = [d["_id"] for d in claimed
                   if d["aggregate_id"] in blocked and d["_id"] not in sent_ids
                   and d not in unroutable]
        # look again shortly: the older event is usually being published by another relay
        release(self.outbox, waiting, {"$set": {
            "next_attempt_at": now + timedelta(seconds=min(self.poll_seconds, 0.5))}})
        done = set(sent_ids) | {d["_id"] for d in unroutable} | set(waiting)
        # the broker failed mid-batch: hand the rest back at once, still in order
        release(self.outbox, [d["_id"] for d in claimed if d["_id"] not in done])


def backlog_gauges(outbox, service_name: str):
    """hocvu_outbox_pending and hocvu_outbox_oldest_pending_seconds, read at each scrape
    (hocvu.metrics.on_scrape): what was committed and not yet published, and for how long."""
    pending = outbox.count_documents({"status": PENDING})
    oldest = next(iter(outbox.find({"status": PENDING}, projection={"created_at": 1})
                       .sort(_ORDER).limit(1)), None)
    age = metrics.seconds_since(oldest["created_at"]) if oldest else 0.0
    yield metrics.gauge("hocvu_outbox_pending", "Events committed, not yet published.",
                        service_name, pending)
    yield metrics.gauge("hocvu_outbox_oldest_pending_seconds",
                        "Age of the oldest event committed and not yet published (0: none).",
                        service_name, max(age, 0.0))
