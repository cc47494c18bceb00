"""How many SMS parts a text needs, and whether it fits the GSM 7-bit alphabet."""

# GSM 03.38 default alphabet in code order, 0x00..0x7F, without 0x1B (the escape to
# the extension table, which is not a character of its own).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Reached through the escape code, so each one costs two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

ENCODINGS = ("GSM7", "UCS2")
_SINGLE_LIMIT = {"GSM7": 160, "UCS2": 70}
# A concatenated part gives up room to the user data header.
_PART_LIMIT = {"GSM7": 153, "UCS2": 67}


def gsm7_unsupported(text: str) -> list[str]:
    """Characters of `text` that GSM7 cannot carry, each once, in order of appearance."""
    seen: dict[str, None] = {}
    for char in text:
        if char not in GSM7_BASIC and char not in GSM7_EXTENSION:
            seen.setdefault(char)
    return list(seen)


def _unit_costs(text: str, encoding: str) -> list[int]:
    if encoding == "GSM7":
        return [2 if char in GSM7_EXTENSION else 1 for char in text]
    # UCS2 on the air is UTF-16: characters outside the BMP take a surrogate pair.
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def count_segments(text: str, encoding: str) -> int:
    """Parts needed to send `text`; `encoding` is "GSM7" or "UCS2".

    A concatenated message never splits an escape sequence or a surrogate pair across
    parts, so the parts are packed one character at a time rather than by dividing.
    """
    costs = _unit_costs(text, encoding)
    if sum(costs) <= _SINGLE_LIMIT[encoding]:
        return 1
    part_limit = _PART_LIMIT[encoding]
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part_limit:
            parts, used = parts + 1, 0
        used += cost
    return parts
