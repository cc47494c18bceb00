"""What every provider adapter shares: the request, its outcome, and the HTTP plumbing.

An adapter answers a send with "accepted" (not yet "delivered": a delivery report comes
later, or reconciliation asks), "retry" (overloaded, rate-limited, unreachable, or an
account problem an operator can fix) or "rejected" (this message can never succeed).
"""
import email.utils
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import requests
from requests.adapters import HTTPAdapter

from hocvu.clock import utcnow

ACCEPTED, RETRY, REJECTED = "accepted", "retry", "rejected"
# what a delivery report or a status query can say about an accepted message
DELIVERED, UNDELIVERED, PENDING = "delivered", "undelivered", "pending"


@dataclass(frozen=True)
class SmsRequest:
    request_id: str  # our message id: the provider's idempotency key where it has one
    to: str          # E.164, +84...
    text: str
    encoding: str    # GSM7 or UCS2 (services.notifications.sms)
    brandname: str


@dataclass(frozen=True)
class SendResult:
    outcome: str
    provider_message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    # refused before it left this process (our own token bucket): not an attempt
    throttled: bool = False
    # the provider that answered, when a failover wrapper chose among several
    provider: str | None = None


@dataclass(frozen=True)
class Report:
    """A delivery report in one shape, whatever the provider's format."""
    status: str                          # DELIVERED, UNDELIVERED or PENDING
    provider_message_id: str | None = None
    request_id: str | None = None        # our message id, when the provider echoes it
    delivered_at: datetime | None = None
    detail: str | None = None            # the provider's own status, for operators


class BadReport(ValueError):
    """A callback that is not a delivery report of this provider."""


def retry_after_seconds(value: str | None, now: Callable[[], datetime] = utcnow) -> float | None:
    """Retry-After in either form of RFC 9110: delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # an HTTP-date is always GMT
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, math.ceil((moment - now()).total_seconds()))


def http_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def national_number(e164: str) -> str:
    """+84912345678 -> 0912345678, the form Vietnamese providers document."""
    return "0" + e164[3:] if e164.startswith("+84") else e164


def international_digits(e164: str) -> str:
    """+84912345678 -> 84912345678."""
    return e164.lstrip("+")


def from_provider_number(number: str) -> str:
    """A number as a provider writes it (0912..., 84912..., +84912...) -> E.164."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if digits.startswith("84"):
        return "+" + digits
    if digits.startswith("0"):
        return "+84" + digits[1:]
    return "+" + digits


def transient_http(status: int) -> bool:
    return status == 429 or status >= 500
