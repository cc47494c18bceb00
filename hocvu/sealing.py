"""Values only one service may read, carried through events that others can see.

A value is sealed with the reader's public key (libsodium's sealed box: an ephemeral
X25519 key, XSalsa20-Poly1305) and opened only with its private key, so the publisher, the
broker, a dead-letter queue and an operator replaying it see base64 and nothing more.
Keys and sealed values are standard base64 text, fit for configuration and JSON.

`python -m hocvu.sealing keypair` prints a new key pair as two configuration lines.
"""
import base64
import binascii
import sys

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox


class SealingError(ValueError):
    """A key or a sealed value that cannot be used (wrong key, altered, not base64)."""


def _decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text or "", validate=True)
    except (binascii.Error, ValueError):
        raise SealingError(f"{what} is not base64") from None


def public_key(text: str) -> PublicKey:
    raw = _decode(text, "public key")
    if len(raw) != PublicKey.SIZE:
        raise SealingError(f"public key must be {PublicKey.SIZE} bytes")
    return PublicKey(raw)


def private_key(text: str) -> PrivateKey:
    raw = _decode(text, "private key")
    if len(raw) != PrivateKey.SIZE:
        raise SealingError(f"private key must be {PrivateKey.SIZE} bytes")
    return PrivateKey(raw)


def seal(key: PublicKey, value: str) -> str:
    return base64.b64encode(SealedBox(key).encrypt(value.encode("utf-8"))).decode("ascii")


def open_sealed(key: PrivateKey, sealed: str) -> str:
    try:
        return SealedBox(key).decrypt(_decode(sealed, "sealed value")).decode("utf-8")
    except (CryptoError, UnicodeDecodeError):
        raise SealingError("sealed value cannot be opened with this key") from None


def new_keypair() -> tuple[str, str]:
    """(private, public), base64."""
    secret = PrivateKey.generate()
    encode = lambda raw: base64.b64encode(bytes(raw)).decode("ascii")  # noqa: E731
    return encode(secret), encode(secret.public_key)


def main(argv: list[str]) -> int:
    if argv != ["keypair"]:
        print("usage: python -m hocvu.sealing keypair", file=sys.stderr)
        return 2
    private, public = new_keypair()
    print(f"NOTIFICATIONS_SEALING_PRIVATE_KEY={private}")
    print(f"NOTIFICATIONS_SEALING_PUBLIC_KEY={public}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
