"""Notifications' store: the learners' contacts and the messages sent to them.

`prepare` makes the collections and indexes of the whole service, the reminder planner's
too. An SMS is written once and never rewritten (docs/sms-gateway.md, "Where a message
lives"):

- `messages`: its record, inserted once per dedupe key, with the indexes the lists need;
- `sms_waiting`: an entry while the learner's number is unknown;
- `sms_queue`: an entry while it waits for the dispatcher, read by lane and due time, and
  deleted once the message is sent or given up; the only entry ever updated (a retry, a
  hold);
- `sms_outcomes`: what happened to it after (accepted, delivered, failed...), appended, one
  of each kind at most; an end about a learner carries its sms_outcome event.

The status a learner or staff sees is derived from those (domain.derived). Every outcome
goes through `record`, whoever writes it (the dispatcher, delivery reports in batches, the
reconciler): one rule (domain.RANK) decides whether it changes the status, and so whether
it is announced.
"""
import uuid
from datetime import datetime, timedelta

from pymongo import ASCENDING, UpdateOne

from hocvu import metrics, pagination
from hocvu.clock import utcnow
from hocvu.events import new_event
from hocvu.outbox import with_events
from hocvu.retention import RetentionRule
from hocvu.store import Store, drop_indexes_if_present, insert_many_once
from services.notifications import domain, policy, sms, templates
from services.notifications.domain import (
    ACCEPTED, AWAITING_CONTACT, DELIVERED, FAILED, OUTCOMES, QUEUE, QUEUED, RECHECKS,
    SCOPE_FIELDS, WAITING, Settlement, Wanted, lane_of)

_MIGRATED = "legacy-statuses-moved"  # a marker in sms_reconciler: prepare's move is done


def prepare(store: Store) -> None:
    db = store.db
    store.ensure_collections("messages", "contacts", "reminders", "course_lessons",
                             "sms_optouts", QUEUE, WAITING, OUTCOMES, RECHECKS, "sms_reconciler")
    # the daily caps' counters of releases before: the caps now count accepted outcomes
    db.drop_collection("sms_daily_counts")
    db.messages.create_index("dedupe_key", unique=True)
    db.messages.create_index([("commune_code", ASCENDING), ("created_at", ASCENDING)])
    # a province admin's pages (scope: the province only); without it each page read every
    # message (tests/e2e/test_store_commands.py)
    db.messages.create_index([("province_code", ASCENDING), ("created_at", ASCENDING)])
    db.messages.create_index([("learner_subject", ASCENDING), ("created_at", ASCENDING)])
    # a learner's scope, for their SMS preferences (learner_scope)
    db.messages.create_index([("learner_id", ASCENDING), ("created_at", ASCENDING)])
    # the dispatcher reads each lane's due entries (due.py) as one range
    db[QUEUE].create_index([("lane", ASCENDING), ("next_attempt_at", ASCENDING)])
    db[WAITING].create_index("learner_id")  # released when the number comes
    db[WAITING].create_index("created_at")  # given up after SMS_CONTACT_TIMEOUT_SECONDS
    # reports that name only the provider's id (it is on the `accepted` outcome)
    db[OUTCOMES].create_index("provider_message_id")
    # what each number was sent today, for the daily caps (policy.py): only accepted
    # outcomes carry the number
    db[OUTCOMES].create_index([("to", ASCENDING), ("at", ASCENDING)])
    # the reconciler's walk over accepted messages, and the failures the ops command lists
    db[OUTCOMES].create_index([("kind", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)])
    db[RECHECKS].create_index("next_check_at")
    # the reminder planner's claim of due enrollments (reminders.py, ReminderPlanner)
    db.reminders.create_index("next_reminder_at")
    drop_indexes_if_present(db.reminders, "status_1_next_reminder_at_1")
    _move_legacy_statuses(db)
    drop_indexes_if_present(db.messages, "lease_owner_1", "status_1_created_at_1",
                            "enrollment_id_1", "status_1_next_attempt_at_1",
                            "status_1_lane_1_next_attempt_at_1", "status_1_accepted_at_1",
                            "provider_message_id_1")


