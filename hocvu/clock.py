"""One notion of "now" for every service: timezone-aware UTC, millisecond precision.

MongoDB stores datetimes with millisecond precision, so truncating here keeps a value
read back from the store equal to the value that was written.
"""
from datetime import datetime, timezone


def utcnow() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def isoformat(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z suffix, e.g. 2026-11-25T02:12:27.163Z."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
