"""Signed callbacks from the SMS gateway: who posted this delivery report, and is it fresh?

The gateway and notifications share a secret (SMS_CALLBACK_SECRET). Every callback carries
    X-Hocvu-Timestamp: <unix seconds when it was signed>
    X-Hocvu-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>
The timestamp is inside the MAC, so a captured callback cannot be replayed later than
`tolerance` seconds after it was signed, nor its timestamp moved; the raw body is inside it,
so no byte of the report can change. A route whose rule is `auth.GATEWAY` is checked with
`verify` before its handler runs (hocvu.http).
"""
import hashlib
import hmac

TIMESTAMP_HEADER = "X-Hocvu-Timestamp"
SIGNATURE_HEADER = "X-Hocvu-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
# a header longer than this is not one we made; refuse it before doing any work on it
_MAX_HEADER_CHARS = 200


class BadSignature(Exception):
    """The callback is not signed by someone who holds the secret, or is too old."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The X-Hocvu-Signature value for `body` signed at `timestamp`."""
    return f"{SCHEME}={_mac(secret, timestamp, body)}"


def headers(secret: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    """Both headers a signed callback carries."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(secret: bytes, timestamp_header: str | None, signature_header: str | None,
           body: bytes, now: float, tolerance: int = DEFAULT_TOLERANCE_SECONDS) -> None:
    """Return if `body` was signed with `secret` within `tolerance` seconds of `now`;
    raise BadSignature saying why not."""
    if not secret:
        raise BadSignature("no callback secret is configured")
    if not timestamp_header or not signature_header:
        raise BadSignature("missing signature headers")
    if len(timestamp_header) > _MAX_HEADER_CHARS or len(signature_header) > _MAX_HEADER_CHARS:
        raise BadSignature("malformed signature headers")
    if not timestamp_header.isascii() or not timestamp_header.isdigit():
        raise BadSignature("malformed timestamp")
    timestamp = int(timestamp_header)
    if abs(now - timestamp) > tolerance:
        raise BadSignature("timestamp outside the accepted window")
    expected = _mac(secret, timestamp, body)
    # several signatures may be sent while a secret is being rotated: any one may match
    offered = [value for scheme, _, value in
               (part.strip().partition("=") for part in signature_header.split(","))
               if scheme == SCHEME]
    if not offered:
        raise BadSignature("no v1 signature")
    # compare_digest on every candidate: time depends on neither content nor which matched
    matched = False
    for candidate in offered:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode("ascii", "replace"))
    if not matched:
        raise BadSignature("signature does not match")

