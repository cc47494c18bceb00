"""The SMS rules that need no server: the day window, keywords, Retry-After, the token
bucket, failover, reminder arithmetic and the providers' report formats."""
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from nameko.exceptions import ConfigurationError

from services.notifications import optout, policy, reminders, templates
from services.notifications.providers import (
    ACCEPTED, DELIVERED, PENDING, REJECTED, RETRY, UNDELIVERED, BadReport, EsmsProvider,
    Failover, SendResult, SmsRequest, SpeedSmsProvider, Throttled, TokenBucket,
    retry_after_seconds)
from services.notifications.providers.base import from_provider_number, national_number
from services.notifications.providers.esms import _status as esms_status
from tests.support.sms import sms_settings

DATA = Path(__file__).parent / "data" / "sms_providers"
VN = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh has had no DST since 1975


def utc(*args):
    return datetime(*args, tzinfo=VN).astimezone(timezone.utc)


def recorded(name):
    return json.loads((DATA / name).read_text(encoding="utf-8"))


window = policy.Window()


@pytest.mark.parametrize("local, opens", [
    ((2026, 11, 25, 7, 0), (2026, 11, 25, 7, 0)),      # opening minute: at once
    ((2026, 11, 25, 21, 59, 59), (2026, 11, 25, 21, 59, 59)),
    ((2026, 11, 25, 22, 0), (2026, 11, 26, 7, 0)),     # closing: next morning
    ((2026, 11, 25, 23, 59), (2026, 11, 26, 7, 0)),    # before midnight: next morning
    ((2026, 11, 26, 0, 0), (2026, 11, 26, 7, 0)),      # after midnight: the same morning
    ((2026, 11, 26, 6, 59), (2026, 11, 26, 7, 0)),
    ((2026, 12, 31, 22, 30), (2027, 1, 1, 7, 0)),      # across the year boundary
])
def test_the_day_window_in_ho_chi_minh_time(local, opens):
    assert window.next_open(utc(*local)) == utc(*opens)


def test_the_local_day_changes_at_local_midnight_not_utc_midnight():
    # 23:30 UTC on the 25th is 06:30 on the 26th in Vietnam
    late_utc = datetime(2026, 11, 25, 23, 30, tzinfo=timezone.utc)
    assert window.local_day(late_utc) == date(2026, 11, 26)
    assert window.next_open(late_utc) == utc(2026, 11, 26, 7, 0)
    # 16:59 UTC is 23:59 local, still the 25th
    assert window.local_day(datetime(2026, 11, 25, 16, 59, tzinfo=timezone.utc)) == \
        date(2026, 11, 25)


def test_template_classes():
    assert policy.class_of(templates.ENROLLMENT_CONFIRMED) == policy.TRANSACTIONAL
    assert policy.class_of(templates.CERTIFICATE_ISSUED) == policy.TRANSACTIONAL
    assert policy.class_of("sign_in_code") == policy.TRANSACTIONAL
    assert policy.class_of(templates.LESSON_REMINDER) == policy.REMINDER
    assert policy.class_of("campaign_notice_nobody_classified") == policy.REMINDER


@pytest.mark.parametrize("text, action", [
    ("STOP", optout.OPT_OUT), ("stop", optout.OPT_OUT), (" Stop. ", optout.OPT_OUT),
    ("TUCHOI", optout.OPT_OUT), ("Từ chối", optout.OPT_OUT), ("tu choi nhan tin", optout.OPT_OUT),
    ("START", optout.OPT_IN), ("Đồng ý", optout.OPT_IN),
    ("Cảm ơn", None), ("", None), ("STOPPED", None),
])
def test_reply_keywords(text, action):
    defaults = sms_settings()
    table = optout.keywords(defaults.optout_keywords, defaults.optin_keywords)
    assert optout.action_for(text, table) == action


def test_the_province_configures_its_keywords():
    configured = sms_settings(SMS_OPTOUT_KEYWORDS="HUY", SMS_OPTIN_KEYWORDS="NHAN")
    table = optout.keywords(configured.optout_keywords, configured.optin_keywords)
    assert optout.action_for("Hủy", table) == optout.OPT_OUT
    assert optout.action_for("STOP", table) is None
    assert optout.action_for("nhan", table) == optout.OPT_IN


