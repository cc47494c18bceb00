"""Certificates' rules in plain Python: serial numbers and signed verification codes.

A verification code is what a learner receives by SMS and an employer types in to check a
certificate: 16 characters of Crockford's base32 (no I, L, O or U, so nothing is misread),
shown in groups of four: K7QM-2XRT-9BH4-C3VA. The first 12 are random (60 bits: the code
cannot be guessed from a serial or from another code); the last 4 are a tag, the first 20
bits of HMAC-SHA256(CERTIFICATE_CODE_KEY, the first 12). A made-up code fails the tag
(all but one in a million do) and is refused before any store lookup, so guessing codes
costs the store nothing and, with the edge's rate limit, finds nothing.

Keys: CERTIFICATE_CODE_KEY is a comma-separated list; the first signs new codes, every one
verifies, so a key is rotated by putting the new one first and dropping the old one once no
code signed with it needs to verify (never, for certificates that stay valid: keep it).

Codes issued before signing (12 characters, 60 random bits, no tag) keep verifying by a
store lookup: learners have them by SMS and on paper. They are as hard to guess as the
random part of a signed code; only their lookups reach the store.
"""
import hashlib
import hmac
import re
import secrets
from typing import Sequence

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RANDOM_LENGTH, TAG_LENGTH = 12, 4
CODE_LENGTH = RANDOM_LENGTH + TAG_LENGTH
LEGACY_CODE_LENGTH = 12     # unsigned codes of certificates issued before signing
KEY_MINIMUM = 32
VALID, REVOKED = "valid", "revoked"

_MISREAD = str.maketrans({"O": "0", "I": "1", "L": "1"})


class CodeKeys:
    """The keys of CERTIFICATE_CODE_KEY: the first signs, each verifies."""

    def __init__(self, setting: str | Sequence[str]):
        keys = setting.split(",") if isinstance(setting, str) else list(setting)
        keys = [key.strip() for key in keys if key.strip()]
        if not keys or any(len(key) < KEY_MINIMUM for key in keys):
            raise ValueError(f"CERTIFICATE_CODE_KEY must hold one or more comma-separated "
                             f"secrets of at least {KEY_MINIMUM} characters each")
        self._keys = [key.encode() for key in keys]

    def new_code(self) -> str:
        body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(RANDOM_LENGTH))
        return body + _tag(self._keys[0], body)

    def is_signed(self, code: str) -> bool:
        body, tag = code[:RANDOM_LENGTH], code[RANDOM_LENGTH:]
        return any(hmac.compare_digest(_tag(key, body), tag) for key in self._keys)

    def worth_looking_up(self, typed: str) -> str | None:
        """The stored form of a code worth a store lookup: a well-formed code whose tag is
        right, or a legacy unsigned one; None for anything else."""
        code = normalize_code(typed)
        if code is None:
            return None
        if len(code) == LEGACY_CODE_LENGTH:
            return code
        return code if self.is_signed(code) else None


def _tag(key: bytes, body: str) -> str:
    digest = int.from_bytes(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()[:4])
    bits = TAG_LENGTH * 5
    value = digest >> (32 - bits)
    return "".join(CODE_ALPHABET[(value >> shift) & 31]
                   for shift in range(bits - 5, -1, -5))


def normalize_code(typed: str) -> str | None:
    """What someone typed -> the stored form, or None if it cannot be a code."""
    code = re.sub(r"[\s-]", "", typed or "").upper().translate(_MISREAD)
    if len(code) not in (CODE_LENGTH, LEGACY_CODE_LENGTH) or \
            any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


def display_code(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def serial_number(province_code: str, year: int, sequence: int) -> str:
    """HV-38-2026-000123: the province's 123rd certificate of 2026."""
    return f"HV-{province_code}-{year}-{sequence:06d}"
