"""notifications' SMS routes and events, as a running service against real RabbitMQ,
SecantusDB and the gateway simulator in the eSMS and SpeedSMS modes."""
import json
import time
from datetime import timedelta

import pytest
import requests
from pymongo import MongoClient

from hocvu import auth, signatures
from hocvu.clock import utcnow
from hocvu_tools.devstack.processes import free_port
from hocvu.events import new_event
from services.notifications import reminders as reminders_module
from services.notifications.reminders import due_at
from services.notifications.service import NotificationsService
from tests.support.fixtures import CALLBACK_SECRET
from tests.support.tokens import LEARNER_SUBJECT_KEY
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

LEARNER, ENROLLMENT, PHONE = "lrn-9", "enr-9", "+84987009999"
SUBJECT = auth.learner_subject(PHONE, LEARNER_SUBJECT_KEY)
ESMS_TOKEN, SPEEDSMS_TOKEN = "esms-callback-token-0123456789", "speedsms-webhook-token-0123456789"


def enrolled():
    return new_event("learner_enrolled", {
        "enrollment_id": ENROLLMENT, "learner_id": LEARNER, "course_id": "citizen-digital-basics",
        "course_title": "Kỹ năng số cơ bản", "full_name": "Trần Văn Bình", "group": "citizen",
        "province_code": "38", "commune_code": "14845", "learner_subject": SUBJECT,
        "enrolled_at": utcnow()},
        correlation_id="corr-9")


def contact():
    return new_event("learner_contact_registered", {
        "learner_id": LEARNER, "enrollment_id": ENROLLMENT, "full_name": "Trần Văn Bình",
        "phone": PHONE}, correlation_id="corr-9")


def lessons_event(event_type, **data):
    return new_event(event_type, {"enrollment_id": ENROLLMENT, "learner_id": LEARNER,
                                  "course_id": "citizen-digital-basics", **data},
                     correlation_id="corr-9")


def run_notifications(service_config, run_service, **config):
    port = config.pop("port")
    settings = service_config("notifications", WEB_SERVER_ADDRESS=f"127.0.0.1:{port}",
                              SMS_POLL_SECONDS=0.2, **config)
    run_service(NotificationsService, settings)
    return f"http://127.0.0.1:{port}/api/notifications", settings


@pytest.fixture
def staff(issuer):
    return issuer.facilitator(communes=("14845",))


