"""Notifications' records: the learners' contacts and the messages sent to them.

A message is created once per thing worth telling (its `dedupe_key`), so a redelivered
event never makes a second SMS. It waits in `awaiting_contact` until the learner's phone
number is known (learner_contact_registered may arrive after the event that asks for the
message), is `queued` for the dispatcher, `accepted` by the provider, and `delivered` when
the provider's delivery report comes back; `failed` if the provider refused it for good,
`undelivered` if the report says it never reached the handset, `suppressed` if it is a
reminder to a number that opted out, and `unknown` if the provider accepted it but neither a
report nor a status query told us more in time (reconcile.py).

What a learner (or staff) is shown is one of LEARNER_STATUSES, with a reason where there
is one (docs/sms-gateway.md, "Message status").
"""
import uuid
from dataclasses import dataclass
from datetime import datetime

from hocvu.leases import NEVER
from pymongo import UpdateOne

from hocvu.events import new_event
from hocvu.outbox import set_events
from hocvu.store import bulk_write_once, insert_many_once
from services.notifications import policy, sms, templates
from services.notifications.providers import DELIVERED as REPORTED_DELIVERED, PENDING

AWAITING_CONTACT, QUEUED, ACCEPTED, DELIVERED, FAILED = (
    "awaiting_contact", "queued", "accepted", "delivered", "failed")
UNDELIVERED, SUPPRESSED, UNKNOWN = "undelivered", "suppressed", "unknown"
FINAL = (DELIVERED, FAILED, UNDELIVERED, SUPPRESSED, UNKNOWN)

# the learner-facing status of each stored one: the documented, closed set
LEARNER_STATUSES = {
    AWAITING_CONTACT: "pending", QUEUED: "pending", ACCEPTED: "sent",
    DELIVERED: "delivered", UNDELIVERED: "not_delivered", FAILED: "not_sent",
    SUPPRESSED: "not_sent", UNKNOWN: "unknown",
}


def learner_status(message: dict) -> str:
    return LEARNER_STATUSES.get(message.get("status"), "unknown")


def reason(message: dict) -> str | None:
    """Why a message is not (yet) delivered, in words an operator or a learner can act on."""
    status = message.get("status")
    if status == AWAITING_CONTACT:
        return "waiting for the learner's phone number"
    if status == QUEUED:
        return message.get("held_reason") or message.get("last_error")
    if status in (FAILED, UNDELIVERED, SUPPRESSED, UNKNOWN):
        return message.get("last_error")
    return None
SCOPE_FIELDS = ("province_code", "commune_code", "learner_subject")


def create(db, template: str, dedupe_key: str, learner_id: str, enrollment_id: str,
           values: dict, correlation_id: str, now: datetime, unaccented: bool,
           scope: dict | None = None) -> dict | None:
    """Create the message for `dedupe_key`, or return None if it exists already (a
    redelivery). `scope` (province_code, commune_code, learner_subject) says who may read it
    (hocvu.auth)."""
    wanted = Wanted(template, dedupe_key, learner_id, enrollment_id, values, correlation_id,
                    scope)
    created = create_many(db, [wanted], now, unaccented)
    return created[0]


@dataclass(frozen=True)
class Wanted:
    """A message some event asks for (its `dedupe_key` says what it tells)."""
    template: str
    dedupe_key: str
    learner_id: str
    enrollment_id: str
    values: dict
    correlation_id: str
    scope: dict | None = None


def create_many(db, wanted: list[Wanted], now: datetime, unaccented: bool) -> list[dict | None]:
    """Create the messages `wanted` asks for in one read of the contacts and one insert;
    for each, the message, or None if its dedupe_key had one already (a redelivery)."""
    learner_ids = list({want.learner_id for want in wanted})
    phones = phones_of(db, learner_ids)
    documents = [_message(want, phones.get(want.learner_id), now, unaccented)
                 for want in wanted]
    existing = insert_many_once(db.messages, documents)
    created = [None if position in existing else document
               for position, document in enumerate(documents)]
    waiting = [document for document in created if document and not document["to"]]
    if waiting:
        # the number may have come between our read and our write: remember_contact writes
        # the number and then releases waiting messages, we write the message and then look
        # for the number; whichever comes second sees the other's write
        phones = phones_of(db, list({document["learner_id"] for document in waiting}))
        for document in waiting:
            phone = phones.get(document["learner_id"])
            if phone and _release(db, {"_id": document["_id"]}, phone, now):
                document.update(to=phone, status=QUEUED)
    return created


