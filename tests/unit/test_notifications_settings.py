"""notifications' settings: every key keeps its default, and a bad value stops the start
with one message naming the key."""
from datetime import time, timedelta
from zoneinfo import ZoneInfo

import pytest
from nameko.exceptions import ConfigurationError

from hocvu.settings import load
from services.notifications.settings import NotificationsSettings
from tests.support.fixtures import SEALING_PRIVATE_KEY
from tests.support.sms import sms_settings


def test_the_defaults_are_the_ones_the_service_always_had():
    loaded = vars(sms_settings())
    assert loaded.pop("opener") is not None
    assert loaded == {
        "provider": "simulator", "fallback_provider": "", "failover_after": 3,
        "failover_cooldown": 60, "simulator_rate": 50, "simulator_burst": None,
        "esms_rate": 50, "esms_burst": None, "speedsms_rate": 50, "speedsms_burst": None,
        "gateway_timeout": 5, "gateway_url": "http://127.0.0.1:8025", "callback_url": "",
        "esms_url": "https://rest.esms.vn", "esms_api_key": "", "esms_secret_key": "",
        "esms_sms_type": 2, "esms_sandbox": False, "esms_callback_url": "",
        "speedsms_url": "https://api.speedsms.vn", "speedsms_access_token": "",
        "speedsms_sms_type": 3, "esms_callback_token": "", "speedsms_webhook_token": "",
        "brandname": "HOCVUSO", "unaccented": True, "send_concurrency": 10, "batch_size": 100,
        "max_attempts": 8, "max_backoff": 300, "poll_seconds": 1.0, "linger_seconds": 0.02,
        "lease": timedelta(seconds=30), "window_opens": time(7, 0),
        "window_closes": time(22, 0), "timezone": ZoneInfo("Asia/Ho_Chi_Minh"),
        "daily_cap": 3, "transactional_cap": 20, "optout_keywords": "STOP,TUCHOI,TU CHOI",
        "optin_keywords": "START,DONGY,DONG Y", "reminder_days": 7,
        "reminder_days_by_course": {}, "reminder_poll_seconds": 60,
        "reminder_batch_size": 100, "reminder_lease": timedelta(seconds=60),
        "reconcile_poll_seconds": 60, "reconcile_batch_size": 100,
        "contact_timeout": timedelta(days=1), "report_timeout": timedelta(hours=1),
        "report_give_up": timedelta(days=1), "stuck_after": timedelta(seconds=900),
        # new with the append-only SMS path: messages were kept for ever before
        "retention": timedelta(days=365)}


def test_values_as_the_environment_gives_them():
    loaded = sms_settings(SMS_UNACCENTED="false", SMS_WINDOW_OPENS="06:30",
                          SMS_TIMEZONE="Asia/Bangkok", SMS_ESMS_CALLBACK_TOKEN=123456,
                          REMINDER_DAYS_BY_COURSE=" a=3, b = 10 ,", SMS_ESMS_SANDBOX="1")
    assert loaded.unaccented is False and loaded.window_opens == time(6, 30)
    assert loaded.timezone == ZoneInfo("Asia/Bangkok")
    assert loaded.esms_callback_token == "123456"  # digits the YAML read as a number
    assert loaded.reminder_days_by_course == {"a": 3, "b": 10}
    assert loaded.esms_sandbox is True


def test_a_negative_count_stops_the_start_naming_its_key():
    with pytest.raises(ConfigurationError) as raised:
        load(NotificationsSettings, {"NOTIFICATIONS_SEALING_PRIVATE_KEY": SEALING_PRIVATE_KEY,
                                     "SMS_SEND_CONCURRENCY": "-1"}, "notifications")
    assert str(raised.value).startswith("notifications: bad settings (SMS_SEND_CONCURRENCY: ")


@pytest.mark.parametrize("key, value", [
    ("SMS_PROVIDER", "twilio"), ("SMS_FALLBACK_PROVIDER", "esms2"),
    ("SMS_ESMS_RATE_PER_SECOND", 0), ("SMS_SPEEDSMS_BURST", 0.5),
    ("SMS_GATEWAY_TIMEOUT_SECONDS", 0), ("SMS_WINDOW_CLOSES", "22h"),
    ("SMS_TIMEZONE", "Asia/Saigon City"), ("SMS_DAILY_CAP", 0),
    ("SMS_TRANSACTIONAL_DAILY_CAP", -1), ("SMS_UNACCENTED", "maybe"),
    ("REMINDER_DAYS", 0), ("REMINDER_DAYS_BY_COURSE", "a=0"),
    ("REMINDER_DAYS_BY_COURSE", "a=three"), ("SMS_LEASE_SECONDS", -1),
    ("NOTIFICATIONS_SEALING_PRIVATE_KEY", "not-a-key"),
])
def test_each_bad_value_is_named(key, value):
    with pytest.raises(ConfigurationError, match=f"\\({key}: "):
        sms_settings(**{key: value})


def test_the_sealing_key_is_required():
    with pytest.raises(ConfigurationError,
                       match="NOTIFICATIONS_SEALING_PRIVATE_KEY: must be set"):
        load(NotificationsSettings, {})


def test_a_slow_rate_needs_its_own_burst_only_for_the_providers_in_use():
    with pytest.raises(ConfigurationError, match="SMS_ESMS_BURST: "):
        sms_settings(SMS_PROVIDER="esms", SMS_ESMS_RATE_PER_SECOND=0.5)
    with pytest.raises(ConfigurationError, match="SMS_SPEEDSMS_BURST: "):
        sms_settings(SMS_FALLBACK_PROVIDER="speedsms", SMS_SPEEDSMS_RATE_PER_SECOND=0.5)
    assert sms_settings(SMS_PROVIDER="esms", SMS_ESMS_RATE_PER_SECOND=0.5,
                        SMS_ESMS_BURST=1).esms_burst == 1
    assert sms_settings(SMS_SPEEDSMS_RATE_PER_SECOND=0.5).speedsms_rate == 0.5  # not in use