def retain(store: Store, keep: timedelta) -> None:
    """Forget messages and their outcomes `keep` after they were written, by the hour, each
    through one range of an index: the outcomes' of each kind by time (a `$in` of the kinds
    beside the range made the embedded store read every outcome, two a message)."""
    store.expire("messages", "created_at", keep)
    for kind in domain.OUTCOME_KINDS:
        store.housekeeping.add(RetentionRule(
            store.db[OUTCOMES], keep=keep,
            expired=lambda cutoff, kind=kind: {"kind": kind, "at": {"$lt": cutoff}}))


def _move_legacy_statuses(db) -> None:
    """Messages of releases that rewrote a `status` on the message: those still waiting get
    their entry, those accepted their outcome, and lose the stored status (which would
    otherwise say `queued` after the send). Settled ones keep theirs; it is what their view
    shows. Once done, a marker says so (the status index it reads through is then gone)."""
    state = db.sms_reconciler
    if state.find_one({"_id": _MIGRATED}):
        return
    for status, target in ((QUEUED, QUEUE), (AWAITING_CONTACT, WAITING)):
        found = list(db.messages.find({"status": status}))
        insert_many_once(db[target], [_entry(message, message.get("next_attempt_at")
                                             or message["created_at"]) for message in found])
        _forget_status(db, found)
    accepted = list(db.messages.find({"status": ACCEPTED}))
    insert_many_once(db[OUTCOMES], [_outcome(message, Settlement(ACCEPTED, {
        key: message.get(key) for key in ("provider", "provider_message_id", "attempts",
                                          "accepted_at", "to")}), message["accepted_at"])
        for message in accepted])
    _forget_status(db, accepted)
    state.update_one({"_id": _MIGRATED}, {"$set": {"at": utcnow()}},
                     upsert=True)


def _forget_status(db, messages: list[dict]) -> None:
    if messages:
        db.messages.update_many({"_id": {"$in": [message["_id"] for message in messages]}},
                                {"$unset": {"status": ""}})


def messages_page(db, caller, args: dict) -> dict:
    """One page of the messages `caller` may see (their own, or their communes'), each as
    its outcomes and entries say it is now."""
    page = pagination.scoped_page(db.messages, caller, args, ("learner_id", "enrollment_id"),
                                  "created_at")
    return {**page, "items": views(db, page["items"])}


def views(db, messages: list[dict]) -> list[dict]:
    """These messages as a learner or staff reads them (domain.derived), in three reads
    whatever their number."""
    ids = [message["_id"] for message in messages]
    outcomes = outcomes_of(db, ids)
    queued = {entry["_id"]: entry for entry in db[QUEUE].find({"_id": {"$in": ids}})}
    waiting = {entry["_id"]: entry for entry in db[WAITING].find(
        {"_id": {"$in": ids}}, projection={"_id": 1})}
    return [domain.derived(message, outcomes.get(message["_id"], []),
                           queued.get(message["_id"]), waiting.get(message["_id"]))
            for message in messages]


def view(db, message_id: str) -> dict | None:
    """One message as it is now (views), or None if there is none."""
    message = db.messages.find_one({"_id": message_id})
    return views(db, [message])[0] if message else None


def outcomes_of(db, message_ids: list[str],
                kinds=domain.OUTCOME_KINDS) -> dict[str, list[dict]]:
    """The outcomes of these messages (of these `kinds` only, if given), by message id: one
    read of their possible _ids."""
    found: dict[str, list[dict]] = {}
    ids = domain.outcome_ids(message_ids, kinds)
    if ids:
        for outcome in db[OUTCOMES].find({"_id": {"$in": ids}}):
            found.setdefault(outcome["message_id"], []).append(outcome)
    return found


