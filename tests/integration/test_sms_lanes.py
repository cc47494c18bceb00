"""The dispatcher's lanes against a real SecantusDB and the gateway simulator: a sign-in
code and a certificate go out in the first round whatever backlog of confirmations waits,
and a learner never gets the welcome after the certificate."""
import threading
from datetime import datetime, timezone

import pytest
import requests

from hocvu.sealing import Opener, Sealer
from services.notifications import domain, repository, sign_in_codes, templates
from services.notifications.dispatcher import DispatchLoop
from services.notifications.providers import SimulatorProvider
from tests.support.fixtures import SEALING_PRIVATE_KEY, SEALING_PUBLIC_KEY
from tests.support.sms import Clock, local, sms_settings

pytestmark = pytest.mark.integration

BACKLOG = 250  # two and a half rounds of the default batch (SMS_BATCH_SIZE 100)


def dispatcher(store, gateway: str, clock: Clock) -> DispatchLoop:
    settings = sms_settings(SMS_GATEWAY_URL=gateway, SMS_SIMULATOR_RATE_PER_SECOND=10_000)
    return DispatchLoop(store.db.messages, SimulatorProvider(settings), settings, clock=clock)


def confirmation(n: int) -> domain.Wanted:
    return domain.Wanted(templates.ENROLLMENT_CONFIRMED, f"enrollment_confirmed:enr-{n}",
                         f"lrn-{n}", f"enr-{n}", {"full_name": "Lò Thị Mai",
                                                  "course_title": "Kỹ năng số"}, f"corr-{n}",
                         {"province_code": "38", "commune_code": "14845"})


def certificate(n: int) -> domain.Wanted:
    return domain.Wanted(templates.CERTIFICATE_ISSUED, f"certificate_issued:crt-{n}",
                         f"lrn-{n}", f"enr-{n}", {
                             "full_name": "Lò Thị Mai", "course_title": "Kỹ năng số",
                             "verification_code": "ABCD-EFGH-JKLM",
                             "verify_url": "https://hocvu.example/v/ABCD"}, f"corr-{n}",
                         {"province_code": "38", "commune_code": "14845"})


def confirmations_waiting(db, clock: Clock) -> list[dict]:
    """A launch morning's backlog: the confirmations of learners 1 to BACKLOG, all queued
    (learner 0, whose number is known too, is the one each test follows)."""
    db.contacts.insert_many([{"_id": f"lrn-{n}", "phone": f"+8491200{n:04d}"}
                             for n in range(BACKLOG + 1)])
    return repository.create_many(db, [confirmation(n) for n in range(1, BACKLOG + 1)],
                                  clock(), True)


def sent_in_order(gateway: str) -> list[str]:
    messages = requests.get(f"{gateway}/v1/messages", params={"limit": 10_000}).json()["messages"]
    return [m["request_id"] for m in sorted(messages, key=lambda m: m["received_at"])]


def test_a_code_and_a_certificate_overtake_a_backlog_of_confirmations(
        start_gateway, notifications_store):
    db, clock = notifications_store.db, Clock(local(2026, 12, 7, 8, 0))
    gateway, backlog = start_gateway(), confirmations_waiting(db, clock)
    # written after the whole backlog: a class's certificate, a learner asking for a code
    [awarded] = repository.create_many(db, [certificate(0)], clock(), True)
    sealer = Sealer(SEALING_PUBLIC_KEY)
    code = sign_in_codes.create(db, Opener(SEALING_PRIVATE_KEY), {
        "request_id": "code-1", "phone": sealer.seal("+84912999999"),
        "code": sealer.seal("123456"), "expires_at": datetime(2030, 1, 1, tzinfo=timezone.utc)},
        "corr-code", clock(), True)
    loop = dispatcher(notifications_store, gateway, clock)
    while loop.run_once():
        pass
    order = sent_in_order(gateway)
    assert sorted(order) == sorted([code["_id"], awarded["_id"], *(m["_id"] for m in backlog)])
    # the code first, then the certificate, then the confirmations: one round of 100 each time
    assert order.index(code["_id"]) < 100 and order.index(awarded["_id"]) < 100


