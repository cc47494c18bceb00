"""Claiming work stored in a collection, so that several processes can share it.

The reminder planner keeps its work as documents in the store. A process claims a batch by
stamping it with a lease; while the lease runs no other process takes those documents, and
if the process dies the lease simply runs out. Documents need a `lease_until` field
(datetime) from the start; NEVER is "free now". A job that one instance does for all
(the SMS dispatcher) holds an OwnerLease instead: no write per document.
"""
import uuid
from datetime import datetime, timedelta, timezone

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

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


class OwnerLease:
    """One holder at a time, among a service's instances, of a job that must not run twice at
    once (the SMS dispatcher, the outbox relay): a document in `collection` names the owner
    until when (in `until_field`).

    `hold()` takes the lease when it is free or ran out, and renews it once less than half is
    left, so a busy owner writes it a few times a lease, not every round. `renew(**fields)`
    renews it now and saves `fields` with it, only while this instance still owns it: the
    relay's resume token is saved so, in the same write. A crashed owner's lease runs out; one
    that stops cleanly hands it back at once."""

    def __init__(self, collection: Collection, job: str, lease: timedelta,
                 owner: str | None = None, until_field: str = "until"):
        self.collection = collection
        self.job = job
        self.lease = lease
        self.owner = owner or uuid.uuid4().hex
        self.until_field = until_field
        self._until = NEVER

    def hold(self) -> bool:
        now = utcnow()
        if now < self._until - self.lease / 2:
            return True
        until = now + self.lease
        try:
            taken = self.collection.update_one(
                {"_id": self.job,
                 "$or": [{"owner": self.owner}, {self.until_field: {"$lte": now}}]},
                {"$set": {"owner": self.owner, self.until_field: until}}, upsert=True)
        except DuplicateKeyError:
            taken = None  # another instance holds it: the upsert found no free lease to take
        self._until = until if taken and (taken.matched_count or taken.upserted_id) else NEVER
        return self._until is not NEVER

    def last_held(self) -> bool:
        """Whether this instance held the lease when it last looked (it may have run out
        since: the next hold() says)."""
        return self._until is not NEVER

    def renew(self, **fields) -> bool:
        """False once another instance took the lease over: stop the job and stand by."""
        until = utcnow() + self.lease
        renewed = self.collection.update_one(
            {"_id": self.job, "owner": self.owner},
            {"$set": {**fields, self.until_field: until}})
        self._until = until if renewed.matched_count else NEVER
        return self._until is not NEVER

    def release(self) -> None:
        self.collection.update_one({"_id": self.job, "owner": self.owner},
                                   {"$set": {"owner": None, self.until_field: utcnow()}})
        self._until = NEVER

    def let_go(self) -> None:
        """`release`, unless the store is away: the lease then runs out by itself."""
        try:
            self.release()
        except PyMongoError:
            pass
