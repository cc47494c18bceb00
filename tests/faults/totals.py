"""Counting what the platform did, straight from each service's database, the SMS gateway
and the broker, to check that nothing was lost, duplicated or silently dropped."""
import time
from dataclasses import dataclass

import pika
import pymongo
import requests

from hocvu.outbox import CHANGES_WITH_EVENTS
from hocvu.topology import all_subscriber_queue_names, dead_letter_queue_name


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
    relay_behind: dict       # service -> events written but not yet past its relay
    dead_letters: dict        # queue -> count

    def delivered(self, template: str) -> int:
        return self.messages.get((template, "delivered"), 0)


def count(store_uris: dict, database_prefix: str, sms_gateway: str, amqp_uri: str) -> Totals:
    clients = {name: pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
               for name, uri in store_uris.items()}
    try:
        db = {name: client[f"{database_prefix}{name}"] for name, client in clients.items()}
        messages = {(row["_id"]["template"], row["_id"]["status"]): row["n"] for row in
                    db["notifications"].messages.aggregate([{"$group": {
                        "_id": {"template": "$template", "status": "$status"},
                        "n": {"$sum": 1}}}])}
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
    return Totals(**totals, sms_received=len(received),
                  sms_distinct_requests=len({m["request_id"] for m in received}),
                  sms_resends_deduplicated=stats.get("duplicates", 0),
                  dead_letters=dead_letter_counts(amqp_uri))


def relay_behind(db) -> int:
    """Changes with events that the service's relay has not yet confirmed: the stream from
    its saved resume token onwards (0 when it is caught up)."""
    state = db.relay_state.find_one({"_id": "relay"})
    if state is None:
        return 0
    with db.watch(CHANGES_WITH_EVENTS, resume_after=state["resume_token"],
                  max_await_time_ms=10) as stream:
        behind = 0
        while stream.try_next() is not None:
            behind += 1
        return behind


def dead_letter_counts(amqp_uri: str) -> dict:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    counts = {}
    try:
        for queue in all_subscriber_queue_names():
            name = dead_letter_queue_name(queue)
            channel = connection.channel()
            try:
                counts[name] = channel.queue_declare(name, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:
                counts[name] = 0  # never declared: its consumer never had to dead-letter
            finally:
                if channel.is_open:
                    channel.close()
    finally:
        connection.close()
    return counts


def wait_for_quiet(expected_learners: int, snapshot, timeout: float = 300) -> tuple[Totals, float]:
    """Poll until every learner is certified and told twice and nothing waits to be
    published; return the totals and how long it took."""
    started = time.monotonic()
    while True:
        totals = snapshot()
        done = (totals.completed_plans >= expected_learners
                and totals.certificates >= expected_learners
                and totals.delivered("enrollment_confirmed") >= expected_learners
                and totals.delivered("certificate_issued") >= expected_learners
                and not any(totals.relay_behind.values()))
        waited = time.monotonic() - started
        if done or waited > timeout:
            return totals, waited
        time.sleep(1)
