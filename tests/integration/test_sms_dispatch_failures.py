"""The SMS dispatcher against a provider that misbehaves: it rate-limits with Retry-After,
refuses a message for good, never answers, or keeps failing until the attempts run out.
Against the gateway simulator (or a socket that never answers) and a real SecantusDB, with
a clock the test moves: each failure ends as documented, and no message is dropped
silently or sent twice."""
import socket
from datetime import timedelta

import pytest
import requests

from services.notifications import domain, repository, templates
from services.notifications.dispatcher import DispatchLoop
from services.notifications.providers import SimulatorProvider
from tests.support.sms import Clock, local, sms_settings

pytestmark = pytest.mark.integration

PHONE = "+84912345678"


def dispatcher(store, gateway: str, clock: Clock, **config) -> DispatchLoop:
    settings = sms_settings(**{"SMS_GATEWAY_URL": gateway, "SMS_GATEWAY_TIMEOUT_SECONDS": 0.5,
                               **config})
    return DispatchLoop(store.db.messages, SimulatorProvider(settings), settings, clock=clock)


def queue(store, clock: Clock, to: str = PHONE) -> str:
    store.db.contacts.update_one({"_id": "lrn-1"}, {"$set": {"phone": to}}, upsert=True)
    return repository.create(store.db, templates.ENROLLMENT_CONFIRMED, "confirm:enr-1", "lrn-1",
                             "enr-1", {"full_name": "Vũ Đức Anh", "course_title": "Kỹ năng số"},
                             "corr", clock(), True)["_id"]


def received(gateway: str) -> list[dict]:
    return requests.get(f"{gateway}/v1/messages").json()["messages"]


def test_a_429_waits_the_time_the_provider_asked_then_sends_once(
        start_gateway, notifications_store):
    gateway = start_gateway("--rate-limit-per-minute", "0")  # every send: 429, Retry-After
    clock = Clock(local(2026, 11, 25, 10, 0))
    loop = dispatcher(notifications_store, gateway, clock)
    message_id = queue(notifications_store, clock)

    loop.run_once()
    waiting = repository.view(notifications_store.db, message_id)
    assert waiting["status"] == domain.QUEUED and waiting["attempts"] == 1
    assert "429" in waiting["last_error"]
    # the simulator asks for the rest of its minute; the dispatcher's own backoff would be 2 s
    assert timedelta(seconds=55) <= waiting["next_attempt_at"] - clock() <= timedelta(seconds=61)
    clock.advance(seconds=50)
    loop.run_once()  # not yet: no second request
    assert repository.view(notifications_store.db, message_id)["attempts"] == 1

    requests.post(f"{gateway}/v1/admin/faults",
                  json={"rate_limit_per_minute": None}).raise_for_status()
    clock.advance(seconds=11)
    loop.run_once()
    sent = repository.view(notifications_store.db, message_id)
    assert sent["status"] == domain.ACCEPTED and sent["attempts"] == 2
    assert [m["request_id"] for m in received(gateway)] == [message_id]
    assert requests.get(f"{gateway}/v1/stats").json()["rate_limited"] == 1


def test_a_definite_refusal_fails_the_message_at_once_and_for_good(
        start_gateway, notifications_store):
    gateway = start_gateway()
    clock = Clock(local(2026, 11, 25, 10, 0))
    loop = dispatcher(notifications_store, gateway, clock)
    message_id = queue(notifications_store, clock, to="+84123")  # no such number: 400

    loop.run_once()
    failed = repository.view(notifications_store.db, message_id)
    assert failed["status"] == domain.FAILED and failed["attempts"] == 1
    assert "400" in failed["last_error"]
    clock.advance(hours=1)
    loop.run_once()
    assert repository.view(notifications_store.db, message_id)["attempts"] == 1
    assert received(gateway) == []


def test_a_provider_that_never_answers_is_retried_with_backoff(
        start_gateway, notifications_store):
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        clock = Clock(local(2026, 11, 25, 10, 0))
        message_id = queue(notifications_store, clock)
        stuck = dispatcher(notifications_store, f"http://127.0.0.1:{silent.getsockname()[1]}",
                           clock)
        stuck.run_once()
        stuck.stop()  # hands its lease back, as a stopped instance does

    waiting = repository.view(notifications_store.db, message_id)
    assert waiting["status"] == domain.QUEUED and waiting["attempts"] == 1
    assert "Timeout" in waiting["last_error"]
    assert waiting["next_attempt_at"] - clock() == timedelta(seconds=2)  # 2 ** attempts

    gateway = start_gateway()  # the provider answers again
    clock.advance(seconds=2)
    dispatcher(notifications_store, gateway, clock).run_once()
    assert repository.view(notifications_store.db, message_id)["status"] == \
        domain.ACCEPTED
    assert [m["request_id"] for m in received(gateway)] == [message_id]


def test_a_provider_that_keeps_failing_fails_the_message_after_the_last_attempt(
        start_gateway, notifications_store):
    gateway = start_gateway("--fail-rate", "1")
    clock = Clock(local(2026, 11, 25, 10, 0))
    loop = dispatcher(notifications_store, gateway, clock, SMS_MAX_ATTEMPTS=3)
    message_id = queue(notifications_store, clock)

    attempts = []
    for _ in range(3):
        loop.run_once()
        stored = repository.view(notifications_store.db, message_id)
        attempts.append((stored["status"], stored["attempts"]))
        clock.advance(seconds=300)  # past any backoff
    assert attempts == [(domain.QUEUED, 1), (domain.QUEUED, 2), (domain.FAILED, 3)]
    assert "503" in stored["last_error"] and stored["failed_at"]
    assert domain.reason(stored)  # the learner-facing status says why
    loop.run_once()
    assert repository.view(notifications_store.db, message_id)["attempts"] == 3
    assert received(gateway) == []
    assert requests.get(f"{gateway}/v1/stats").json()["unavailable"] == 3
