"""Signed callbacks from the SMS gateway: HMAC-SHA256 over a timestamp and the body.

Headers: X-Hocvu-Timestamp (unix seconds) and X-Hocvu-Signature (`v1=<hex>` of
HMAC-SHA256(secret, f"{timestamp}." + body)). A timestamp further than `tolerance` seconds
from now is refused, so a recorded callback cannot be replayed later.
"""
import hashlib
import hmac

TIMESTAMP_HEADER = "X-Hocvu-Timestamp"
SIGNATURE_HEADER = "X-Hocvu-Signature"


class BadSignature(Exception):
    pass


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def verify(secret: bytes, timestamp_header: str | None, signature_header: str | None,
           body: bytes, now: float, tolerance: float = 300) -> None:
    if not timestamp_header or not signature_header:
        raise BadSignature("unsigned: X-Hocvu-Timestamp and X-Hocvu-Signature are required")
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        raise BadSignature("X-Hocvu-Timestamp is not a unix time") from None
    if abs(now - timestamp) > tolerance:
        raise BadSignature("the signature's timestamp is too old or in the future")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature_header.strip()):
        raise BadSignature("the signature does not match the body")