def reports_applied(base) -> float:
    """Delivery reports this process's consumer has applied so far (its metrics; the count
    is the process's, so compare two readings)."""
    text = requests.get(f"{base}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("hocvu_events_consumed_total{")
               and 'event_type="sms_report_received"' in line)


def listed(base, headers):
    return requests.get(f"{base}/messages", params={"learner_id": LEARNER},
                        headers=headers).json()["items"]


def signed(body: dict) -> dict:
    raw = json.dumps(body).encode()
    stamp = int(time.time())
    return {"data": raw, "headers": {
        "Content-Type": "application/json", signatures.TIMESTAMP_HEADER: str(stamp),
        signatures.SIGNATURE_HEADER: signatures.sign(CALLBACK_SECRET.encode(), stamp, raw)}}


def test_through_esms_the_get_report_marks_the_sms_delivered(
        service_config, run_service, start_gateway, pika_client, staff):
    port = free_port()
    gateway = start_gateway("--mode", "esms")
    base, _ = run_notifications(
        service_config, run_service, port=port, SMS_PROVIDER="esms", SMS_ESMS_URL=gateway,
        SMS_ESMS_API_KEY="test-api-key", SMS_ESMS_SECRET_KEY="test-secret-key",
        SMS_ESMS_CALLBACK_TOKEN=ESMS_TOKEN,
        SMS_ESMS_CALLBACK_URL=f"http://127.0.0.1:{port}/api/notifications/delivery-reports/esms"
                              f"?token={ESMS_TOKEN}")
    pika_client.publish("enrollment.events", "learner_contact_registered", contact())
    pika_client.publish("enrollment.events", "learner_enrolled", enrolled())

    [message] = wait_for(lambda: [m for m in listed(base, staff) if m["status"] == "delivered"],
                         what="delivered through eSMS")
    assert message["learner_status"] == "delivered" and message["reason"] is None
    [sent] = requests.get(f"{gateway}/v1/messages").json()["messages"]
    assert sent["request_id"] == message["id"] and sent["to"] == "84987009999"

    reports = f"{base}/delivery-reports/esms"
    applied = reports_applied(base)
    bad = requests.get(reports, params={"SendStatus": "5", "token": ESMS_TOKEN})
    assert bad.status_code == 400 and bad.json()["error"] == "VALIDATION_ERROR"
    # a report of another system's message is taken, and changes nothing of ours
    unknown = requests.get(reports, params={
        "SMSID": "nope", "SendStatus": "5", "SendSuccess": "1", "token": ESMS_TOKEN})
    assert (unknown.status_code, unknown.json()) == (200, {"status": "accepted"})
    forged = {"SMSID": sent["message_id"], "SendStatus": "5", "SendFailed": "1"}
    assert requests.get(reports, params=forged).status_code == 404
    assert requests.get(reports, params={**forged, "token": "guess"}).status_code == 404
    # (reports are applied from a queue, in order: a genuine one after them shows they were)
    genuine = requests.get(reports, params={
        "SMSID": sent["message_id"], "SendStatus": "5", "SendSuccess": "1", "token": ESMS_TOKEN})
    assert genuine.status_code == 200
    wait_for(lambda: reports_applied(base) >= applied + 2, what="the two reports applied")
    assert [m["status"] for m in listed(base, staff)] == ["delivered"]


def test_through_speedsms_the_webhook_reports_and_a_reply_opts_out(
        service_config, run_service, start_gateway, pika_client, staff, issuer):
    port = free_port()
    webhook = f"http://127.0.0.1:{port}/api/notifications/delivery-reports/speedsms"
    gateway = start_gateway("--mode", "speedsms", "--webhook-url",
                            f"{webhook}?token={SPEEDSMS_TOKEN}")
    base, _ = run_notifications(service_config, run_service, port=port,
                                SMS_PROVIDER="speedsms", SMS_SPEEDSMS_URL=gateway,
                                SMS_SPEEDSMS_ACCESS_TOKEN="test-access-token",
                                SMS_SPEEDSMS_WEBHOOK_TOKEN=SPEEDSMS_TOKEN)
    pika_client.publish("enrollment.events", "learner_contact_registered", contact())
    pika_client.publish("enrollment.events", "learner_enrolled", enrolled())
    wait_for(lambda: [m for m in listed(base, staff) if m["status"] == "delivered"],
             what="delivered through SpeedSMS")
    preferences = f"{base}/learners/{LEARNER}/sms-preferences"
    learner = issuer.learner(PHONE)
    assert requests.get(preferences, headers=learner).json()["reminders"] is True
    token = {"token": SPEEDSMS_TOKEN}

    reply = requests.post(webhook, params=token, json={
        "type": "incoming", "phone": "84987009999", "content": "Từ chối"})
    assert reply.json() == {"action": "opt_out"}
    assert requests.get(preferences, headers=learner).json()["reminders"] is False
    chatter = requests.post(webhook, params=token, json={
        "type": "incoming", "phone": "84987009999", "content": "Cảm ơn"})
    assert chatter.json() == {"action": None}
    assert requests.get(preferences, headers=learner).json()["reminders"] is False
    assert requests.post(webhook, params=token,
                         json={"type": "incoming", "phone": 849}).status_code == 400
    forged = requests.post(webhook, json={"type": "incoming", "phone": "84987009999",
                                          "content": "START"})
    assert forged.status_code == 404
    assert requests.get(preferences, headers=learner).json()["reminders"] is False


def test_opt_out_and_in_by_api_and_by_inbound_sms(service_config, run_service, pika_client,
                                                  sms_gateway, issuer, staff):
    port = free_port()
    base, settings = run_notifications(service_config, run_service, port=port,
                                       SMS_GATEWAY_URL=sms_gateway)
    preferences = f"{base}/learners/{LEARNER}/sms-preferences"
    learner = issuer.learner(PHONE)
    assert requests.get(preferences, headers=staff).status_code == 404  # nothing known yet
    pika_client.publish("enrollment.events", "learner_contact_registered", contact())
    pika_client.publish("enrollment.events", "learner_enrolled", enrolled())
    wait_for(lambda: requests.get(preferences, headers=learner).status_code == 200,
             what="the contact and the learner's scope")

    off = requests.put(preferences, json={"reminders": False}, headers=learner)
    assert off.status_code == 200 and off.json()["reminders"] is False
    assert requests.get(preferences, headers=staff).json()["reminders"] is False
    back = requests.post(f"{base}/inbound-sms",
                         **signed({"from": "84987009999", "text": "START"}))
    assert back.json() == {"action": "opt_in"}
    assert requests.get(preferences, headers=learner).json()["reminders"] is True
    staff_off = requests.put(preferences, json={"reminders": False}, headers=staff)
    assert staff_off.status_code == 200
    assert requests.put(preferences, json={"reminders": True}, headers=learner).status_code == 200

    # nobody else: not signed in, another learner, staff of another commune or province
    assert requests.put(preferences, json={"reminders": False}).status_code == 401
    for outsider in (issuer.learner("+84912000000"), issuer.facilitator(communes=("00001",)),
                     issuer.province_admin(province="01")):
        assert requests.get(preferences, headers=outsider).status_code == 404
        assert requests.put(preferences, json={"reminders": False},
                            headers=outsider).status_code == 404
    assert requests.post(f"{base}/inbound-sms",
                         json={"from": "84987009999", "text": "STOP"}).status_code == 401
    assert requests.get(preferences, headers=learner).json()["reminders"] is True

    for body in ({"reminders": "no"}, {"reminders": None}, {}):
        refused = requests.put(preferences, json=body, headers=learner)
        assert refused.status_code == 400 and "reminders" in refused.json()["fields"]
    assert requests.get(preferences, headers=learner).json()["reminders"] is True
    assert requests.put(f"{base}/learners/nobody/sms-preferences", headers=staff,
                        json={"reminders": False}).status_code == 404
    assert requests.post(f"{base}/inbound-sms", **signed({"from": "12345", "text": "STOP"})
                         ).status_code == 400

    metrics = requests.get(f"{base}/metrics")
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert 'hocvu_sms_messages{service="notifications",status="awaiting_contact"} 0.0' in metrics.text
    assert 'hocvu_sms_stuck{service="notifications"} 0.0' in metrics.text
    assert 'hocvu_sms_dispatch_backlog{service="notifications"} 0.0' in metrics.text
    # and the rest of the process's metrics, the requests just made among them
    assert ('hocvu_http_requests_total{method="PUT",route="/api/notifications/learners/'
            '<learner_id>/sms-preferences",service="notifications",status="400"}') in metrics.text


def test_lessons_events_feed_the_reminder_state(service_config, run_service, pika_client,
                                                sms_gateway):
    port = free_port()
    base, settings = run_notifications(service_config, run_service, port=port,
                                       SMS_GATEWAY_URL=sms_gateway, REMINDER_DAYS=5)
    lessons = [{"id": "l1", "title": "Bài một", "position": 1},
               {"id": "l2", "title": "Bài hai", "position": 2}]
    pika_client.publish("enrollment.events", "learner_enrolled", enrolled())
    pika_client.publish("lessons.events", "lessons_assigned", lessons_event(
        "lessons_assigned", lesson_ids=["l1", "l2"], lessons=lessons, assigned_at=utcnow()))
    done_at = utcnow()
    pika_client.publish("lessons.events", "lesson_completed", lessons_event(
        "lesson_completed", lesson_id="l1", score=80, completed_at=done_at))

    client = MongoClient(settings["MONGO_URI"], tz_aware=True)
    try:
        db = client[settings["MONGO_DATABASE"]]
        reminders = db.reminders

        def moved_on():
            state = reminders.find_one({"_id": ENROLLMENT})
            return state if state and state.get("completed_lesson_ids") == ["l1"] \
                and state.get("full_name") else None

        state = wait_for(moved_on, what="the reminder state")
        # the lessons are the course's, kept once for every enrollment in it
        wait_for(lambda: db.course_lessons.find_one({"_id": "citizen-digital-basics"}),
                 what="the course's lessons")
        assert [lesson["title"] for lesson in reminders_module.course_lessons(
            db, "citizen-digital-basics")] == ["Bài một", "Bài hai"]
        assert reminders_module.next_lesson(state, reminders_module.course_lessons(
            db, "citizen-digital-basics"))["id"] == "l2"
        assert state["status"] == "active"
        # the next reminder is due five days after the progress, whichever event came first
        # (the stored time moves with progress only when the planner comes round: due_at)
        assert abs(due_at(state, 5) - (done_at + timedelta(days=5))) < timedelta(seconds=1)

        pika_client.publish("lessons.events", "course_completed", lessons_event(
            "course_completed", course_title="Kỹ năng số cơ bản", full_name="Trần Văn Bình",
            group="citizen", province_code="38", commune_code="14845", completed_at=utcnow()))
        stopped = wait_for(lambda: reminders.find_one(
            {"_id": ENROLLMENT, "status": "completed"}), what="reminders stopped")
        assert stopped["next_reminder_at"] is None
    finally:
        client.close()


def cancelled():
    return new_event("enrollment_cancelled", {
        "enrollment_id": ENROLLMENT, "learner_id": LEARNER, "course_id": "citizen-digital-basics",
        "group": "citizen", "province_code": "38", "commune_code": "14845",
        "learner_subject": SUBJECT, "cancelled_at": utcnow(), "cancelled_by": "staff"},
        correlation_id="corr-9")


@pytest.mark.parametrize("cancel_first", [False, True], ids=["enrolled-first", "cancel-first"])
def test_a_cancelled_enrollment_is_never_reminded_whatever_the_order(
        service_config, run_service, pika_client, sms_gateway, cancel_first):
    base, settings = run_notifications(service_config, run_service, port=free_port(),
                                       SMS_GATEWAY_URL=sms_gateway, REMINDER_DAYS=5)
    client = MongoClient(settings["MONGO_URI"], tz_aware=True)
    try:
        reminders = client[settings["MONGO_DATABASE"]].reminders
        if cancel_first:
            pika_client.publish("enrollment.events", "enrollment_cancelled", cancelled())
            wait_for(lambda: reminders.find_one({"_id": ENROLLMENT, "status": "cancelled"}),
                     what="the stopped state")
            pika_client.publish("enrollment.events", "learner_enrolled", enrolled())
            state = wait_for(lambda: reminders.find_one(
                {"_id": ENROLLMENT, "full_name": {"$exists": True}}), what="enrolled handled")
        else:
            pika_client.publish("enrollment.events", "learner_enrolled", enrolled())
            wait_for(lambda: reminders.find_one({"_id": ENROLLMENT, "status": "active",
                                                 "next_reminder_at": {"$ne": None}}),
                     what="reminders planned")
            for _ in range(2):
                pika_client.publish("enrollment.events", "enrollment_cancelled", cancelled())
            state = wait_for(lambda: reminders.find_one({"_id": ENROLLMENT, "status": "cancelled"}),
                             what="reminders stopped")
        assert state["status"] == "cancelled" and state["next_reminder_at"] is None
    finally:
        client.close()
