"""notifications against real RabbitMQ, SecantusDB and the SMS gateway simulator."""
import json
import os
import signal
import time
from datetime import datetime, timedelta, timezone

import pymongo
import pytest
import requests
from nameko.exceptions import ConfigurationError

from hocvu import signatures
from hocvu.clock import utcnow
from hocvu.events import new_event
from services.notifications import providers, repository
from services.notifications.dependencies import SmsDispatcher
from services.notifications.dispatcher import DispatchLoop
from services.notifications.service import NotificationsService
from hocvu_tools.devstack.processes import free_port
from hocvu_tools.devstack.store import start_secantus, store_uri
from hocvu.sealing import Sealer
from tests.support.fixtures import CALLBACK_SECRET, SEALING_PUBLIC_KEY
from tests.support.settling import deliveries_settled, wait_until_handled
from tests.support.sms import sms_settings
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

LEARNER = "lrn-5"


def enrolled():
    return new_event("learner_enrolled", {
        "enrollment_id": "enr-5", "learner_id": LEARNER, "course_id": "student-digital-basics",
        "course_title": "Kỹ năng số cho học sinh, sinh viên", "full_name": "Vũ Đức Anh",
        "group": "student", "province_code": "38", "commune_code": "14845",
        "learner_subject": "learner:" + "5" * 32, "enrolled_at": utcnow()},
        correlation_id="corr-5")


def contact(phone="+84987001234"):
    return new_event("learner_contact_registered", {
        "learner_id": LEARNER, "enrollment_id": "enr-5", "full_name": "Vũ Đức Anh",
        "sealed_phone": Sealer(SEALING_PUBLIC_KEY).seal(phone)}, correlation_id="corr-5")


def certificate():
    return new_event("certificate_issued", {
        "certificate_id": "cert-5", "serial": "HV-38-2026-000005",
        "verification_code": "K7QM-2XRT-9BH4", "enrollment_id": "enr-5", "learner_id": LEARNER,
        "course_id": "student-digital-basics", "course_title": "Kỹ năng số cho học sinh, sinh viên",
        "full_name": "Vũ Đức Anh", "issued_at": utcnow(),
        "province_code": "38", "commune_code": "14845", "learner_subject": "learner:" + "5" * 32,
        "verify_url": "http://verify.example.test/K7QM2XRT9BH4"}, correlation_id="corr-5")


@pytest.fixture
def notifications_and_config(service_config, run_service, sms_gateway):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = service_config(
        "notifications", WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", SMS_GATEWAY_URL=sms_gateway,
        SMS_CALLBACK_URL=f"{url}/api/notifications/delivery-reports", SMS_POLL_SECONDS=0.2)
    run_service(NotificationsService, config)
    return url, config


@pytest.fixture
def notifications(notifications_and_config):
    return notifications_and_config[0]


def post_report(url: str, report: dict, secret: str | None = CALLBACK_SECRET,
                signed_at: int | None = None, sent_body: bytes | None = None,
                timeout: float = 30):
    """POST a delivery report signed like the gateway signs it; `sent_body` replaces the
    body after signing (a tampered report)."""
    body = json.dumps(report).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers.update(signatures.headers(secret.encode(), signed_at or int(time.time()), body))
    return requests.post(f"{url}/api/notifications/delivery-reports",
                         data=sent_body if sent_body is not None else body, headers=headers,
                         timeout=timeout)


STAFF = {}


@pytest.fixture(autouse=True)
def staff_token(issuer):
    STAFF.update(issuer.facilitator())


def messages(url):
    return requests.get(f"{url}/api/notifications/messages", params={"learner_id": LEARNER},
                        headers=STAFF).json()["items"]


