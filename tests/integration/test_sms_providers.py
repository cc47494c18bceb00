"""Each provider adapter against the gateway simulator in that provider's mode: success,
the error paths, 429 with both forms of Retry-After, failover, and reconciliation."""
from collections import Counter
from datetime import timedelta

import pytest
import requests

from hocvu.clock import utcnow
from hocvu_tools.devstack.processes import free_port
from services.notifications import domain, providers, reconcile, repository
from services.notifications.providers import (
    ACCEPTED, DELIVERED, PENDING, REJECTED, RETRY, EsmsProvider, SimulatorProvider,
    SmsRequest, SpeedSmsProvider)
from tests.support.sms import Clock, sms_settings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PHONE = "+84912345678"


def esms_config(url, **extra):
    return {"SMS_ESMS_URL": url, "SMS_ESMS_API_KEY": "test-api-key",
            "SMS_ESMS_SECRET_KEY": "test-secret-key", **extra}


def speedsms_config(url, **extra):
    return {"SMS_SPEEDSMS_URL": url, "SMS_SPEEDSMS_ACCESS_TOKEN": "test-access-token", **extra}


def esms_provider(url, **extra):
    return EsmsProvider(sms_settings(**esms_config(url, **extra)))


def speedsms_provider(url, **extra):
    return SpeedSmsProvider(sms_settings(**speedsms_config(url, **extra)))


def sms(request_id, to=PHONE, text="Chao ban, hoc tiep nhe", encoding="GSM7"):
    return SmsRequest(request_id, to, text, encoding, "HOCVUSO")


def received(gateway):
    return requests.get(f"{gateway}/v1/messages").json()["messages"]


def faults(gateway, **settings):
    requests.post(f"{gateway}/v1/admin/faults", json=settings).raise_for_status()


def test_esms_sends_accented_and_unaccented_and_answers_a_status_query(start_gateway):
    gateway = start_gateway("--mode", "esms")
    esms = esms_provider(gateway)

    plain = esms.send(sms("m-1"))
    accented = esms.send(sms("m-2", text="Chào bạn, học tiếp nhé", encoding="UCS2"))
    assert plain.outcome == accented.outcome == ACCEPTED
    assert plain.provider_message_id and plain.provider_message_id != accented.provider_message_id
    first, second = received(gateway)
    assert (first["to"], first["brandname"], first["encoding"]) == ("84912345678", "HOCVUSO", "GSM7")
    assert (second["request_id"], second["encoding"]) == ("m-2", "UCS2")

    # the same RequestId again (a retry after a lost answer): taken once, treated as accepted
    assert esms.send(sms("m-1")).outcome == ACCEPTED
    assert len(received(gateway)) == 2

    assert wait_for(lambda: esms.query_status(plain.provider_message_id) == DELIVERED,
                    what="eSMS status: delivered")


def test_esms_error_paths(start_gateway):
    gateway = start_gateway("--mode", "esms")
    esms = esms_provider(gateway)

    wrong_keys = esms_provider(gateway, SMS_ESMS_SECRET_KEY="stale").send(sms("e-1"))
    assert wrong_keys.outcome == RETRY and "101" in wrong_keys.error  # account: retry, fail over
    bad_number = esms.send(sms("e-2", to="+84123"))
    assert bad_number.outcome == REJECTED and "108" in bad_number.error
    accents_without_unicode = esms.send(sms("e-3", text="Chào bạn", encoding="GSM7"))
    assert accents_without_unicode.outcome == REJECTED

    faults(gateway, fail_rate=1)
    outage = esms.send(sms("e-4"))
    assert outage.outcome == RETRY and "503" in outage.error
    faults(gateway, fail_rate=0)

    unreachable = esms_provider(f"http://127.0.0.1:{free_port()}").send(sms("e-5"))
    assert unreachable.outcome == RETRY and "unreachable" in unreachable.error
    assert received(gateway) == []


