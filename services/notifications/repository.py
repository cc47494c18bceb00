"""Notifications' store: the learners' contacts and the messages sent to them.

`prepare` makes the collections and indexes of the whole service, the reminder planner's
too. A message is written once per dedupe key, waits for its learner's number, and is
settled by one function, `settle`, whoever settles it (delivery reports in batches, the
dispatcher, the reconciler; domain.py says which status may replace which); when it is
about a learner in a commune, its end is announced with the write that records it
(sms_outcome).
"""
import uuid
from datetime import datetime

from pymongo import ASCENDING, UpdateOne

from hocvu import pagination
from hocvu.events import new_event
from hocvu.leases import NEVER
from hocvu.outbox import set_events
from hocvu.store import Store, bulk_write_once, drop_indexes_if_present, insert_many_once
from services.notifications import domain, policy, sms, templates
from services.notifications.domain import (
    AWAITING_CONTACT, DELIVERED, FAILED, LANES, QUEUED, SCOPE_FIELDS, Wanted, lane_of)


def prepare(store: Store) -> None:
    db = store.db
    store.ensure_collections("messages", "contacts", "reminders", "sms_optouts",
                             "sms_daily_counts")
    db.messages.create_index("dedupe_key", unique=True)
    db.messages.create_index("provider_message_id")  # reports that name only the provider's id
    # the dispatcher reads each lane's due messages (due.py), the reconciler and the gauges
    # each lane's waiting ones: always a status, a lane and a range of next_attempt_at
    db.messages.create_index([("status", ASCENDING), ("lane", ASCENDING),
                              ("next_attempt_at", ASCENDING)])
    # messages of releases before the lanes: every waiting one joins the lane of its kind
    # (`lane: None` matches a missing lane through the index)
    for template, lane in LANES.items():
        db.messages.update_many({"status": {"$in": [AWAITING_CONTACT, QUEUED]}, "lane": None,
                                 "template": template}, {"$set": {"lane": lane}})
    db.messages.create_index([("status", ASCENDING), ("accepted_at", ASCENDING)])
    db.messages.create_index([("commune_code", ASCENDING), ("created_at", ASCENDING)])
    # a province admin's pages (scope: the province only); without it each page read every
    # message (tests/e2e/test_store_commands.py)
    db.messages.create_index([("province_code", ASCENDING), ("created_at", ASCENDING)])
    db.messages.create_index([("learner_subject", ASCENDING), ("created_at", ASCENDING)])
    # a learner's scope, for their SMS preferences (learner_scope), and their waiting messages
    db.messages.create_index([("learner_id", ASCENDING), ("created_at", ASCENDING)])
    # the reminder planner's claim of due enrollments (reminders.py)
    db.reminders.create_index([("status", ASCENDING), ("next_reminder_at", ASCENDING)])
    # every write of a message rewrites all its index entries, and a message is written three
    # or four times: a page filtered by enrollment reads within the caller's scope (commune
    # or subject) instead, and messages awaiting a contact are found by next_attempt_at,
    # their creation time (docs/performance.md)
    drop_indexes_if_present(db.messages, "lease_owner_1", "status_1_created_at_1",
                            "enrollment_id_1", "status_1_next_attempt_at_1")


def messages_page(db, caller, args: dict) -> dict:
    """One page of the messages `caller` may see (their own, or their communes')."""
    return pagination.scoped_page(db.messages, caller, args, ("learner_id", "enrollment_id"),
                                  "created_at")