def _outcomes_above(db, settled: list[tuple[dict, Settlement]]) -> dict[str, list[dict]]:
    """What `record` must know of these messages: their outcomes that rank above the lowest
    it is to record. Only those can keep an outcome from changing a status, and one of the
    same kind is refused by its _id; so a round of deliveries, the top rank and nearly every
    report, needs no read at all (each message's seven possible _ids were read before)."""
    lowest = min(domain.RANK[settlement.kind] for _, settlement in settled)
    above = [kind for kind, rank in domain.RANK.items() if rank > lowest]
    return outcomes_of(db, list({message["_id"] for message, _ in settled}), above)


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
    """Create the messages `wanted` asks for, with one read of the contacts; for each, the
    message (its `to` set once it is queued), or None if its dedupe_key had one already (a
    redelivery)."""
    learner_ids = list({want.learner_id for want in wanted})
    phones = phones_of(db, learner_ids)
    return create_documents(db, [_message(want, phones.get(want.learner_id), now, unaccented)
                                 for want in wanted], now)


def create_documents(db, documents: list[dict], now: datetime) -> list[dict | None]:
    """Insert these message records and give each its entry: queued if it has a number,
    waiting for one otherwise. For a record that exists already (a redelivery), None; and
    since its first delivery may have stopped (the store away) between the record and its
    entry, or before looking for the number, the entry is made now unless the message has
    one or an outcome already, and a waiting one looks for the number again (a few reads,
    on redelivery only)."""
    existing = insert_many_once(db.messages, documents)
    created = [None if position in existing else document
               for position, document in enumerate(documents)]
    fresh = [document for document in created if document]
    still_waiting = []
    if existing:
        lost, still_waiting = _redelivered(db, [documents[position]["dedupe_key"]
                                                for position in existing])
        fresh += lost
    insert_many_once(db[QUEUE], [_entry(document, now) for document in fresh
                                 if document.get("to")])
    waiting = [document for document in fresh if not document.get("to")]
    waiting_entries = [_entry(document, now) for document in waiting]
    insert_many_once(db[WAITING], waiting_entries)
    entries = waiting_entries + still_waiting
    if entries:
        # the number may have come between our read and our write: remember_contacts writes
        # the number and then looks for waiting entries, we write the entry and then look for
        # the number; whichever comes second sees the other's write
        phones = phones_of(db, list({entry["learner_id"] for entry in entries}))
        released = _release(db, [entry for entry in entries if entry["learner_id"] in phones],
                            phones, now)
        for document in waiting:
            if document["_id"] in released:
                document["to"] = phones[document["learner_id"]]
    return created


def _redelivered(db, dedupe_keys: list[str]) -> tuple[list[dict], list[dict]]:
    """Of the stored records of these keys: those with neither an entry nor an outcome, and
    the waiting entries of the others."""
    records = list(db.messages.find({"dedupe_key": {"$in": dedupe_keys}}))
    ids = [record["_id"] for record in records]
    settled = set(outcomes_of(db, ids))
    queued = {entry["_id"] for entry in db[QUEUE].find({"_id": {"$in": ids}},
                                                       projection={"_id": 1})}
    waiting = list(db[WAITING].find({"_id": {"$in": ids}}))
    entered = queued | {entry["_id"] for entry in waiting}
    lost = [record for record in records if record["_id"] not in settled | entered
            and "status" not in record]  # a record of an older release is settled as it was
    return lost, waiting


def _message(want: Wanted, phone: str | None, now: datetime, unaccented: bool) -> dict:
    text = sms.compose(templates.render(want.template, **want.values), unaccented)
    return {
        "_id": str(uuid.uuid4()), "dedupe_key": want.dedupe_key, "template": want.template,
        "learner_id": want.learner_id, "enrollment_id": want.enrollment_id,
        "sms_class": policy.class_of(want.template), "lane": lane_of(want.template),
        "to": phone, "text": text.text, "encoding": text.encoding, "segments": text.segments,
        "created_at": now, "attempts": 0, "correlation_id": want.correlation_id,
        **{key: (want.scope or {}).get(key) for key in SCOPE_FIELDS},
    }


