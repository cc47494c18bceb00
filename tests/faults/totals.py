"""Counting what the platform did, straight from each service's database, the SMS gateway
and the broker, to check that nothing was lost, duplicated or silently dropped."""
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import pika
import pymongo
import requests
from anyascii import anyascii

from hocvu_tools.devstack.stack import SERVICES
from hocvu.topology import all_subscriber_queue_names, dead_letter_queue_name, retry_delays
from services.notifications import repository
from tests.faults.journeys import progress
from tests.support.settling import relay_behind

TAP = "fault-suite.every-event"  # a queue bound to '#' on every events exchange


@dataclass
class Totals:
    enrollments: int
    plans: int
    completed_plans: int
    certificates: int
    certified_enrollments: int
    messages: dict            # (template, status) -> count
    learner_templates_more_than_once: int
    sms_received: int
    sms_distinct_requests: int
    sms_resends_deduplicated: int
    sms_by_phone_and_template: Counter  # (last 9 digits, template) -> SMS at the gateway
    relay_behind: dict       # service -> events written but not yet past its relay
    dead_letters: dict        # queue -> count
    waiting: dict             # subscriber or retry queue -> messages in it

    def delivered(self, template: str) -> int:
        return self.messages.get((template, "delivered"), 0)

    def outstanding(self) -> str:
        return (f"plans completed {self.completed_plans}, certificates {self.certificates}, "
                f"SMS {sorted(self.messages.items())}, events not yet relayed "
                f"{sum(self.relay_behind.values())}, messages in queues "
                f"{ {q: n for q, n in self.waiting.items() if n} }")

    def figures(self) -> tuple:
        """What must no longer change once the platform is quiet."""
        return (self.enrollments, self.plans, self.completed_plans, self.certificates,
                sorted(self.messages.items()), self.sms_received, self.sms_resends_deduplicated,
                sorted(self.dead_letters.items()))


def count(store_uris: dict, database_prefix: str, sms_gateway: str, amqp_uri: str) -> Totals:
    clients = {name: pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
               for name, uri in store_uris.items()}
    try:
        db = {name: client[f"{database_prefix}{name}"] for name, client in clients.items()}
        # each message as it is now: its status is derived from its outcomes
        messages = Counter(
            (message["template"], message["status"]) for message in repository.views(
                db["notifications"], list(db["notifications"].messages.find())))
        repeated = list(db["notifications"].messages.aggregate([
            {"$group": {"_id": {"learner": "$learner_id", "template": "$template"},
                        "n": {"$sum": 1}}},
            {"$match": {"n": {"$gt": 1}}}]))
        behind = {name: relay_behind(d) for name, d in db.items()}
        totals = dict(
            enrollments=db["enrollment"].enrollments.count_documents({}),
            plans=db["lessons"].plans.count_documents({}),
            completed_plans=db["lessons"].plans.count_documents({"completed_at": {"$ne": None}}),
            certificates=db["certificates"].certificates.count_documents({}),
            certified_enrollments=len(db["certificates"].certificates.distinct("enrollment_id")),
            messages=messages, learner_templates_more_than_once=len(repeated),
            relay_behind=behind)
    finally:
        for client in clients.values():
            client.close()
    received = requests.get(f"{sms_gateway}/v1/messages", params={"limit": 1_000_000},
                            timeout=30).json()["messages"]
    stats = requests.get(f"{sms_gateway}/v1/stats", timeout=10).json()
    dead_letters, waiting = queue_depths(amqp_uri)
    return Totals(**totals, sms_received=len(received),
                  sms_distinct_requests=len({m["request_id"] for m in received}),
                  sms_resends_deduplicated=stats.get("duplicates", 0),
                  sms_by_phone_and_template=Counter(
                      (phone_key(m["to"]), template_of(m["text"])) for m in received),
                  dead_letters=dead_letters, waiting=waiting)


def phone_key(phone: str) -> str:
    """The subscriber number without its country or trunk prefix: 0912..., +84912... and
    84912... are one phone."""
    return "".join(ch for ch in phone if ch.isdigit())[-9:]


def template_of(text: str) -> str:
    """Which template an SMS at the gateway was written from, by its words (accented or not),
    not by anything the platform recorded: a message the platform forgot it sent counts."""
    plain = anyascii(text).lower()
    if "ma chung chi" in plain:
        return "certificate_issued"
    if "chuc ban hoc tot" in plain:
        return "enrollment_confirmed"
    return "other"


def queue_depths(amqp_uri: str) -> tuple[dict, dict]:
    """Messages in each dead-letter queue, and in each subscriber and retry queue."""
    retry_queues = [f"hocvu.retry.{seconds}s" for seconds in retry_delays({})]
    subscriber_queues = all_subscriber_queue_names()
    depths = message_counts(amqp_uri, [*map(dead_letter_queue_name, subscriber_queues),
                                       *subscriber_queues, *retry_queues])
    dead = {q: n for q, n in depths.items() if q.endswith(".dlq")}
    return dead, {q: n for q, n in depths.items() if q not in dead}


