"""An SMS's life appended, against a real SecantusDB and the gateway simulator: the message
record is written once, a send leaves an outcome and no queue entry, an entry that outlived
its outcome is not sent again, and old messages and outcomes are forgotten."""
from datetime import timedelta

import pytest
import requests

from hocvu.clock import utcnow
from services.notifications import domain, repository, templates
from services.notifications.dispatcher import DispatchLoop
from services.notifications.providers import SimulatorProvider
from tests.support.sms import Clock, local, sms_settings

pytestmark = pytest.mark.integration


def welcome(n: int) -> domain.Wanted:
    return domain.Wanted(templates.ENROLLMENT_CONFIRMED, f"enrollment_confirmed:enr-{n}",
                         f"lrn-{n}", f"enr-{n}", {"full_name": "Lò Thị Mai",
                                                  "course_title": "Kỹ năng số"}, f"corr-{n}",
                         {"province_code": "38", "commune_code": "14845"})


def dispatcher(db, gateway: str, clock: Clock) -> DispatchLoop:
    settings = sms_settings(SMS_GATEWAY_URL=gateway, SMS_SIMULATOR_RATE_PER_SECOND=10_000)
    return DispatchLoop(db.messages, SimulatorProvider(settings), settings, clock=clock)


def sent(gateway: str) -> list[str]:
    return [m["request_id"] for m in requests.get(
        f"{gateway}/v1/messages", params={"limit": 10_000}).json()["messages"]]


def test_a_message_is_written_once_and_its_life_appended(start_gateway, notifications_store):
    db, clock, gateway = notifications_store.db, Clock(local(2026, 12, 7, 8, 0)), start_gateway()
    db.contacts.insert_many([{"_id": f"lrn-{n}", "phone": f"+8491200{n:04d}"}
                             for n in range(3)])
    created = repository.create_many(db, [welcome(n) for n in range(3)], clock(), True)
    records = {m["_id"]: m for m in db.messages.find()}

    dispatcher(db, gateway, clock).run_once()

    assert {m["_id"]: m for m in db.messages.find()} == records  # never rewritten
    assert db.sms_queue.count_documents({}) == 0
    ids = [message["_id"] for message in created]
    assert sorted(sent(gateway)) == sorted(ids)
    assert {o["_id"] for o in db.sms_outcomes.find()} == {f"{i}:accepted" for i in ids}
    assert {m["status"] for m in repository.views(db, list(records.values()))} == {
        domain.ACCEPTED}

    # the same report twice, and a failure report after it: one delivered outcome, announced
    # once; the failure changes nothing
    report = {"source": "gateway", "status": domain.DELIVERED, "request_id": ids[0],
              "provider_message_id": None}
    repository.apply_reports(db.messages, [report, report], clock())
    repository.apply_reports(db.messages, [{**report, "status": domain.UNDELIVERED,
                                            "detail": "expired"}], clock())
    # a delivery is the top rank: recorded without reading the outcomes, so the same report
    # in a later batch is refused by its _id and announced no more
    repository.apply_reports(db.messages, [report], clock())
    delivered = db.sms_outcomes.find_one({"_id": f"{ids[0]}:delivered"})
    assert [e["data"]["status"] for e in delivered["_outbox"]] == ["delivered"]
    assert db.sms_outcomes.count_documents({"message_id": ids[0]}) == 2
    assert repository.view(db, ids[0])["status"] == domain.DELIVERED

    # a failure, then the delivery after all: both recorded, the delivery shown
    failed = {**report, "request_id": ids[1], "status": domain.FAILED, "detail": "busy"}
    repository.apply_reports(db.messages, [failed], clock())
    repository.apply_reports(db.messages, [{**failed, "status": domain.DELIVERED}], clock())
    assert {o["kind"] for o in db.sms_outcomes.find({"message_id": ids[1]})} == {
        domain.ACCEPTED, domain.GATEWAY_UNDELIVERED, domain.DELIVERED}  # the gateway's failure
    assert repository.view(db, ids[1])["status"] == domain.DELIVERED


def test_an_entry_that_outlived_its_outcome_is_not_sent_again(start_gateway,
                                                             notifications_store):
    """The process stopped after appending a round's outcomes and before deleting their
    entries: the next round finds the outcome and drops the entry."""
    db, clock, gateway = notifications_store.db, Clock(local(2026, 12, 7, 8, 0)), start_gateway()
    db.contacts.insert_one({"_id": "lrn-1", "phone": "+84912000001"})
    [message] = repository.create_many(db, [welcome(1)], clock(), True)
    entry = db.sms_queue.find_one({"_id": message["_id"]})
    loop = dispatcher(db, gateway, clock)
    loop.run_once()
    db.sms_queue.insert_one(entry)  # as if the delete had never happened

    loop.run_once()

    assert sent(gateway) == [message["_id"]]
    assert db.sms_queue.count_documents({}) == 0


def test_old_messages_and_their_outcomes_are_forgotten(notifications_store):
    db = notifications_store.db
    now = utcnow()
    old, recent = now - timedelta(days=400), now - timedelta(days=10)
    for n, written in ((1, old), (2, recent)):
        record = {"_id": f"m-{n}", "dedupe_key": f"m-{n}", "template": "enrollment_confirmed",
                  "learner_id": f"lrn-{n}", "to": "+84912000001", "created_at": written}
        db.messages.insert_one(record)
        repository.record(db, [(record, domain.Settlement(domain.ACCEPTED, {}))], written)
    repository.retain(notifications_store, timedelta(days=365))

    notifications_store.housekeeping.run_when_due(now)

    assert [m["_id"] for m in db.messages.find()] == ["m-2"]
    assert [o["_id"] for o in db.sms_outcomes.find()] == ["m-2:accepted"]
