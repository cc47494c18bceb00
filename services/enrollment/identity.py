"""Vietnamese identity data: citizen IDs (CCCD) and names; mobile numbers and province
codes come from hocvu.phones and hocvu.places (identity takes phone numbers too).

Pure functions; every rule here can be checked without a broker or a store.
"""
import hashlib
import hmac
import re
import unicodedata

from hocvu.phones import PHONE_PATTERN, InvalidPhone, normalize_phone  # noqa: F401  (enrollment's API)
from hocvu.places import PROVINCE_CODES  # noqa: F401

# A CCCD starts with the code of the province where the citizen was born or registered
# *before* the 2025 merger: the 63 old province codes, which IDs keep for life.
CCCD_PROVINCE_CODES = frozenset(f"{n:03d}" for n in (
    1, 2, 4, 6, 8, 10, 11, 12, 14, 15, 17, 19, 20, 22, 24, 25, 26, 27, 30, 31, 33, 34, 35,
    36, 37, 38, 40, 42, 44, 45, 46, 48, 49, 51, 52, 54, 56, 58, 60, 62, 64, 66, 67, 68, 70,
    72, 74, 75, 77, 79, 80, 82, 83, 84, 86, 87, 89, 91, 92, 93, 94, 95, 96))

# What the HTTP API accepts before the number plan is checked, as its OpenAPI document states.
NATIONAL_ID_PATTERN = "^(" + "|".join(sorted(CCCD_PROVINCE_CODES)) + ")[0-9]{9}$"


def national_id_problems(national_id: str, birth_year: int | None) -> list[str]:
    """Why a CCCD number cannot be right; an empty list when it can.

    Layout: 3-digit province code, 1 digit for century and sex (0/1: 1900s, 2/3: 2000s,
    ...), 2 digits of the birth year, 6 more digits.
    """
    if not re.fullmatch(r"[0-9]{12}", national_id or ""):
        return ["must be exactly 12 digits"]
    problems = []
    if national_id[:3] not in CCCD_PROVINCE_CODES:
        problems.append(f"starts with {national_id[:3]}, which is no province code")
    if birth_year is not None:
        century = 1900 + int(national_id[3]) // 2 * 100
        encoded_year = century + int(national_id[4:6])
        if encoded_year != birth_year:
            problems.append(f"encodes birth year {encoded_year}, not {birth_year}")
    return problems


def national_id_digest(national_id: str, key: bytes) -> str:
    """A keyed hash: lets us recognise the same person without keeping the number."""
    return hmac.new(key, national_id.encode("ascii"), hashlib.sha256).hexdigest()


def normalize_name(raw: str) -> str:
    """NFC (keyboards may send decomposed Vietnamese) and single spaces."""
    return " ".join(unicodedata.normalize("NFC", raw or "").split())


def name_problems(name: str) -> list[str]:
    if not 2 <= len(name) <= 100:
        return ["must be 2 to 100 characters"]
    if not all(ch.isalpha() or ch in " .'-" for ch in name):
        return ["may contain only letters, spaces, dots, apostrophes and hyphens"]
    return []