def message_counts(amqp_uri: str, queues: list[str]) -> dict:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    counts = {}
    try:
        for name in queues:
            channel = connection.channel()
            try:
                counts[name] = channel.queue_declare(name, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:
                counts[name] = 0  # never declared: nobody had to put anything there
            finally:
                if channel.is_open:
                    channel.close()
    finally:
        connection.close()
    return counts


def assert_every_journey_whole(totals: Totals, published, journeys, learners: int,
                               expected_dead_letters: dict | None = None) -> None:
    """What the fault suite and the cluster test check once the platform is quiet: every
    journey's enrollment, plan, completion, certificate and both SMS exactly once, every
    event published, nothing left behind, and no dead letter but those expected."""
    enrollment_ids = {j.enrollment_id for j in journeys}
    assert len(journeys) == learners and len(enrollment_ids) == learners
    assert totals.enrollments == learners
    assert totals.plans == learners and totals.completed_plans == learners
    assert totals.certificates == learners and totals.certified_enrollments == learners
    assert totals.delivered("enrollment_confirmed") == learners
    assert totals.delivered("certificate_issued") == learners
    assert sum(totals.messages.values()) == 2 * learners
    assert totals.learner_templates_more_than_once == 0
    # what the gateway received, keyed by the learner's phone and the words of the SMS, not
    # by any id the platform chose: each learner got each SMS exactly once, and nobody else
    # got one
    learners_per_phone = Counter(phone_key(j.phone) for j in journeys)
    assert totals.sms_by_phone_and_template == Counter({
        (phone, template): n for phone, n in learners_per_phone.items()
        for template in ("enrollment_confirmed", "certificate_issued")})
    assert totals.sms_received == 2 * learners
    # every event of every journey was published (duplicate copies are allowed)
    for event_type in ("learner_enrolled", "lessons_assigned", "course_completed",
                       "certificate_issued"):
        assert published.enrollments_with(event_type) == enrollment_ids, event_type
    assert not any(totals.relay_behind.values()), totals.relay_behind
    assert not any(totals.waiting.values()), totals.waiting
    expected = {queue: 0 for queue in totals.dead_letters}
    expected.update(expected_dead_letters or {})
    assert totals.dead_letters == expected


def wait_for_quiet(expected_learners: int, snapshot, timeout: float = 420,
                   settle_seconds: float = 5) -> tuple[Totals, float]:
    """Poll until every learner is certified and told twice, nothing waits to be published,
    no message waits in a subscriber or retry queue, and then nothing changes for
    `settle_seconds` (a late duplicate, a retry coming back, would show by then); return
    the totals and how long it took."""
    started = time.monotonic()
    stable_since, previous = None, None
    told = started
    while True:
        totals = snapshot()
        if time.monotonic() - told >= 10:
            told = time.monotonic()
            progress(f"not quiet yet after {told - started:.0f} s: {totals.outstanding()}")
        done = (totals.completed_plans >= expected_learners
                and totals.certificates >= expected_learners
                and totals.delivered("enrollment_confirmed") >= expected_learners
                and totals.delivered("certificate_issued") >= expected_learners
                and not any(totals.relay_behind.values())
                and not any(totals.waiting.values()))
        now = time.monotonic()
        figures = totals.figures()
        if not done:
            stable_since = None
        elif stable_since is None or figures != previous:
            stable_since = now  # done, and from now on nothing may change
        elif now - stable_since >= settle_seconds:
            return totals, now - started
        previous = figures
        if now - started > timeout:
            progress(f"not quiet after {timeout:.0f} s: {totals}")
            return totals, now - started
        time.sleep(1)


class EventTap:
    """A durable queue bound to '#' on every service's events exchange, declared before the
    load starts: afterwards it holds a copy of every event the platform published, however
    often each was published."""

    def __init__(self, amqp_uri: str, queue_arguments: dict | None = None):
        self.amqp_uri = amqp_uri
        # {"x-queue-type": "quorum"} on a cluster, so that the tap outlives a node
        self.queue_arguments = queue_arguments or {}

    def bind(self) -> None:
        with pika.BlockingConnection(pika.URLParameters(self.amqp_uri)) as connection:
            channel = connection.channel()
            channel.queue_declare(TAP, durable=True, arguments=self.queue_arguments)
            for service in SERVICES:
                channel.exchange_declare(f"{service}.events", "topic", durable=True)
                channel.queue_bind(TAP, f"{service}.events", "#")

    def drain(self) -> "PublishedEvents":
        """Every copy the relays published (emptied as read)."""
        published = PublishedEvents()
        with pika.BlockingConnection(pika.URLParameters(self.amqp_uri)) as connection:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=1000)
            for method, properties, body in channel.consume(TAP, auto_ack=True,
                                                            inactivity_timeout=2):
                if method is None:
                    break
                if properties.app_id not in SERVICES:  # a malformed message a test published
                    published.foreign += 1
                    continue
                envelope = json.loads(body)
                event_id = envelope["event_id"]
                published.copies[event_id] += 1
                published.kind[event_id] = (envelope["event_type"],
                                            envelope["data"].get("enrollment_id"))
            channel.cancel()
        return published


@dataclass
class PublishedEvents:
    copies: Counter = field(default_factory=Counter)  # event_id -> copies published
    kind: dict = field(default_factory=dict)          # event_id -> (event_type, enrollment_id)
    foreign: int = 0

    def enrollments_with(self, event_type: str) -> set:
        return {enrollment for kind, enrollment in self.kind.values() if kind == event_type}

    def describe(self) -> str:
        repeated = sum(1 for n in self.copies.values() if n > 1)
        by_type = Counter(kind for kind, _ in self.kind.values())
        return (f"{len(self.copies)} events published as {sum(self.copies.values())} copies "
                f"({repeated} published more than once, at most {max(self.copies.values())} "
                f"times); by type: "
                + ", ".join(f"{kind} {n}" for kind, n in sorted(by_type.items())))
