"""Sealed values open only with notifications' keys; gateway signatures refuse tampering."""
import pytest

from hocvu import signatures
from hocvu.sealing import CannotOpen, Opener, Sealer, new_key_pair


def test_a_sealed_value_opens_only_with_its_private_key_and_during_a_rotation():
    old_private, old_public = new_key_pair()
    new_private, new_public = new_key_pair()
    sealed_old = Sealer(old_public).seal("+84912345678")
    assert "912345678" not in sealed_old
    assert Opener(old_private).open(sealed_old) == "+84912345678"
    with pytest.raises(CannotOpen):
        Opener(new_private).open(sealed_old)
    rotating = Opener(f"{new_private},{old_private}")
    assert rotating.open(sealed_old) == "+84912345678"
    assert rotating.open(Sealer(new_public).seal("123456")) == "123456"
    for damaged in ("", "not base64!", sealed_old[:-8] + "AAAAAAA="):
        with pytest.raises(CannotOpen):
            rotating.open(damaged)


@pytest.mark.parametrize("bad", ["", "short", "x" * 44])
def test_keys_are_checked(bad):
    with pytest.raises(ValueError):
        Sealer(bad)


def test_signed_callbacks_are_accepted_and_tampered_ones_refused():
    secret, body, now = b"s" * 32, b'{"request_id": "m1", "status": "delivered"}', 1_800_000_000
    signature = signatures.sign(secret, now, body)
    signatures.verify(secret, str(now), signature, body, now=now + 10)
    refusals = [
        (None, signature, body, now),                       # unsigned
        (str(now), None, body, now),
        (str(now), signature, body + b" ", now),            # body altered
        (str(now), signatures.sign(b"t" * 32, now, body), body, now),  # another secret
        (str(now), signature, body, now + 301),             # replayed later
        ("yesterday", signature, body, now),
    ]
    for timestamp, sig, payload, at in refusals:
        with pytest.raises(signatures.BadSignature):
            signatures.verify(secret, timestamp, sig, payload, now=at)