@pytest.mark.parametrize("contact_first", [True, False], ids=["contact-first", "enrolled-first"])
def test_one_confirmation_sms_whatever_the_order_and_however_often(
        notifications, pika_client, sms_outbox, contact_first):
    events = [("learner_contact_registered", contact()), ("learner_enrolled", enrolled())]
    if not contact_first:
        events.reverse()
    before = {kind: deliveries_settled("notifications", kind) for kind, _ in events}
    for routing_key, event in events * 3:
        pika_client.publish("enrollment.events", routing_key, event)

    # every delivery handled before counting: a second message would exist by now
    for kind, _ in events:
        wait_until_handled("notifications", kind, before[kind], 3)
    delivered = wait_for(lambda: [m for m in messages(notifications) if m["status"] == "delivered"],
                         what="a delivered confirmation")
    assert len(messages(notifications)) == 1
    message = delivered[0]
    assert message["template"] == "enrollment_confirmed"
    assert message["to"] == "+84*****1234"
    assert message["encoding"] == "GSM7" and message["segments"] == 1
    assert "Vu Duc Anh" in message["text"] and "Ky nang so cho hoc sinh" in message["text"]

    received = sms_outbox()
    assert len(received) == 1
    assert received[0]["to"] == "84987001234"
    assert received[0]["request_id"] == message["id"]
    assert received[0]["text"] == message["text"]


OUTCOMES = "evt-notifications-sms_outcome--reporting.count_sms"


def test_a_delivered_sms_is_announced_once_for_reports_without_the_number(
        notifications, pika_client):
    for routing_key, event in (("learner_contact_registered", contact()),
                               ("learner_enrolled", enrolled())):
        pika_client.publish("enrollment.events", routing_key, event)
    message = wait_for(lambda: [m for m in messages(notifications) if m["status"] == "delivered"],
                       what="a delivered confirmation")[0]
    outcomes = wait_for(lambda: pika_client.drain(OUTCOMES), what="its sms_outcome")
    time.sleep(0.5)  # a second announcement would have come by now
    outcomes += pika_client.drain(OUTCOMES)
    assert [(o["data"]["message_id"], o["data"]["status"], o["data"]["template"],
             o["data"]["commune_code"]) for o in outcomes] == [
        (message["id"], "delivered", "enrollment_confirmed", enrolled()["data"]["commune_code"])]
    assert "+84987001234" not in str(outcomes) and "84987001234" not in str(outcomes)


def test_certificate_sms_carries_the_code_and_link(notifications, pika_client, sms_outbox):
    pika_client.publish("enrollment.events", "learner_contact_registered", contact())
    pika_client.publish("certificates.events", "certificate_issued", certificate())
    wait_for(lambda: [m for m in messages(notifications) if m["status"] == "delivered"],
             what="certificate SMS")
    text = sms_outbox()[0]["text"]
    assert "K7QM-2XRT-9BH4" in text and "http://verify.example.test/K7QM2XRT9BH4" in text
    assert text.startswith("Chuc mung Vu Duc Anh")


def test_a_gateway_outage_delays_the_sms_but_does_not_lose_it(
        notifications, pika_client, sms_gateway, sms_outbox):
    requests.post(f"{sms_gateway}/v1/admin/faults", json={"fail_rate": 1}).raise_for_status()
    pika_client.publish("enrollment.events", "learner_contact_registered", contact())
    pika_client.publish("enrollment.events", "learner_enrolled", enrolled())
    wait_for(lambda: [m for m in messages(notifications) if m["attempts"] >= 2],
             what="two failed attempts")
    assert messages(notifications)[0]["status"] == "queued"
    assert sms_outbox() == []

    requests.post(f"{sms_gateway}/v1/admin/faults", json={"fail_rate": 0}).raise_for_status()
    wait_for(lambda: [m for m in messages(notifications) if m["status"] == "delivered"],
             timeout=30, what="delivery after the outage")
    assert len(sms_outbox()) == 1


def test_bad_delivery_reports_and_queries_are_refused(notifications):
    invalid = post_report(notifications, {"status": "delivered"})
    assert invalid.status_code == 400
    assert set(invalid.json()["fields"]) == {"request_id", "message_id"}
    assert requests.get(f"{notifications}/api/notifications/messages").status_code == 401


