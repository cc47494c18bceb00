"""The sign-in code SMS: transactional, and its code never rests in the store.

identity seals the phone and the code of `sign_in_code_requested` for us. The message is
stored with the code replaced by REDACTED and keeps the code still sealed; the dispatcher
puts the real code into the text only in the request to the provider (`text_to_send`).
The placeholder has the code's length, so the encoding and segments stored are the ones
sent. The phone is kept like every message's `to`: the SMS must reach it.

A code SMS still unsent when its code expires is never sent (`expired`): the code would be
refused anyway, and a learner can always ask for a new one.
"""
import re
import uuid
from datetime import datetime

from hocvu.events import MalformedEvent
from hocvu.sealing import CannotOpen, Opener
from services.notifications import policy, repository, sms, templates
from services.notifications.domain import SCOPE_FIELDS, is_vietnamese_number, lane_of

REDACTED = "******"
CODE_EXPIRED = "code expired"


def create(db, opener: Opener, data: dict, correlation_id: str, now: datetime,
           unaccented: bool) -> dict | None:
    """Queue the SMS of one code request; None if it exists already (a redelivery)."""
    dedupe_key = f"sign_in_code:{data['request_id']}"
    try:
        phone = opener.open(data["phone"])
        code = opener.open(data["code"])  # kept sealed; it must open when the SMS goes out
    except CannotOpen as exc:
        raise MalformedEvent(f"sign_in_code_requested: {exc}") from None
    if not is_vietnamese_number(phone) or not re.fullmatch(r"\d{6}", code):
        raise MalformedEvent("sign_in_code_requested: the sealed phone or code is malformed")
    text = sms.compose(templates.render(templates.SIGN_IN_CODE, code=REDACTED), unaccented)
    message = {
        "_id": str(uuid.uuid4()), "dedupe_key": dedupe_key, "template": templates.SIGN_IN_CODE,
        "sms_class": policy.class_of(templates.SIGN_IN_CODE),  # transactional: at once
        "lane": lane_of(templates.SIGN_IN_CODE),  # before any other lane's backlog
        "learner_id": None, "enrollment_id": None,
        # no learner, no commune: only operations see it (it is listed to nobody)
        **{key: None for key in SCOPE_FIELDS},
        "to": phone, "sealed_code": data["code"],
        "text": text.text, "encoding": text.encoding, "segments": text.segments,
        "created_at": now, "expires_at": data["expires_at"], "attempts": 0,
        "correlation_id": correlation_id,
    }
    return repository.create_documents(db, [message], now)[0]


def text_to_send(message: dict, opener: Opener | None) -> str:
    """The text for the provider: a code message gets its real code back, others as stored."""
    if not message.get("sealed_code"):
        return message["text"]
    return message["text"].replace(REDACTED, opener.open(message["sealed_code"]), 1)


def expired(message: dict, now: datetime) -> bool:
    """Is this a code message whose code no longer signs anyone in?"""
    expires_at = message.get("expires_at")
    return expires_at is not None and expires_at <= now
