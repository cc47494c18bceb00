"""Values sealed for one service: a phone number or a sign-in code that must cross the broker
(and rest in an outbox, a retry queue, a dead letter) without anyone but notifications reading it.

libsodium's sealed boxes (PyNaCl): whoever holds notifications' public key can seal; only the
private key, which notifications alone is given, opens. Keys are base64 of the 32 raw bytes
(`python -m hocvu.sealing new` prints a pair).
"""
import base64
import binascii
import sys

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox


class CannotOpen(ValueError):
    """Not sealed for this key, or damaged."""


def _key_bytes(encoded: str, name: str) -> bytes:
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, AttributeError):
        raise ValueError(f"{name} is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{name} must be 32 bytes, base64-encoded")
    return raw


class Sealer:
    def __init__(self, public_key_b64: str):
        self._box = SealedBox(PublicKey(_key_bytes(public_key_b64, "sealing public key")))

    def seal(self, text: str) -> str:
        return base64.b64encode(self._box.encrypt(text.encode("utf-8"))).decode("ascii")


class Opener:
    """Opens with any of the private keys given (comma-separated, newest first): during a
    rotation, values sealed for the old key still wait in queues and dead letters."""

    def __init__(self, private_keys_b64: str):
        keys = [key for key in private_keys_b64.split(",") if key.strip()]
        if not keys:
            raise ValueError("no sealing private key given")
        self._boxes = [SealedBox(PrivateKey(_key_bytes(key, "sealing private key")))
                       for key in keys]

    def open(self, sealed: str) -> str:
        try:
            raw = base64.b64decode(sealed, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise CannotOpen("not a sealed value") from None
        for box in self._boxes:
            try:
                return box.decrypt(raw).decode("utf-8")
            except (CryptoError, ValueError, TypeError):
                continue
        raise CannotOpen("this value was not sealed for this service's keys")


def new_key_pair() -> tuple[str, str]:
    """(private, public), base64."""
    private = PrivateKey.generate()
    return (base64.b64encode(bytes(private)).decode(),
            base64.b64encode(bytes(private.public_key)).decode())


if __name__ == "__main__":
    if sys.argv[1:] != ["new"]:
        sys.exit("usage: python -m hocvu.sealing new")
    private_b64, public_b64 = new_key_pair()
    print(f"NOTIFICATIONS_SEALING_PRIVATE_KEY={private_b64}\nNOTIFICATIONS_SEALING_PUBLIC_KEY={public_b64}")