def test_only_a_fresh_report_signed_with_the_shared_secret_changes_a_message(
        notifications_and_config):
    url, config = notifications_and_config
    db = pymongo.MongoClient(config["MONGO_URI"])[config["MONGO_DATABASE"]]
    db.messages.insert_one({"_id": "msg-77", "status": "accepted", "learner_id": LEARNER})
    report = {"request_id": "msg-77", "message_id": "gw-77", "status": "expired"}
    forged = {
        "unsigned": post_report(url, report, secret=None),
        "another secret": post_report(url, report, secret="not-the-shared-secret-" + "x" * 20),
        "replayed after 10 minutes": post_report(url, report, signed_at=int(time.time()) - 600),
        "body changed after signing": post_report(
            url, {**report, "status": "delivered"},
            sent_body=json.dumps({**report, "status": "failed"}).encode()),
    }
    for case, answer in forged.items():
        assert answer.status_code == 401, case
        assert answer.json()["error"] == "UNAUTHENTICATED", case
        assert set(answer.json()) >= {"error", "message", "fields"}
    assert repository.view(db, "msg-77")["status"] == "accepted"  # nothing changed

    answer = post_report(url, report)
    assert (answer.status_code, answer.json()) == (200, {"status": "accepted"})
    wait_for(lambda: repository.view(db, "msg-77")["status"] == "undelivered",
             what="the report applied")
    assert repository.view(db, "msg-77")["last_error"] == "expired"


def test_a_report_naming_no_message_of_ours_is_accepted_and_changes_nothing(
        notifications_and_config):
    url, config = notifications_and_config
    db = pymongo.MongoClient(config["MONGO_URI"])[config["MONGO_DATABASE"]]
    db.messages.insert_one({"_id": "msg-78", "status": "accepted", "learner_id": LEARNER})
    # (a provider's report for another system's message: refusing it would only make the
    # provider send it again)
    assert post_report(url, {"request_id": "nope", "message_id": "x",
                             "status": "delivered"}).status_code == 200
    assert post_report(url, {"request_id": "msg-78", "message_id": "gw-78",
                             "status": "delivered"}).status_code == 200
    wait_for(lambda: repository.view(db, "msg-78")["status"] == "delivered",
             what="the report after it applied")
    assert db.messages.count_documents({}) == 1 and not repository.view(db, "nope")


@pytest.fixture
def own_store(tmp_path):
    """A store of this test's own, which it may stop (SIGSTOP: it takes connections and
    never answers, as a store saturated for minutes would seem)."""
    port = free_port()
    process = start_secantus(port, tmp_path / "data", tmp_path)
    yield process, store_uri(port)
    os.kill(process.pid, signal.SIGCONT)
    process.stop()


def test_a_delivery_report_is_answered_while_the_store_does_not_answer_then_applied(
        own_store, service_config, run_service):
    store, uri = own_store
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = service_config("notifications", WEB_SERVER_ADDRESS=f"127.0.0.1:{port}",
                            MONGO_URI=uri, SMS_GATEWAY_URL="http://127.0.0.1:9")
    run_service(NotificationsService, config)
    db = pymongo.MongoClient(uri)[config["MONGO_DATABASE"]]
    db.messages.insert_one({"_id": "msg-90", "status": "accepted", "learner_id": LEARNER})

    os.kill(store.pid, signal.SIGSTOP)
    try:
        # a store call would wait for as long as the store is stopped (no socket timeout)
        answer = post_report(url, {"request_id": "msg-90", "message_id": "gw-90",
                                   "status": "delivered"}, timeout=30)
        assert (answer.status_code, answer.json()) == (200, {"status": "accepted"})
    finally:
        os.kill(store.pid, signal.SIGCONT)
    wait_for(lambda: repository.view(db, "msg-90")["status"] == "delivered",
             timeout=60, what="the report applied once the store answers")


def test_without_a_configured_secret_every_report_is_refused(service_config, run_service):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run_service(NotificationsService, service_config(
        "notifications", WEB_SERVER_ADDRESS=f"127.0.0.1:{port}", SMS_CALLBACK_SECRET="",
        SMS_GATEWAY_URL="http://127.0.0.1:9"))
    answer = post_report(url, {"request_id": "m", "message_id": "g", "status": "delivered"},
                         secret="")
    assert answer.status_code == 503  # a deployment fault, said as such: nothing is accepted
    assert answer.json()["error"] == "UNAVAILABLE"


def test_a_bad_setting_stops_the_start_naming_its_key(service_config, run_service):
    with pytest.raises(ConfigurationError,
                       match=r"^notifications: bad settings \(SMS_SEND_CONCURRENCY: "):
        run_service(NotificationsService, service_config("notifications",
                                                         SMS_SEND_CONCURRENCY=-1))