@pytest.mark.parametrize("form", ["seconds", "http-date"])
@pytest.mark.parametrize("mode", ["simulator", "esms", "speedsms"])
def test_429_is_retried_after_the_time_asked_in_either_form(start_gateway, mode, form):
    gateway = start_gateway("--mode", mode, "--rate-limit-per-minute", "0",
                            "--retry-after-format", form)
    adapter = {"simulator": lambda: SimulatorProvider(sms_settings(SMS_GATEWAY_URL=gateway)),
               "esms": lambda: esms_provider(gateway),
               "speedsms": lambda: speedsms_provider(gateway)}[mode]()

    limited = adapter.send(sms("r-1"))

    assert limited.outcome == RETRY and "429" in limited.error
    # the simulator asks for the rest of its minute: 60 s, written either way
    assert limited.retry_after is not None and 55 <= limited.retry_after <= 61
    assert received(gateway) == []


def test_speedsms_success_and_error_paths(start_gateway):
    gateway = start_gateway("--mode", "speedsms")
    speedsms = speedsms_provider(gateway)

    sent = speedsms.send(sms("s-1"))
    assert sent.outcome == ACCEPTED and sent.provider_message_id.isdigit()
    accented = speedsms.send(sms("s-2", text="Chào bạn", encoding="UCS2"))
    assert accented.outcome == ACCEPTED
    assert [m["encoding"] for m in received(gateway)] == ["GSM7", "UCS2"]

    refused_token = speedsms_provider(
        gateway, SMS_SPEEDSMS_ACCESS_TOKEN="revoked").send(sms("s-3"))
    assert refused_token.outcome == RETRY and "401" in refused_token.error
    bad_number = speedsms.send(sms("s-4", to="+84123"))
    assert bad_number.outcome == REJECTED and "105" in bad_number.error
    faults(gateway, fail_rate=1)
    assert speedsms.send(sms("s-5")).outcome == RETRY
    assert len(received(gateway)) == 2


def test_failover_to_the_second_provider_when_the_first_keeps_failing(start_gateway):
    failing_esms = start_gateway("--mode", "esms", "--fail-rate", "1")
    speedsms = start_gateway("--mode", "speedsms")
    provider = providers.provider_from_settings(sms_settings(
        SMS_PROVIDER="esms", SMS_FALLBACK_PROVIDER="speedsms", SMS_FAILOVER_AFTER=2,
        **esms_config(failing_esms), **speedsms_config(speedsms)))

    results = [provider.send(sms(f"f-{n}")) for n in range(3)]

    assert [r.outcome for r in results] == [RETRY, RETRY, ACCEPTED]
    assert [r.provider for r in results] == ["esms", "esms", "speedsms"]
    assert [m["text"] for m in received(speedsms)] == ["Chao ban, hoc tiep nhe"]


def _accepted(store, message_id, provider, provider_message_id, accepted_at):
    """A message sent and accepted, written as the dispatcher writes it."""
    record = {"_id": message_id, "dedupe_key": message_id, "template": "enrollment_confirmed",
              "learner_id": "lrn-1", "enrollment_id": "enr-1", "to": PHONE,
              "created_at": accepted_at, "attempts": 0}
    store.db.messages.insert_one(record)
    repository.record(store.db, [(record, domain.Settlement(domain.ACCEPTED, {
        "provider": provider, "provider_message_id": provider_message_id,
        "accepted_at": accepted_at, "attempts": 1}))], accepted_at)


def _statuses(db) -> dict:
    return {m["_id"]: m for m in repository.views(db, list(db.messages.find()))}