# what the dispatcher needs of a message, and what its outcomes announce, kept on its entry
_ENTRY_FIELDS = ("template", "learner_id", "enrollment_id", "sms_class", "lane", "to", "text",
                 "encoding", "segments", "created_at", "correlation_id", "sealed_code",
                 "expires_at", *SCOPE_FIELDS)


def _entry(message: dict, due: datetime) -> dict:
    """A message's entry in the queue (or in waiting): everything its sending needs."""
    return {"_id": message["_id"], **{key: message[key] for key in _ENTRY_FIELDS
                                      if key in message},
            "attempts": message.get("attempts", 0), "next_attempt_at": due}


def bring_confirmations_forward(db, certified: list[dict], now: datetime) -> int:
    """The enrollment confirmations of these certificates' enrollments that still wait (for
    the number, or behind a launch morning's backlog) move to the certificates' lane, due
    now: written before the certificate messages, so they come first in that lane and the
    dispatcher sends a learner's messages of one round in order (dispatcher.py). No learner
    gets the welcome after "congratulations", and none waits behind the backlog for it."""
    keys = [domain.enrollment_confirmation_key(data["enrollment_id"]) for data in certified]
    ids = [record["_id"] for record in db.messages.find(
        {"dedupe_key": {"$in": keys}}, projection={"_id": 1})]
    if not ids:
        return 0
    change = {"$set": {"lane": lane_of(templates.CERTIFICATE_ISSUED), "next_attempt_at": now}}
    return sum(db[target].update_many({"_id": {"$in": ids}}, change).modified_count
               for target in (QUEUE, WAITING))


def phones_of(db, learner_ids: list[str]) -> dict[str, str]:
    """The known numbers of these learners, by learner id."""
    found = db.contacts.find({"_id": {"$in": learner_ids}}, projection={"phone": 1})
    return {contact["_id"]: contact["phone"] for contact in found if contact.get("phone")}


def _release(db, entries: list[dict], phones: dict[str, str], now: datetime) -> set[str]:
    """Queue these waiting entries with their learners' numbers; the ids released. Two
    releases of one entry queue it once (its _id); the dispatcher skips an entry whose
    message has an outcome already, should one be queued again after it went."""
    if not entries:
        return set()
    insert_many_once(db[QUEUE], [{**entry, "to": phones[entry["learner_id"]],
                                  "next_attempt_at": now} for entry in entries])
    ids = [entry["_id"] for entry in entries]
    db[WAITING].delete_many({"_id": {"$in": ids}})
    return set(ids)


def remember_contact(db, learner_id: str, phone: str, as_of: datetime, now: datetime) -> int:
    """Keep the learner's newest phone number; queue the messages that waited for it."""
    return remember_contacts(db, [(learner_id, phone, as_of)], now)


def remember_contacts(db, contacts: list[tuple[str, str, datetime]], now: datetime) -> int:
    """`remember_contact` for many (learner_id, phone, as_of) at once: one bulk write of the
    numbers, then one read of the entries waiting for any of them; return how many messages
    were queued."""
    # a learner's first number is inserted (a quarter of what an upsert costs the embedded
    # store); one known already is replaced only by a newer one: "not newer" rather than $or
    # (older, or none), which the embedded store answers by reading every contact
    known = insert_many_once(db.contacts, [
        {"_id": learner_id, "phone": phone, "as_of": as_of, "touched_at": now}
        for learner_id, phone, as_of in contacts])
    if known:
        db.contacts.bulk_write([
            UpdateOne({"_id": learner_id, "as_of": {"$not": {"$gt": as_of}}},
                      {"$set": {"phone": phone, "as_of": as_of, "touched_at": now}})
            for learner_id, phone, as_of in (contacts[position] for position in sorted(known))],
            ordered=True)
    # a contact left as it was holds a newer number (an older event arrived late), which
    # stands; the messages are released with whatever number is stored
    waiting = list(db[WAITING].find(
        {"learner_id": {"$in": list({learner_id for learner_id, _, _ in contacts})}}))
    if not waiting:
        return 0
    phones = phones_of(db, list({entry["learner_id"] for entry in waiting}))
    return len(_release(db, [entry for entry in waiting if entry["learner_id"] in phones],
                        phones, now))


