"""Timestamps in the form the API documents: UTC, milliseconds, Z suffix."""
from datetime import datetime, timezone


def utc_now_iso() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