def test_a_certificate_brings_its_welcome_forward_and_goes_right_after_it(
        start_gateway, notifications_store):
    """Learner 0's class ends while her welcome still waits behind 250 others: the welcome
    joins the certificate's lane, and she gets both in the first round, welcome first."""
    db, clock = notifications_store.db, Clock(local(2026, 12, 7, 8, 0))
    gateway, others = start_gateway(), confirmations_waiting(db, clock)
    [welcome] = repository.create_many(db, [confirmation(0)], clock.advance(seconds=1), True)
    certified = [{"learner_id": "lrn-0", "enrollment_id": "enr-0"}]
    assert repository.bring_confirmations_forward(db, certified, clock.advance(seconds=1)) == 1
    [awarded] = repository.create_many(db, [certificate(0)], clock(), True)
    loop = dispatcher(notifications_store, gateway, clock)
    while loop.run_once():
        pass
    order = sent_in_order(gateway)
    assert sorted(order) == sorted([welcome["_id"], awarded["_id"], *(m["_id"] for m in others)])
    assert order.index(welcome["_id"]) < order.index(awarded["_id"]) < 100
    # a learner whose welcome went out already: nothing to bring forward
    assert repository.bring_confirmations_forward(db, certified, clock()) == 0


CODE = "654321"


class HeldSends:
    """The real simulator adapter, whose sends of anything but the code wait at a gate the
    test opens: a round of confirmations caught in the middle, as a slow provider or a busy
    machine leaves it for seconds."""

    def __init__(self, inner: SimulatorProvider):
        self.inner, self.name = inner, inner.name
        self.gate, self.waiting = threading.Event(), threading.Event()

    def send(self, request):
        if CODE not in request.text:  # anything but the sign-in code
            self.waiting.set()
            assert self.gate.wait(60), "the test never opened the gate"
        return self.inner.send(request)


def test_a_sign_in_code_goes_out_while_a_round_of_confirmations_is_under_way(
        start_gateway, notifications_store):
    db, clock = notifications_store.db, Clock(local(2026, 12, 7, 8, 0))
    gateway = start_gateway()
    confirmations_waiting(db, clock)
    settings = sms_settings(SMS_GATEWAY_URL=gateway, SMS_SIMULATOR_RATE_PER_SECOND=10_000)
    provider = HeldSends(SimulatorProvider(settings))
    # as the service runs them (dependencies.SmsDispatcher): the code's lane apart
    main = DispatchLoop(db.messages, provider, settings, clock=clock,
                        lanes=domain.LANE_ORDER[1:])
    express = DispatchLoop(db.messages, provider, settings, clock=clock,
                           lanes=domain.LANE_ORDER[:1], job="dispatcher-sign-in-codes")
    round_under_way = threading.Thread(target=main.run_once)
    round_under_way.start()
    try:
        assert provider.waiting.wait(30), "the round of confirmations never began"
        sealer = Sealer(SEALING_PUBLIC_KEY)
        code = sign_in_codes.create(db, Opener(SEALING_PRIVATE_KEY), {
            "request_id": "code-2", "phone": sealer.seal("+84912999998"),
            "code": sealer.seal(CODE),
            "expires_at": datetime(2030, 1, 1, tzinfo=timezone.utc)}, "corr-code-2", clock(), True)
        express.run_once()
        # sent and recorded while every confirmation of the round still waits
        assert sent_in_order(gateway) == [code["_id"]]
        assert repository.view(db, code["_id"])["status"] == domain.ACCEPTED
    finally:
        provider.gate.set()
        round_under_way.join(60)
    assert len(sent_in_order(gateway)) == 1 + 100  # and the round went on: one batch of 100


def test_a_redelivered_confirmation_whose_first_try_stopped_short_finds_its_number(
        notifications_store):
    """The first delivery wrote the message and stopped (the store away) before looking for
    the number; the number's own handler had looked for waiting messages before the message
    existed. The redelivery must look again, or the welcome waits for a day."""
    db, clock = notifications_store.db, Clock(local(2026, 12, 7, 8, 0))
    [first] = repository.create_many(db, [confirmation(7)], clock(), True)
    assert repository.view(db, first["_id"])["status"] == domain.AWAITING_CONTACT
    db.contacts.insert_one({"_id": "lrn-7", "phone": "+84912000777"})  # came meanwhile

    assert repository.create_many(db, [confirmation(7)], clock(), True) == [None]  # known
    released = repository.view(db, first["_id"])
    assert (released["status"], released["to"]) == (domain.QUEUED, "+84912000777")