def learner_scope(db, learner_id: str) -> dict | None:
    """Who may act for the learner, known from their messages; None if they have none."""
    return db.messages.find_one({"learner_id": learner_id},
                                projection=dict.fromkeys(SCOPE_FIELDS, 1))


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
    if existing:
        # a redelivery: its first delivery may have written the message and stopped (the
        # store away) before looking for the number, after remember_contact had looked for
        # the message; so those still waiting are looked at again (one read, on redelivery
        # only), or they would wait for a number that came
        waiting += list(db.messages.find(
            {"dedupe_key": {"$in": [documents[position]["dedupe_key"] for position in existing]},
             "status": AWAITING_CONTACT}, projection={"learner_id": 1}))
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
    text = sms.compose(templates.render(want.template, **want.values), unaccented)
    return {
        "_id": str(uuid.uuid4()), "dedupe_key": want.dedupe_key, "template": want.template,
        "learner_id": want.learner_id, "enrollment_id": want.enrollment_id,
        "sms_class": policy.class_of(want.template), "lane": lane_of(want.template),
        "to": phone,
        "text": text.text, "encoding": text.encoding, "segments": text.segments,
        "status": QUEUED if phone else AWAITING_CONTACT,
        "created_at": now, "attempts": 0, "next_attempt_at": now, "lease_until": NEVER,
        "correlation_id": want.correlation_id,
        **{key: (want.scope or {}).get(key) for key in SCOPE_FIELDS},
    }


def bring_confirmations_forward(db, certified: list[dict], now: datetime) -> int:
    """The enrollment confirmations of these certificates' enrollments that still wait (for
    the number, or behind a launch morning's backlog) move to the certificates' lane, due
    now: written before the certificate messages, so they come first in that lane and the
    dispatcher sends a learner's messages of one round in order (dispatcher.py). No learner
    gets the welcome after "congratulations", and none waits behind the backlog for it."""
    return db.messages.update_many(
        {"learner_id": {"$in": list({data["learner_id"] for data in certified})},
         "enrollment_id": {"$in": [data["enrollment_id"] for data in certified]},
         "template": templates.ENROLLMENT_CONFIRMED,
         "status": {"$in": [AWAITING_CONTACT, QUEUED]}},
        {"$set": {"lane": lane_of(templates.CERTIFICATE_ISSUED), "next_attempt_at": now}}
    ).modified_count


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
        # "not newer" rather than $or (older, or none): the embedded store answers a top-level
        # $or by reading every contact (536 ms an update at 20,000 contacts, 0.9 ms so)
        UpdateOne({"_id": learner_id, "as_of": {"$not": {"$gt": as_of}}},
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


def apply_reports(messages, reports: list[dict], now: datetime) -> list[int]:
    """Settle the messages a batch of delivery reports (contracts.SmsReportReceived's data)
    name, in two reads and one bulk write; return the positions of the reports that named no
    message we know (for the caller to log: a provider's report for another system's
    message, forgotten)."""
    wanted = dict.fromkeys(OUTCOME_FIELDS + ("status", "provider_message_id"), 1)
    ids = [report["request_id"] for report in reports if report.get("request_id")]
    by_id = {message["_id"]: message for message in messages.find(
        {"_id": {"$in": ids}}, projection=wanted)} if ids else {}
    theirs = [report["provider_message_id"] for report in reports
              if not report.get("request_id")]
    by_theirs = {message["provider_message_id"]: message for message in messages.find(
        {"provider_message_id": {"$in": theirs}}, projection=wanted)} if theirs else {}
    changes, unknown = [], []
    for position, report in enumerate(reports):
        message = (by_id.get(report["request_id"]) if report.get("request_id") else
                   by_theirs.get(report["provider_message_id"]))
        if message is None:
            unknown.append(position)
            continue
        changes.append(settle(message, domain.report_settlement(report, now), now))
    if changes:
        # in the order received: a later report about one message is applied after an
        # earlier one (a failure, then the delivery after all)
        messages.bulk_write(changes, ordered=True)
    return unknown


def settle(message: dict, settlement: domain.Settlement, now: datetime) -> UpdateOne:
    """The one write that changes a message's status to a final one or to `accepted`, from
    a status the settlement replaces; reaching an end about a learner, it announces
    sms_outcome in the same write (read `message` with OUTCOME_FIELDS)."""
    update = {"$set": {"status": settlement.status, **settlement.fields}}
    if settlement.status in domain.ANNOUNCED:
        update = with_outcome(update, message, settlement.status, now)
    return UpdateOne({"_id": message["_id"], "status": {"$in": list(settlement.replaces)}},
                     update)


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