def test_reconciliation_asks_where_it_can_and_says_unknown_where_it_cannot(
        start_gateway, notifications_store):
    esms_gateway = start_gateway("--mode", "esms")            # no callback: only a query tells
    slow_esms = start_gateway("--mode", "esms", "--delivery-delay", "3600")
    speedsms_gateway = start_gateway("--mode", "speedsms")    # no webhook, no status query
    db = notifications_store.db
    settings = sms_settings(SMS_PROVIDER="esms", SMS_FALLBACK_PROVIDER="speedsms",
                            **esms_config(esms_gateway), **speedsms_config(speedsms_gateway),
                            SMS_REPORT_TIMEOUT_SECONDS=3600, SMS_REPORT_GIVE_UP_SECONDS=86400,
                            SMS_CONTACT_TIMEOUT_SECONDS=86400)
    provider = providers.provider_from_settings(settings)
    sent_at = utcnow()

    delivered = esms_provider(esms_gateway).send(sms("q-1"))
    pending = esms_provider(slow_esms).send(sms("q-2"))
    silent = speedsms_provider(speedsms_gateway).send(sms("q-3"))
    _accepted(notifications_store, "q-1", "esms", delivered.provider_message_id, sent_at)
    _accepted(notifications_store, "q-2", "esms", pending.provider_message_id, sent_at)
    _accepted(notifications_store, "q-3", "speedsms", silent.provider_message_id, sent_at)
    repository.create_documents(db, [{
        "_id": "q-4", "dedupe_key": "q-4", "template": "certificate_issued",
        "learner_id": "lrn-2", "enrollment_id": "enr-2", "to": None, "province_code": "38",
        "commune_code": "14845", "lane": 1, "created_at": sent_at, "attempts": 0}], sent_at)
    wait_for(lambda: received(esms_gateway)[0]["status"] == "delivered", what="eSMS delivery")
    # q-2's status points at the slow gateway; the reconciler asks the configured eSMS account
    slow = esms_provider(slow_esms)
    assert slow.query_status(pending.provider_message_id) == PENDING

    clock = Clock(sent_at + timedelta(minutes=59))
    reconciler = reconcile.Reconciler(db.messages, provider, settings, clock)
    reconciler.run_once()
    assert {m["status"] for m in _statuses(db).values()} == {domain.ACCEPTED,
                                                             domain.AWAITING_CONTACT}

    clock.advance(minutes=2)
    reconciler.run_once()
    status = _statuses(db)
    assert status["q-1"]["status"] == domain.DELIVERED
    # eSMS does not know q-2 on this account (it went through the slow one): still unsettled,
    # asked again later, until the give-up time
    assert status["q-2"]["status"] == domain.ACCEPTED
    assert status["q-3"]["status"] == domain.UNKNOWN
    assert "could not be asked" in domain.reason(status["q-3"])
    assert status["q-4"]["status"] == domain.AWAITING_CONTACT  # only an hour old

    clock.advance(days=1)
    reconciler.run_once()
    status = _statuses(db)
    assert status["q-2"]["status"] == domain.UNKNOWN
    assert "still says pending" in status["q-2"]["last_error"]
    assert (status["q-4"]["status"], status["q-4"]["last_error"]) == (domain.FAILED,
                                                                      "no phone number")
    # announced like any other end, for reporting to count (hocvu.outbox's field)
    [outcome] = db.sms_outcomes.find_one({"_id": "q-4:failed"})["_outbox"]
    assert (outcome["event_type"], outcome["data"]["status"],
            outcome["data"]["commune_code"]) == ("sms_outcome", "failed", "14845")
    assert {domain.learner_status(m) for m in status.values()} <= set(
        domain.LEARNER_STATUSES.values())

    # a report that comes after all still wins
    assert repository.apply_reports(db.messages, [{
        "source": "esms", "status": DELIVERED, "request_id": None,
        "provider_message_id": silent.provider_message_id}], clock()) == []  # none unknown
    assert repository.view(db, "q-3")["status"] == domain.DELIVERED

    assert Counter(m["status"] for m in _statuses(db).values()) == {
        "delivered": 2, "unknown": 1, "failed": 1}
    counts = reconcile.summary(db.messages, clock(), timedelta(minutes=15))
    assert counts == {"by_status": {"queued": 0, "awaiting_contact": 0}, "stuck": 0}
