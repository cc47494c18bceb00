"""The gateway callback signature (hocvu.signatures), and the simulator's side of it."""
import pytest

from hocvu.signatures import BadSignature, sign, verify
from sms_simulator.signing import signature_headers

SECRET = b"s" * 32
BODY = b'{"request_id": "m-1", "status": "delivered"}'
NOW = 1_790_000_000


def check(timestamp, signature, body=BODY, now=NOW, secret=SECRET):
    verify(secret, timestamp, signature, body, now)


def test_a_fresh_signature_over_the_exact_body_passes():
    check(str(NOW), sign(SECRET, NOW, BODY))
    check(str(NOW - 299), sign(SECRET, NOW - 299, BODY))  # within the window, either side
    check(str(NOW + 299), sign(SECRET, NOW + 299, BODY))


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    import hashlib
    import hmac
    expected = hmac.new(SECRET, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"v1={expected}"


def test_the_simulator_signs_as_the_platform_verifies():
    headers = signature_headers(SECRET, NOW, BODY)
    check(headers["X-Hocvu-Timestamp"], headers["X-Hocvu-Signature"])


@pytest.mark.parametrize("timestamp, signature, reason", [
    (None, None, "missing"),
    (str(NOW), None, "missing"),
    (None, "v1=00", "missing"),
    ("", "", "missing"),
    ("12.5", "v1=00", "malformed timestamp"),
    ("-5", "v1=00", "malformed timestamp"),
    ("١٢٣", "v1=00", "malformed timestamp"),  # digits, but not ASCII ones
    ("9" * 300, "v1=00", "malformed"),
    (str(NOW), "sha256=abc", "no v1 signature"),
    (str(NOW), "v1=" + "0" * 64, "does not match"),
    (str(NOW), "v1=zz\n", "does not match"),
])
def test_missing_or_malformed_headers_are_refused(timestamp, signature, reason):
    with pytest.raises(BadSignature, match=reason):
        check(timestamp, signature)


def test_a_replayed_signature_older_than_five_minutes_is_refused():
    old = NOW - 301
    with pytest.raises(BadSignature, match="window"):
        check(str(old), sign(SECRET, old, BODY))


def test_a_moved_timestamp_breaks_the_signature():
    with pytest.raises(BadSignature, match="does not match"):
        check(str(NOW), sign(SECRET, NOW - 1000, BODY))


def test_a_tampered_body_or_another_secret_is_refused():
    signature = sign(SECRET, NOW, BODY)
    with pytest.raises(BadSignature, match="does not match"):
        check(str(NOW), signature, body=BODY.replace(b"delivered", b"failed"))
    with pytest.raises(BadSignature, match="does not match"):
        check(str(NOW), signature, secret=b"t" * 32)


def test_no_secret_configured_refuses_everything():
    with pytest.raises(BadSignature, match="no callback secret"):
        check(str(NOW), sign(b"", NOW, BODY), secret=b"")


def test_any_one_of_several_signatures_may_match_during_a_rotation():
    both = f"v1={'0' * 64}, {sign(SECRET, NOW, BODY)}"
    check(str(NOW), both)
