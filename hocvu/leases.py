"""Claiming work stored in a collection, so that several processes can share it.

The outbox relay and the SMS dispatcher both keep their work as documents in the store.
A process claims a batch by stamping it with a lease; while the lease runs no other
process takes those documents, and if the process dies the lease simply runs out.
Documents need a `lease_until` field (datetime) from the start; NEVER is "free now".
"""
import uuid
from datetime import datetime, timedelta, timezone

from pymongo.collection import Collection

from hocvu.clock import utcnow

NEVER = datetime(1970, 1, 1, tzinfo=timezone.utc)


def claim_batch(collection: Collection, due: dict, order: list, limit: int,
                lease: timedelta) -> list[dict]:
    """Claim up to `limit` documents matching `due` whose lease ran out; return them in order."""
    now = utcnow()
    claimable = {**due, "lease_until": {"$lte": now}}
    candidates = list(collection.find(claimable).sort(order).limit(limit))
    if not candidates:
        return []
    ids = [doc["_id"] for doc in candidates]
    stamp = {"lease_owner": uuid.uuid4().hex, "lease_until": now + lease}
    claimed = collection.update_many({"_id": {"$in": ids}, **claimable}, {"$set": stamp})
    if claimed.modified_count == len(ids):
        # nobody took any of them in between, so they are as read: no second read needed
        # (each round trip to the store counts: it is the platform's bottleneck)
        return [{**doc, **stamp} for doc in candidates]
    return list(collection.find({"_id": {"$in": ids}, "lease_owner": stamp["lease_owner"]})
                .sort(order))


def release(collection: Collection, ids: list, update: dict | None = None) -> None:
    """Give claimed documents back at once, optionally changing them as they go."""
    if not ids:
        return
    change = {"$set": {"lease_until": NEVER}, "$unset": {"lease_owner": ""}}
    for operator, values in (update or {}).items():
        change.setdefault(operator, {}).update(values)
    collection.update_many({"_id": {"$in": ids}}, change)