def test_retry_after_in_both_forms():
    now = datetime(2015, 10, 21, 7, 27, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("120", lambda: now) == 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", lambda: now) == 60
    assert retry_after_seconds("Wed, 21 Oct 2015 07:00:00 GMT", lambda: now) == 0  # past
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None


class Clock:
    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


def test_token_bucket_spends_its_burst_then_reserves_tokens_within_the_wait_allowed():
    clock = Clock()
    bucket = TokenBucket(rate_per_second=2, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [(True, 0)] * 3
    # nothing reserved when the caller will not wait: the next token is due in 0.5 s
    assert bucket.reserve() == (False, pytest.approx(0.5))
    # reserved one after another, each half a second after the last
    assert bucket.reserve(max_wait=1) == (True, pytest.approx(0.5))
    assert bucket.reserve(max_wait=1) == (True, pytest.approx(1.0))
    assert bucket.reserve(max_wait=1) == (False, pytest.approx(1.5))
    # the two reserved are used at 0.5 s and 1 s: the next free token is 1.5 s's
    clock.now = 1.0
    assert bucket.reserve() == (False, pytest.approx(0.5))
    clock.now = 1.5
    assert bucket.reserve() == (True, 0)


def test_token_bucket_pauses_for_the_providers_retry_after():
    clock = Clock()
    bucket = TokenBucket(rate_per_second=100, burst=100, clock=clock)
    bucket.pause(30)
    assert bucket.reserve(max_wait=1) == (False, pytest.approx(30))
    clock.now = 30
    assert bucket.reserve() == (True, 0)


def test_a_throttled_send_waits_for_its_reserved_token_then_sends():
    clock, slept = Clock(), []
    provider = Scripted("simulator", [ACCEPTED] * 3)
    throttled = Throttled(provider, TokenBucket(rate_per_second=10, burst=1, clock=clock),
                          max_wait=0.15, sleep=slept.append)
    results = [throttled.send(request(n)) for n in range(3)]
    # the first at once, the second after its token's 0.1 s; the third's is 0.2 s away
    assert [r.outcome for r in results] == [ACCEPTED, ACCEPTED, RETRY]
    assert slept == [pytest.approx(0.1)]
    assert results[2].throttled and results[2].retry_after == pytest.approx(0.2)
    assert provider.sent == ["m0", "m1"]


class Scripted:
    """A provider answering from a script (pure logic: no HTTP here)."""

    def __init__(self, name, outcomes):
        self.name = name
        self.outcomes = list(outcomes)
        self.sent = []

    def send(self, request):
        self.sent.append(request.request_id)
        return SendResult(self.outcomes.pop(0), provider=self.name)


def request(n):
    return SmsRequest(f"m{n}", "+84912345678", "Chao", "GSM7", "HOCVUSO")


def test_failover_after_consecutive_failures_and_back_after_cooldown():
    clock = Clock()
    first = Scripted("esms", [RETRY, ACCEPTED, RETRY, RETRY, ACCEPTED])
    second = Scripted("speedsms", [ACCEPTED, ACCEPTED])
    failover = Failover(first, second, threshold=2, cooldown=60, clock=clock)

    outcomes = [failover.send(request(n)) for n in range(6)]
    # m0 fails, m1 succeeds (the count starts again), m2 and m3 fail: m4 and m5 go to the second
    assert [r.outcome for r in outcomes] == [RETRY, ACCEPTED, RETRY, RETRY, ACCEPTED, ACCEPTED]
    assert first.sent == ["m0", "m1", "m2", "m3"]
    assert second.sent == ["m4", "m5"]
    clock.now = 61
    assert failover.send(request(6)).provider == "esms"


def test_our_own_throttling_and_rejections_do_not_trigger_failover():
    first = Scripted("esms", [REJECTED, REJECTED, REJECTED])
    failover = Failover(first, Scripted("speedsms", []), threshold=2)
    assert [failover.send(request(n)).outcome for n in range(3)] == [REJECTED] * 3

    class Throttling:
        name = "esms"

        def send(self, request):
            return SendResult(RETRY, throttled=True)

    failover = Failover(Throttling(), Scripted("speedsms", []), threshold=1)
    failover.send(request(0))
    assert failover.current().name == "esms"


def test_reminder_days_per_course():
    days = reminders.ReminderDays(sms_settings(
        REMINDER_DAYS=7, REMINDER_DAYS_BY_COURSE="student-digital-basics=3, x=10"))
    assert days("student-digital-basics") == 3 and days("x") == 10 and days("other") == 7
    with pytest.raises(ConfigurationError):
        sms_settings(REMINDER_DAYS=0)


def test_next_lesson_is_the_first_not_completed():
    lessons = [{"id": "l1", "title": "Một"}, {"id": "l2", "title": "Hai"}]
    state = {"completed_lesson_ids": ["l1"]}
    assert reminders.next_lesson(state, lessons)["id"] == "l2"
    assert reminders.next_lesson({"completed_lesson_ids": ["l1", "l2"]}, lessons) is None
    assert reminders.next_lesson(state, []) is None  # no lessons known: a progress reminder


def test_phone_number_forms():
    assert national_number("+84912345678") == "0912345678"
    for written in ("0912345678", "84912345678", "+84912345678"):
        assert from_provider_number(written) == "+84912345678"


def test_esms_recorded_reports():
    delivered = EsmsProvider.parse_report(recorded("esms_callback_delivered.json"))
    assert delivered.status == DELIVERED
    assert delivered.provider_message_id == "dc712784-9c5f-4c69-b9a8-ea69d56adc9a87"
    assert delivered.request_id == "0b6f3c1e-4b7a-4d8e-9a51-1c2d3e4f5a6b"
    failed = EsmsProvider.parse_report(recorded("esms_callback_failed.json"))
    assert failed.status == UNDELIVERED and failed.request_id is None
    assert esms_status(recorded("esms_get_send_status.json")) == DELIVERED
    assert esms_status({"SendStatus": 2}) == PENDING
    assert esms_status({"SendStatus": 4}) == UNDELIVERED
    with pytest.raises(BadReport):
        EsmsProvider.parse_report({"SendStatus": "5"})


def test_speedsms_recorded_webhooks():
    report = SpeedSmsProvider.parse_report(recorded("speedsms_webhook_report.json"))
    assert report.status == DELIVERED and report.provider_message_id == "123456"
    assert SpeedSmsProvider.parse_report({"type": "report", "tranId": 1, "status": 3}).status \
        == UNDELIVERED
    assert SpeedSmsProvider.parse_incoming(recorded("speedsms_webhook_incoming.json")) == \
        ("84912345678", "Tu choi")
    with pytest.raises(BadReport):
        SpeedSmsProvider.parse_report(recorded("speedsms_webhook_incoming.json"))
