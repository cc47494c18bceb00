"""The keys identity signs tokens with, and their public form (JWK) for every verifier.

JWT_SIGNING_KEYS is a comma-separated list of PEM private key files: the first signs, all
are published in the JWKS. Ed25519 keys sign with EdDSA, P-256 keys with ES256. A key's
`kid` is its RFC 7638 thumbprint, so the same file always gets the same kid.

`python -m services.identity.keys new PATH` writes a new Ed25519 key (mode 0600).
"""
import base64
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


class InvalidKey(ValueError):
    """A signing key that cannot be used."""


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def thumbprint(jwk: dict) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace."""
    required = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"),
                           sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True)
class SigningKey:
    private_key: object
    algorithm: str
    kid: str
    jwk: dict  # public members only

    @classmethod
    def from_private_key(cls, private_key) -> "SigningKey":
        if isinstance(private_key, ed25519.Ed25519PrivateKey):
            raw = private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                        serialization.PublicFormat.Raw)
            public, algorithm = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}, "EdDSA"
        elif isinstance(private_key, ec.EllipticCurvePrivateKey) and \
                isinstance(private_key.curve, ec.SECP256R1):
            numbers = private_key.public_key().public_numbers()
            public = {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big")),
                      "y": b64url(numbers.y.to_bytes(32, "big"))}
            algorithm = "ES256"
        else:
            raise InvalidKey("a signing key must be Ed25519 or EC P-256")
        kid = thumbprint(public)
        return cls(private_key, algorithm, kid,
                   {**public, "kid": kid, "alg": algorithm, "use": "sig"})


def load_pem(pem: bytes) -> SigningKey:
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidKey(f"not an unencrypted PEM private key ({exc})") from None
    return SigningKey.from_private_key(private_key)


def load_keyring(paths: str) -> list[SigningKey]:
    """The keys named in JWT_SIGNING_KEYS, the signing one first."""
    files = [part.strip() for part in (paths or "").split(",") if part.strip()]
    if not files:
        raise InvalidKey("JWT_SIGNING_KEYS must name at least one PEM private key file")
    keyring = []
    for name in files:
        try:
            pem = Path(name).read_bytes()
        except OSError as exc:
            raise InvalidKey(f"cannot read signing key {name}: {exc.strerror}") from None
        try:
            keyring.append(load_pem(pem))
        except InvalidKey as exc:
            raise InvalidKey(f"{name}: {exc}") from None
    return keyring


def jwks(keyring: list[SigningKey]) -> dict:
    return {"keys": [key.jwk for key in keyring]}


def new_key_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def write_new_key(path: Path) -> SigningKey:
    """Write a new Ed25519 key to `path` (readable by its owner only); never overwrites."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = new_key_pem()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    return load_pem(pem)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "new":
        print("usage: python -m services.identity.keys new PATH", file=sys.stderr)
        return 2
    try:
        key = write_new_key(Path(argv[1]))
    except FileExistsError:
        print(f"{argv[1]} exists already; not overwritten", file=sys.stderr)
        return 1
    print(f"wrote {argv[1]} ({key.algorithm}, kid {key.kid})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
