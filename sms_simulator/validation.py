"""Checks on request bodies. Every problem is reported, not only the first one."""
import math
import re
from urllib.parse import urlsplit

from .segments import ENCODINGS, gsm7_unsupported

REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Vietnamese mobile ranges: 84 followed by a 9-digit subscriber number on 3/5/7/8/9.
VN_MOBILE = re.compile(r"84[35789][0-9]{8}")
BRANDNAME = re.compile(r"[A-Za-z0-9 ._-]{1,11}")
MAX_TEXT_CHARS = 1600
MAX_URL_CHARS = 2048

MESSAGE_FIELDS = ("request_id", "to", "brandname", "text", "encoding", "callback_url")
FAULT_FIELDS = ("fail_rate", "rate_limit_per_minute", "retry_after_format")


class ValidationFailed(Exception):
    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("invalid request")
        self.fields = fields


def _require_object(payload: object) -> dict:
    if not isinstance(payload, dict):
        raise ValidationFailed({"body": ["must be a JSON object"]})
    return payload


def _unknown_fields(payload: dict, known: tuple[str, ...], errors: dict) -> None:
    # A misspelt optional field (say "callbackUrl") would otherwise be dropped without
    # a word, and the caller would wait for a report that never comes.
    for name in payload:
        if name not in known:
            errors.setdefault(name, []).append("unknown field")


def _string(payload: dict, name: str, errors: dict, *, required: bool = True) -> str | None:
    value = payload.get(name)
    if value is None:
        if required:
            errors.setdefault(name, []).append("is required")
        return None
    if not isinstance(value, str):
        errors.setdefault(name, []).append("must be a string")
        return None
    return value


def _has_lone_surrogate(value: str) -> bool:
    # JSON can smuggle in half of a surrogate pair, which cannot be encoded as UTF-8.
    return any(0xD800 <= ord(char) <= 0xDFFF for char in value)


def _check_text(text: str, encoding: str | None, errors: dict) -> None:
    problems = errors.setdefault("text", [])
    if not 1 <= len(text) <= MAX_TEXT_CHARS:
        problems.append(f"must be 1 to {MAX_TEXT_CHARS} characters")
    if _has_lone_surrogate(text):
        problems.append("contains an unpaired UTF-16 surrogate")
    elif encoding == "GSM7":
        unsupported = gsm7_unsupported(text)
        if unsupported:
            shown = "".join(unsupported[:10])
            problems.append(f"has characters outside the GSM 03.38 alphabet ({shown}); use UCS2")
    if not problems:
        del errors["text"]


def _check_callback_url(url: str, errors: dict) -> None:
    parts = urlsplit(url) if url.isascii() else None
    if (
        parts is None
        or len(url) > MAX_URL_CHARS
        or any(char.isspace() for char in url)
        or parts.scheme not in ("http", "https")
        or not parts.hostname
    ):
        errors.setdefault("callback_url", []).append(
            f"must be an ASCII http or https URL of at most {MAX_URL_CHARS} characters"
        )


def validate_message(payload: object) -> dict:
    """The fields of a send request, cleaned; raises ValidationFailed."""
    payload = _require_object(payload)
    errors: dict[str, list[str]] = {}
    _unknown_fields(payload, MESSAGE_FIELDS, errors)

    request_id = _string(payload, "request_id", errors)
    if request_id is not None and not REQUEST_ID.fullmatch(request_id):
        errors.setdefault("request_id", []).append("must be 1 to 64 characters of A-Z a-z 0-9 _ -")

    to = _string(payload, "to", errors)
    if to is not None and not VN_MOBILE.fullmatch(to):
        errors.setdefault("to", []).append(
            "must be a Vietnamese mobile number in international digits without '+', "
            "e.g. 84912345678"
        )

    brandname = _string(payload, "brandname", errors)
    if brandname is not None and (not BRANDNAME.fullmatch(brandname) or not brandname.strip()):
        errors.setdefault("brandname", []).append(
            "must be 1 to 11 characters of letters, digits, space . - _"
        )

    encoding = _string(payload, "encoding", errors)
    if encoding is not None and encoding not in ENCODINGS:
        errors.setdefault("encoding", []).append("must be GSM7 or UCS2")
        encoding = None

    text = _string(payload, "text", errors)
    if text is not None:
        _check_text(text, encoding, errors)

    callback_url = _string(payload, "callback_url", errors, required=False)
    if callback_url is not None:
        _check_callback_url(callback_url, errors)

    if errors:
        raise ValidationFailed(errors)
    return {
        "request_id": request_id,
        "to": to,
        "brandname": brandname,
        "text": text,
        "encoding": encoding,
        "callback_url": callback_url,
    }


def validate_fault_changes(payload: object) -> dict:
    """The fault settings a request wants changed; absent fields stay as they are."""
    payload = _require_object(payload)
    errors: dict[str, list[str]] = {}
    _unknown_fields(payload, FAULT_FIELDS, errors)
    changes = {}

    if "fail_rate" in payload:
        rate = payload["fail_rate"]
        # An exact type check, because bool is an int in Python and `true` is not a rate.
        if not (type(rate) in (int, float) and math.isfinite(rate) and 0 <= rate <= 1):
            errors["fail_rate"] = ["must be a number from 0 to 1"]
        else:
            changes["fail_rate"] = float(rate)

    if "rate_limit_per_minute" in payload:
        limit = payload["rate_limit_per_minute"]
        if not (limit is None or (type(limit) is int and limit >= 0)):
            errors["rate_limit_per_minute"] = ["must be a whole number >= 0, or null for no limit"]
        else:
            changes["rate_limit_per_minute"] = limit

    if "retry_after_format" in payload:
        form = payload["retry_after_format"]
        if form not in ("seconds", "http-date"):
            errors["retry_after_format"] = ['must be "seconds" or "http-date"']
        else:
            changes["retry_after_format"] = form

    if errors:
        raise ValidationFailed(errors)
    return changes
