"""The gateway's side of signed delivery reports (docs/sms-gateway.md, "Signed reports").

Written here rather than imported from hocvu: the simulator stands in for a provider that
shares nothing with the platform but the documented scheme, so the end-to-end tests show
that the scheme as documented is what notifications accepts.
"""
import hashlib
import hmac


def signature_headers(secret: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Hocvu-Timestamp": str(timestamp), "X-Hocvu-Signature": f"v1={mac}"}
