"""SMS text: the encoding a text needs and how many segments it costs.

GSM-7 carries 160 septets in one segment, 153 per part when concatenated; characters of
the extension table (such as [ ] { } €) take two septets. UCS-2 carries 70 UTF-16 code
units, 67 per part. Vietnamese with diacritics needs UCS-2, so operational messages go
out unaccented (đ -> d) when the text then fits GSM-7: cheaper, and accepted by brandname
routes that refuse Unicode. The transliteration is anyascii's (ISC licence); segments are
counted on the text actually sent, so the count stays exact whatever it produced.
"""
import math
from dataclasses import dataclass

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
from anyascii import anyascii

GSM7, UCS2 = "GSM7", "UCS2"
_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}


@dataclass(frozen=True)
class SmsText:
    text: str
    encoding: str
    segments: int


def gsm7_septets(text: str) -> int | None:
    """Septets `text` takes in GSM-7, or None if it cannot be written in GSM-7."""
    try:
        return len(text.encode("gsm03.38"))
    except UnicodeEncodeError:
        return None


def segments(units: int, encoding: str) -> int:
    single, per_part = _LIMITS[encoding]
    return 1 if units <= single else math.ceil(units / per_part)


def compose(text: str, unaccented: bool = True) -> SmsText:
    """The form of `text` to send: unaccented GSM-7 when allowed and possible, else UCS-2."""
    if unaccented:
        plain = anyascii(text)
        septets = gsm7_septets(plain)
        if septets is not None:
            return SmsText(plain, GSM7, segments(septets, GSM7))
    septets = gsm7_septets(text)
    if septets is not None:
        return SmsText(text, GSM7, segments(septets, GSM7))
    code_units = len(text.encode("utf-16-le")) // 2
    return SmsText(text, UCS2, segments(code_units, UCS2))
