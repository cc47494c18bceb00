"""python -m hocvu_tools.ops sms {stuck,failed}: SMS that did not reach a learner, and why.

Reads notifications' own database directly (MONGO_URI, MONGO_DATABASE), read-only: it
answers while notifications itself is down, which is when an operator needs it most.
Phone numbers are masked as in every other output of the platform.
"""
import json
from datetime import timedelta

from pymongo import ASCENDING, MongoClient

from hocvu.clock import isoformat, utcnow
from hocvu.privacy import mask_phone
from services.notifications import domain, reconcile, repository

COLUMNS = ("id", "status", "template", "learner_id", "to", "provider", "attempts", "since",
           "reason")


def _row(message: dict) -> dict:
    since = (message.get("failed_at") or message.get("reconciled_at")
             or message.get("suppressed_at") or message.get("accepted_at")
             or message.get("next_attempt_at") or message.get("created_at"))
    return {"id": message["_id"], "status": message.get("status"),
            "learner_status": domain.learner_status(message),
            "template": message.get("template"), "learner_id": message.get("learner_id"),
            "to": mask_phone(message.get("to") or ""), "provider": message.get("provider") or "",
            "attempts": message.get("attempts", 0),
            "since": isoformat(since) if since else "",
            "reason": domain.reason(message) or ""}


def stuck(db, older_than: timedelta, limit: int) -> list[dict]:
    """Messages still queued, or waiting for a number, longer than `older_than`, and those
    accepted whose provider still says "pending" when asked (the reconciler asks again)."""
    ids = [entry["_id"] for collection, query in reconcile.stuck_queries(utcnow(), older_than)
           for entry in db[collection].find(query, projection={"_id": 1})
           .sort("created_at", ASCENDING).limit(limit)]
    ids += [entry["_id"] for entry in db[repository.RECHECKS].find(projection={"_id": 1})
            .sort("next_check_at", ASCENDING).limit(limit)]
    return _rows(db, ids, limit)


def failed(db, limit: int) -> list[dict]:
    """Messages whose end is a failure (not delivered after all), the oldest first."""
    kinds = [*reconcile.FAILED_STATUSES, domain.GATEWAY_UNDELIVERED]
    rows, seen = [], set()
    while len(rows) < limit:
        page = list(db[repository.OUTCOMES].find({"kind": {"$in": kinds}},
                                                 projection={"message_id": 1})
                    .sort("at", ASCENDING).skip(len(seen)).limit(limit))
        if not page:
            break
        seen.update(outcome["_id"] for outcome in page)
        ids = list(dict.fromkeys(outcome["message_id"] for outcome in page))
        rows += [row for row in _rows(db, ids, None)
                 if row["status"] in reconcile.FAILED_STATUSES and row["id"] not in
                 {done["id"] for done in rows}]
    return rows[:limit]


def _rows(db, ids: list[str], limit: int | None) -> list[dict]:
    messages = list(db.messages.find({"_id": {"$in": ids}}))
    shown = sorted(repository.views(db, messages), key=lambda message: message["created_at"])
    return [_row(message) for message in shown[:limit]]


def run(args) -> int:
    client = MongoClient(args.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=5000)
    try:
        db = client[args.database]
        if args.command == "stuck":
            rows = stuck(db, timedelta(minutes=args.older_than_minutes), args.limit)
            title = f"SMS not settled after {args.older_than_minutes} min"
        else:
            rows = failed(db, args.limit)
            title = "SMS failed, undelivered, suppressed or of unknown fate"
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
            return 0
        print(f"{title}: {len(rows)}{' (limit reached)' if len(rows) == args.limit else ''}")
        for row in rows:
            print("  " + "  ".join(f"{name}={row[name]}" for name in COLUMNS))
        return 0
    finally:
        client.close()