class ReportArrivesFirst:
    """The real simulator adapter, except that the gateway's delivery report reaches the
    service (through its real, signed route) before `send` returns: the order a fast
    handset and a slow store produce, made certain."""
    name = "simulator"

    def __init__(self, gateway: str, service_url: str, status: str, messages):
        self.inner = providers.SimulatorProvider(sms_settings(SMS_GATEWAY_URL=gateway))
        self.service_url = service_url
        self.status = status
        self.messages = messages

    def send(self, request):
        result = self.inner.send(request)
        assert result.outcome == providers.ACCEPTED, result
        answer = post_report(self.service_url, {
            "request_id": request.request_id, "message_id": result.provider_message_id,
            "status": self.status})
        assert answer.status_code == 200, answer.text
        # reports are applied from a queue: wait until this one has been
        wait_for(lambda: repository.view(self.messages.database, request.request_id)["status"]
                 != "queued", what="the report applied before the send's answer is recorded")
        return result


@pytest.mark.parametrize("status", ["delivered", "expired"])
def test_a_report_that_arrives_before_the_acceptance_is_recorded_still_counts(
        service_config, run_service, sms_gateway, status):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = service_config("notifications", WEB_SERVER_ADDRESS=f"127.0.0.1:{port}",
                            SMS_GATEWAY_URL=sms_gateway)
    container = run_service(NotificationsService, config)
    # the service's own dispatcher stops and hands back its lease: the test's sends instead
    next(ext for ext in container.extensions if isinstance(ext, SmsDispatcher)).loop.stop()
    db = pymongo.MongoClient(config["MONGO_URI"], tz_aware=True)[config["MONGO_DATABASE"]]
    later = utcnow() + timedelta(hours=1)
    db.contacts.insert_one({"_id": LEARNER, "phone": "+84987001234"})
    message = repository.create(
        db, "enrollment_confirmed", "report-first", LEARNER, "enr-5",
        {"full_name": "Vũ Đức Anh", "course_title": "Kỹ năng số"}, "corr-5", later, True)
    reporter = ReportArrivesFirst(sms_gateway, url, status, db.messages)
    loop = DispatchLoop(db.messages, reporter,
                        sms_settings(**config), clock=lambda: later)

    loop.run_once()

    stored = repository.view(db, message["_id"])
    # the acceptance is recorded too (who took it, when, how often we tried)
    assert stored["attempts"] == 1 and stored["provider"] == "simulator"
    assert stored["accepted_at"] and stored["provider_message_id"]
    if status == "delivered":
        assert stored["status"] == "delivered"
    else:
        assert (stored["status"], stored["last_error"]) == ("undelivered", status)


def test_a_revoked_certificate_is_texted_to_its_learner_once_with_when_and_why(
        notifications, pika_client, sms_outbox):
    pika_client.publish("enrollment.events", "learner_contact_registered", contact())
    revoked = new_event("certificate_revoked", {
        "certificate_id": "cert-5", "serial": "HV-38-2026-000005", "enrollment_id": "enr-5",
        "learner_id": LEARNER, "course_id": "student-digital-basics",
        "course_title": "Kỹ năng số cho học sinh, sinh viên", "full_name": "Vũ Đức Anh",
        "group": "student", "province_code": "38", "commune_code": "14845",
        "learner_subject": "learner:" + "5" * 32, "reason": "Cấp nhầm người học",
        # 18:30 UTC is already the next day in Vietnam
        "revoked_at": datetime(2026, 11, 25, 18, 30, tzinfo=timezone.utc)},
        correlation_id="corr-5")
    for _ in range(2):
        pika_client.publish("certificates.events", "certificate_revoked", revoked)
    wait_for(lambda: [m for m in messages(notifications) if m["status"] == "delivered"],
             what="the revocation SMS")
    assert [m["template"] for m in messages(notifications)] == ["certificate_revoked"]
    text = sms_outbox()[0]["text"]
    assert text == ("Chung chi so HV-38-2026-000005 khoa hoc \"Ky nang so cho hoc sinh, sinh "
                    "vien\" cua Vu Duc Anh da bi thu hoi ngay 26/11/2026. Ly do: Cap nham "
                    "nguoi hoc")
