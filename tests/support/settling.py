"""Waiting until what a test published has been handled, and what the handlers wrote has
passed the service's relay, before counting effects: a count taken at the first answer
passes a duplicate that comes after it."""
import pymongo
from prometheus_client import REGISTRY

from hocvu.outbox import CHANGES_WITH_EVENTS
from tests.support.waiting import wait_for

# a delivery is settled once acknowledged: handled, found done already, or set aside
SETTLED = ("ok", "duplicate", "dead_lettered")


def deliveries_settled(service: str, event_type: str) -> int:
    """Deliveries of `event_type` that `service`'s consumers in this process settled so far
    (hocvu_events_consumed_total)."""
    return int(sum(REGISTRY.get_sample_value("hocvu_events_consumed_total", {
        "service": service, "event_type": event_type, "outcome": outcome}) or 0
        for outcome in SETTLED))


def wait_until_handled(service: str, event_type: str, before: int, deliveries: int,
                       timeout: float = 30) -> None:
    """Until `deliveries` more deliveries than `before` are settled."""
    wait_for(lambda: deliveries_settled(service, event_type) - before >= deliveries,
             timeout=timeout, what=f"{deliveries} {event_type} deliveries handled by {service}")


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


def wait_until_relayed(config: dict, timeout: float = 30) -> None:
    """Until the relay of the service run with `config` has published everything written."""
    client = pymongo.MongoClient(config["MONGO_URI"], serverSelectionTimeoutMS=5000)
    try:
        db = client[config["MONGO_DATABASE"]]
        # a relay that has confirmed nothing yet has saved no position: not caught up
        wait_for(lambda: db.relay_state.find_one({"_id": "relay", "resume_token": {"$exists": True}})
                 and relay_behind(db) == 0, timeout=timeout, interval=0.2,
                 what=f"{config['MONGO_DATABASE']}'s relay caught up")
    finally:
        client.close()
