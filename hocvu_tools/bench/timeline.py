"""When each step of a learner's journey happened, read after a run from the platform's own
records, joined on the correlation id the load generator sent:

    due         the load generator's schedule for the HTTP request (loadgen results)
    enrolled    the enrollment written, with its events (enrollment's enrollments)
    assigned    the lesson plan written, with lessons_assigned (lessons' plans)
    completed   the plan's course completed, with course_completed (lessons' plans)
    issued      the certificate written, with certificate_issued (certificates)
    sms_queued  the SMS message created, per template (notifications' messages)
    sms_received  the SMS gateway simulator accepted it (its record of every message)

Reading them afterwards costs the platform nothing while it is measured. Every timestamp is
Unix seconds from the same machine's clock.
"""
import json
from datetime import datetime, timezone
from pathlib import Path

from services.notifications.templates import CERTIFICATE_ISSUED, ENROLLMENT_CONFIRMED


def unix(value) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:  # pymongo hands back naive UTC datetimes
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def written_times(collection, moment: str, query: dict | None = None) -> dict[str, dict]:
    """correlation id -> {"occurred", "enrollment_id"}: when each document of `collection`
    was written (its `moment` field), the events it carried with it."""
    times = {}
    for doc in collection.find({moment: {"$ne": None}, **(query or {})},
                               {moment: 1, "correlation_id": 1, "enrollment_id": 1}):
        times[doc["correlation_id"]] = {"occurred": unix(doc[moment]),
                                        "enrollment_id": doc.get("enrollment_id", doc["_id"])}
    return times


def sms_times(notifications_db, record_file: Path, template: str) -> dict[str, dict]:
    """correlation id -> {"queued", "received", "copies"} of one template's SMS.

    `copies` counts the simulator's distinct messages for that learner's correlation id: a
    duplicate SMS would show as 2."""
    by_message = {}
    for doc in notifications_db.messages.find({"template": template},
                                              {"correlation_id": 1, "created_at": 1}):
        by_message[doc["_id"]] = doc
    times: dict[str, dict] = {}
    for line in _lines(record_file):
        accepted = json.loads(line)
        message = by_message.get(accepted["request_id"])
        if message is None:
            continue  # another template's SMS
        entry = times.setdefault(message["correlation_id"], {
            "queued": unix(message["created_at"]), "received": None, "copies": 0})
        entry["copies"] += 1
        received = unix(accepted["received_at"])
        entry["received"] = min(received, entry["received"] or received)
    return times


def _lines(path: Path):
    if not path.exists():
        return
    with open(path, encoding="utf-8") as record:
        yield from (line for line in record if line.strip())


class Timeline:
    """Everything the platform recorded, read once after a workload."""

    def __init__(self, platform):
        enrollment, lessons = platform.db("enrollment"), platform.db("lessons")
        self.enrolled = written_times(enrollment.enrollments, "enrolled_at")
        self.assigned = written_times(lessons.plans, "assigned_at")
        self.completed = written_times(lessons.plans, "completed_at")
        self.issued = written_times(platform.db("certificates").certificates, "issued_at")
        notifications = platform.db("notifications")
        self.confirmation_sms = sms_times(notifications, platform.sms_record,
                                          ENROLLMENT_CONFIRMED)
        self.certificate_sms = sms_times(notifications, platform.sms_record, CERTIFICATE_ISSUED)


def percentiles(values: list[float]) -> dict:
    """p50, p95, p99 and max in milliseconds (nearest rank), and how many values."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}

    def rank(p):
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {"n": len(ordered), **{f"p{p}": round(rank(p) * 1000, 1) for p in (50, 95, 99)},
            "max": round(ordered[-1] * 1000, 1)}
