"""Reporting's store: the retained facts, each enrollment's folded state, and the figures
derived from them.

    events          every consumed event, once (by event_id), reduced to its fact: the
                    retained stream a rebuild replays (domain.fact_of: no personal data)
    enrollments     one per enrollment: place, group, age band, the day of each step
    sms             one per SMS outcome (by message_id)
    commune_days    figures of a commune on a day, by group and age band
    commune_totals  a commune's figures summed over all days (the default table)
    province_days   a province's figures on a day (the province admin's trend)
    targets         a commune's target rate and adult population, set by a province admin

Derived documents are recomputed, never incremented: a commune is recomputed from its
enrollments and SMS (bounded by the commune index) after any of them changed, so a crash,
a duplicate or an out-of-order event can leave a figure late but never wrong.
"""
import logging

from pymongo import ASCENDING, UpdateOne

from hocvu.auth import Principal
from hocvu.http import NotFound
from hocvu.reference import communes as commune_register
from hocvu.store import insert_many_once
from services.reporting import domain

log = logging.getLogger(__name__)

DERIVED = ("enrollments", "sms", "commune_days", "commune_totals", "province_days")


def prepare(store) -> None:
    db = store.db
    store.ensure_collections("events", *DERIVED, "targets")
    db.events.create_index("received_at")
    db.enrollments.create_index("commune_code")
    db.sms.create_index("commune_code")
    db.commune_days.create_index([("commune_code", ASCENDING), ("day", ASCENDING)])
    db.commune_days.create_index([("province_code", ASCENDING), ("day", ASCENDING)])
    db.commune_totals.create_index("province_code")
    db.province_days.create_index([("province_code", ASCENDING), ("day", ASCENDING)])
    db.targets.create_index("province_code")
    db.targets.create_index("commune_code")


def record(db, events: list, received_at) -> tuple[list, set[str]]:
    """Keep the events' facts once, then fold them in: (the events kept before, the communes
    whose figures they change). The fold runs on a duplicate too: it is idempotent, and it
    completes a first delivery that failed half-way."""
    facts = [domain.fact_of(event.event_type, event.data) for event in events]
    kept_before = retain(db, events, facts, received_at)
    communes = apply_many(db, [(event.event_type, fact) for event, fact in zip(events, facts)])
    return kept_before, communes


def retain(db, events: list, facts: list[dict], received_at) -> list:
    """Keep each event's fact once, in one write; return the events kept before
    (redeliveries)."""
    kept_before = insert_many_once(db.events, [
        {"_id": event.event_id, "event_type": event.event_type,
         "occurred_at": event.occurred_at, "received_at": received_at, "fact": fact}
        for event, fact in zip(events, facts)])
    return [events[position] for position in sorted(kept_before)]


def apply(db, event_type: str, fact: dict) -> str | None:
    """Fold one fact into the store; return the commune whose figures it changes, if known
    yet."""
    return next(iter(apply_many(db, [(event_type, fact)])), None)


def apply_many(db, typed_facts: list[tuple[str, dict]]) -> set[str]:
    """Fold facts into the store, a bulk write per collection; return the communes whose
    figures they change, where known yet. Idempotent and order-free: applying a fact again,
    or after a later one, changes nothing more (so an unordered bulk write will do)."""
    communes = set()
    outcomes = [fact for event_type, fact in typed_facts if event_type == "sms_outcome"
                # a sign-in code or another SMS about no one's place counts nowhere
                and fact.get("commune_code")]
    kept_before = insert_many_once(db.sms, [{"_id": fact["message_id"], **fact}
                                            for fact in outcomes])
    for position in sorted(kept_before):
        # a message's second end: a delivery after all (reconciliation said `unknown`, which
        # counts as failed) wins, in either order; a failure after a delivery changes nothing
        if outcomes[position]["status"] == "delivered":
            db.sms.update_one({"_id": outcomes[position]["message_id"], "status": "failed"},
                              {"$set": outcomes[position]})
    communes |= {fact["commune_code"] for fact in outcomes}
    changes = [(fact["enrollment_id"], domain.enrollment_change(event_type, fact))
               for event_type, fact in typed_facts if event_type != "sms_outcome"]
    # an enrollment's first fact is inserted (an upsert costs the embedded store about four
    # inserts); a fact of one that exists, or of one another fact of the batch or another
    # instance inserted first, is folded in by update: $min and $set in any order agree
    exists = insert_many_once(db.enrollments, [domain.created_by(enrollment_id, change)
                                               for enrollment_id, change in changes])
    if exists:
        db.enrollments.bulk_write([UpdateOne({"_id": changes[position][0]},
                                             changes[position][1])
                                   for position in sorted(exists)], ordered=False)
    unplaced = []
    for event_type, fact in typed_facts:
        if event_type == "sms_outcome":
            continue
        if fact.get("commune_code"):
            communes.add(fact["commune_code"])
        else:
            unplaced.append(fact["enrollment_id"])
    if unplaced:
        # a lesson completed before its enrollment is known: counted when learner_enrolled
        # comes
        communes |= {placed["commune_code"] for placed in db.enrollments.find(
            {"_id": {"$in": unplaced}}, {"commune_code": 1}) if placed.get("commune_code")}
    return communes