def apply_reports(messages, reports: list[dict], now: datetime) -> list[int]:
    """Record what a batch of delivery reports (contracts.SmsReportReceived's data) says, in
    at most four reads and one insert; return the positions of the reports that named no
    message we know (for the caller to log: a provider's report for another system's
    message, forgotten)."""
    db = messages.database
    theirs = [report["provider_message_id"] for report in reports
              if not report.get("request_id")]
    by_theirs = {outcome["provider_message_id"]: outcome["message_id"]
                 for outcome in db[OUTCOMES].find({"provider_message_id": {"$in": theirs}},
                                                  projection={"message_id": 1,
                                                              "provider_message_id": 1})
                 } if theirs else {}
    named = [report.get("request_id") or by_theirs.get(report["provider_message_id"])
             for report in reports]
    found = {message["_id"]: message for message in messages.find(
        {"_id": {"$in": [name for name in named if name]}},
        projection=dict.fromkeys(OUTCOME_FIELDS + ("status",), 1))}
    unknown = [position for position, name in enumerate(named) if name not in found]
    # in the order received; the ranks make the order of no consequence to the status
    record(db, [(found[name], domain.report_settlement(report, now))
                for report, name in zip(reports, named) if name in found], now)
    return unknown


def record(db, settled: list[tuple[dict, Settlement]], now: datetime,
           known: dict[str, list[dict]] | None = None) -> list[dict]:
    """Append the outcomes that change a message's status (domain.RANK), each once: what
    changes nothing (a repeated report, a failure report after the delivery) is left out.
    `settled` pairs a message (read with OUTCOME_FIELDS, or its queue entry) with what
    happened; `known`: the outcomes of those messages, if the caller read them (else one
    read here). An end about a learner carries its sms_outcome event. Returns the outcomes
    written."""
    if not settled:
        return []
    if known is None:
        known = _outcomes_above(db, settled)
    written = []
    for message, settlement in settled:
        had = known.setdefault(message["_id"], [])
        if not domain.raises(message, had, settlement.kind):
            continue
        outcome = _outcome(message, settlement, now)
        had.append(outcome)
        written.append(outcome)
    refused = insert_many_once(db[OUTCOMES], written)
    written = [outcome for position, outcome in enumerate(written) if position not in refused]
    for outcome in written:
        metrics.sms_outcome("notifications", domain.shown_status(outcome["kind"]))
    return written


def _outcome(message: dict, settlement: Settlement, now: datetime) -> dict:
    fields = {key: value for key, value in settlement.fields.items() if value is not None}
    outcome = {"_id": domain.outcome_id(message["_id"], settlement.kind),
               "message_id": message["_id"], "kind": settlement.kind, "at": now,
               "fields": fields}
    if fields.get("provider_message_id"):
        outcome["provider_message_id"] = fields["provider_message_id"]
    if "to" in fields:  # the number it went to: personal data, kept where a number is kept
        outcome["to"] = fields.pop("to")
    status = domain.shown_status(settlement.kind)
    if status not in domain.ANNOUNCED or not message.get("commune_code"):
        # a sign-in code's SMS is about nobody's progress
        return outcome
    return with_events(outcome, [new_event("sms_outcome", {
        "message_id": message["_id"], "template": message["template"],
        "status": DELIVERED if status == DELIVERED else FAILED,
        "enrollment_id": message.get("enrollment_id"),
        "province_code": message.get("province_code"),
        "commune_code": message["commune_code"], "settled_at": now},
        message.get("correlation_id") or message["_id"])])


# what sms_outcome needs of a message
OUTCOME_FIELDS = ("template", "enrollment_id", "province_code", "commune_code",
                  "correlation_id")
