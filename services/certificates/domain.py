"""Certificates' rules in plain Python: serial numbers and verification codes.

A verification code is what a learner receives by SMS and an employer types in to check a
certificate: 12 characters of Crockford's base32 (no I, L, O or U, so nothing is misread),
60 random bits, shown in groups of four: K7QM-2XRT-9BH4.
"""
import re
import secrets

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
VALID, REVOKED = "valid", "revoked"

_MISREAD = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_verification_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(typed: str) -> str | None:
    """What someone typed -> the stored form, or None if it cannot be a code."""
    code = re.sub(r"[\s-]", "", typed or "").upper().translate(_MISREAD)
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


def display_code(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def serial_number(province_code: str, year: int, sequence: int) -> str:
    """HV-38-2026-000123: the province's 123rd certificate of 2026."""
    return f"HV-{province_code}-{year}-{sequence:06d}"