def _message(want: Wanted, phone: str | None, now: datetime, unaccented: bool) -> dict:
    text = sms.prepare(templates.render(want.template, **want.values), unaccented)
    return {
        "_id": str(uuid.uuid4()), "dedupe_key": want.dedupe_key, "template": want.template,
        "learner_id": want.learner_id, "enrollment_id": want.enrollment_id,
        "sms_class": policy.class_of(want.template), "to": phone,
        "text": text.text, "encoding": text.encoding, "segments": text.segments,
        "status": QUEUED if phone else AWAITING_CONTACT,
        "created_at": now, "attempts": 0, "next_attempt_at": now, "lease_until": NEVER,
        "correlation_id": want.correlation_id,
        **{key: (want.scope or {}).get(key) for key in SCOPE_FIELDS},
    }


def phones_of(db, learner_ids: list[str]) -> dict[str, str]:
    """The known numbers of these learners, by learner id."""
    found = db.contacts.find({"_id": {"$in": learner_ids}}, projection={"phone": 1})
    return {contact["_id"]: contact["phone"] for contact in found if contact.get("phone")}


def _release(db, which: dict, phone: str, now: datetime) -> int:
    return db.messages.update_many(
        {**which, "status": AWAITING_CONTACT},
        {"$set": {"to": phone, "status": QUEUED, "next_attempt_at": now}}).modified_count


def remember_contact(db, learner_id: str, phone: str, as_of: datetime, now: datetime) -> int:
    """Keep the learner's newest phone number; queue the messages that waited for it."""
    return remember_contacts(db, [(learner_id, phone, as_of)], now)


def remember_contacts(db, contacts: list[tuple[str, str, datetime]], now: datetime) -> int:
    """`remember_contact` for many (learner_id, phone, as_of) at once: one bulk write of the
    numbers, then one read for the messages waiting for any of them; return how many
    messages were queued."""
    bulk_write_once(db.contacts, [
        UpdateOne({"_id": learner_id, "$or": [{"as_of": {"$lte": as_of}}, {"as_of": None}]},
                  {"$set": {"phone": phone, "as_of": as_of, "touched_at": now}}, upsert=True)
        for learner_id, phone, as_of in contacts])
    # a duplicate key above: that contact holds a newer number (an older event arrived
    # late), which stands; the messages are released with whatever number is stored
    waiting = {message["learner_id"] for message in db.messages.find(
        {"learner_id": {"$in": list({learner_id for learner_id, _, _ in contacts})},
         "status": AWAITING_CONTACT}, projection={"learner_id": 1})}
    if not waiting:
        return 0
    phones = phones_of(db, list(waiting))
    return sum(_release(db, {"learner_id": learner_id}, phones[learner_id], now)
               for learner_id in waiting if learner_id in phones)


def record_report(messages, report, now: datetime) -> bool:
    """Apply a delivery report (providers.Report) once; False if no message matches it.

    Found by our id when the provider echoes it, else by the provider's id. A report of
    delivery wins over anything but itself (it may overtake the send's own answer, or come
    after reconciliation said `unknown`); a report of failure only changes a message that
    is still waiting for one (queued included: it may overtake the dispatcher's record).
    """
    if report.request_id:
        which = {"_id": report.request_id}
    elif report.provider_message_id:
        which = {"provider_message_id": report.provider_message_id}
    else:
        return False
    if report.status == PENDING:
        return messages.find_one(which, projection={"_id": 1}) is not None
    message = messages.find_one(which, projection=dict.fromkeys(OUTCOME_FIELDS, 1))
    if message is None:
        return False
    which = {"_id": message["_id"]}
    if report.status == REPORTED_DELIVERED:
        change = {"status": DELIVERED, "delivered_at": report.delivered_at or now}
        if report.provider_message_id:
            change["provider_message_id"] = report.provider_message_id
        messages.update_one({**which, "status": {"$ne": DELIVERED}},
                            with_outcome({"$set": change}, message, DELIVERED, now))
    else:
        messages.update_one(
            {**which, "status": {"$in": [ACCEPTED, UNKNOWN, QUEUED]}},
            with_outcome({"$set": {"status": UNDELIVERED,
                                   "last_error": f"report: {report.detail}"[:200],
                                   "reported_at": now}}, message, FAILED, now))
    return True


# what sms_outcome needs of a message
OUTCOME_FIELDS = ("template", "enrollment_id", "province_code", "commune_code",
                  "correlation_id")


def with_outcome(update: dict, message: dict, status: str, now: datetime) -> dict:
    """`update`, announcing that the message reached its end (sms_outcome, for reports) when
    it is about a learner in a commune; a sign-in code's SMS is about nobody's progress."""
    if not message.get("commune_code"):
        return update
    return set_events(update, [new_event("sms_outcome", {
        "message_id": message["_id"], "template": message["template"],
        "status": DELIVERED if status == DELIVERED else FAILED,
        "enrollment_id": message.get("enrollment_id"),
        "province_code": message.get("province_code"),
        "commune_code": message["commune_code"], "settled_at": now},
        message.get("correlation_id") or message["_id"])])