def recompute_commune(db, commune_code: str, active_days: int) -> set[tuple[str, str]]:
    """Write the commune's figures from its facts; return the (province, day) pairs whose
    figures changed."""
    enrollments = list(db.enrollments.find({"commune_code": commune_code}))
    sms = list(db.sms.find({"commune_code": commune_code}))
    province = next((d["province_code"] for d in [*enrollments, *sms]
                     if d.get("province_code")), None)
    figures = domain.commune_figures(enrollments, sms, active_days)
    stored = {doc["day"]: doc for doc in db.commune_days.find({"commune_code": commune_code})}
    touched = set()
    for day, by in figures.items():
        old = stored.get(day)
        if not old or old["by"] != by or old.get("province_code") != province:
            db.commune_days.replace_one({"_id": f"{commune_code}|{day}"}, {
                "province_code": province, "commune_code": commune_code, "day": day, "by": by},
                upsert=True)
            touched.add((province, day))
    for day in set(stored) - set(figures):
        db.commune_days.delete_one({"_id": f"{commune_code}|{day}"})
        touched.add((stored[day].get("province_code"), day))
    totals: dict = {}
    for by in figures.values():
        for key, counts in by.items():
            domain.add(totals.setdefault(key, {}), counts, domain.COUNTED)
    previous = db.commune_totals.find_one({"_id": commune_code}) or {}
    if previous.get("by") != totals or previous.get("province_code") != province:
        db.commune_totals.replace_one({"_id": commune_code}, {
            "province_code": province, "commune_code": commune_code, "by": totals}, upsert=True)
    return touched


def recompute_province_day(db, province_code: str, day: str) -> None:
    by: dict = {}
    for doc in db.commune_days.find({"province_code": province_code, "day": day}):
        for key, counts in doc["by"].items():
            domain.add(by.setdefault(key, {}), counts)
    if by:
        db.province_days.replace_one({"_id": f"{province_code}|{day}"}, {
            "province_code": province_code, "day": day, "by": by}, upsert=True)
    else:
        db.province_days.delete_one({"_id": f"{province_code}|{day}"})


def known_communes(db) -> list[str]:
    """Every commune with figures: the sweep's round, read from one document per commune."""
    return sorted(db.commune_totals.distinct("_id"))


def communes_with_facts(db) -> list[str]:
    """Every commune a retained fact names, figures or not: read once when a process starts
    (and by the rebuild) to cover a commune whose first figures a crash prevented; it reads
    every fact, so never on the event path."""
    return sorted({*db.enrollments.distinct("commune_code"), *db.sms.distinct("commune_code"),
                   *known_communes(db)} - {None})


def rebuild(db, active_days: int) -> int:
    """Forget every derived document and replay the retained facts; return how many."""
    for name in DERIVED:
        db[name].delete_many({})
    replayed = 0
    for event in db.events.find({}).sort("received_at", ASCENDING):
        apply(db, event["event_type"], event["fact"])
        replayed += 1
    refresh(db, communes_with_facts(db), active_days)
    return replayed


def refresh(db, communes, active_days: int) -> None:
    touched = set()
    for commune in communes:
        touched |= recompute_commune(db, commune, active_days)
    for province, day in sorted(touched, key=lambda pair: (pair[0] or "", pair[1])):
        if province:
            recompute_province_day(db, province, day)


def set_target(db, caller: Principal, commune_code: str, target: dict, now) -> dict:
    """A province admin sets a commune's target: a commune of their province, else 404."""
    commune = commune_register().get(commune_code)
    if commune is None or commune.province_code != caller.province:
        raise NotFound(f"no commune {commune_code} in province {caller.province}")
    document = {"province_code": commune.province_code, "commune_code": commune_code,
                "target_rate": target["target_rate"],
                "adult_population": target["adult_population"], "set_at": now,
                "set_by": caller.subject}
    db.targets.replace_one({"_id": commune_code}, document, upsert=True)
    return document
