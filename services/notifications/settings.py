"""notifications' configuration keys, typed and checked once when the container starts
(hocvu/settings.py; docs/configuration.md says what each one means).

The providers' keys are all here, whichever provider is chosen: a provider an operator
switches to later starts with keys already checked. Only the token buckets of the chosen
providers must hold a whole token, as only those are built.
"""
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import ValidationError, fields, validates_schema
from marshmallow.validate import OneOf, Range

from hocvu.sealing import Opener
from hocvu.settings import SettingsSchema, duration, flag, number, parsed, text, whole
from services.notifications.providers import PROVIDERS


def _rate(key: str, default: float) -> fields.Field:
    """Sends a second: more than none."""
    return fields.Float(data_key=key, load_default=default,
                        validate=Range(min=0, min_inclusive=False))


def _burst(key: str) -> fields.Field:
    """A token bucket's size; unset, the rate's."""
    return fields.Float(data_key=key, load_default=None, validate=Range(min=1))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"no time zone {name!r}") from None


def _days_by_course(text: str) -> dict[str, int]:
    """The days before a reminder, per course: `course-id=3,other-course=10`."""
    days = {}
    for entry in filter(str.strip, text.split(",")):
        course_id, _, count = entry.partition("=")
        try:
            days[course_id.strip()] = int(count)
        except ValueError:
            raise ValueError(f"{entry.strip()!r} is not course-id=days") from None
    if any(count < 1 for count in days.values()):
        raise ValueError("reminder days must be whole numbers >= 1")
    return days


class NotificationsSettings(SettingsSchema):
    # the providers (providers/), and failing over from the first to the second
    provider = text("SMS_PROVIDER", "simulator", validate=OneOf(sorted(PROVIDERS)))
    fallback_provider = text("SMS_FALLBACK_PROVIDER", validate=OneOf(sorted(PROVIDERS)))
    failover_after = whole("SMS_FAILOVER_AFTER", 3)
    failover_cooldown = number("SMS_FAILOVER_COOLDOWN_SECONDS", 60)
    # each provider account's token bucket: SMS_<NAME>_RATE_PER_SECOND, SMS_<NAME>_BURST
    simulator_rate = _rate("SMS_SIMULATOR_RATE_PER_SECOND", 50)
    simulator_burst = _burst("SMS_SIMULATOR_BURST")
    esms_rate = _rate("SMS_ESMS_RATE_PER_SECOND", 50)
    esms_burst = _burst("SMS_ESMS_BURST")
    speedsms_rate = _rate("SMS_SPEEDSMS_RATE_PER_SECOND", 50)
    speedsms_burst = _burst("SMS_SPEEDSMS_BURST")
    gateway_timeout = fields.Float(data_key="SMS_GATEWAY_TIMEOUT_SECONDS", load_default=5.0,
                                   validate=Range(min=0, min_inclusive=False))
    gateway_url = text("SMS_GATEWAY_URL", "http://127.0.0.1:8025")
    callback_url = text("SMS_CALLBACK_URL")
    esms_url = text("SMS_ESMS_URL", "https://rest.esms.vn")
    esms_api_key = text("SMS_ESMS_API_KEY")
    esms_secret_key = text("SMS_ESMS_SECRET_KEY")
    esms_sms_type = whole("SMS_ESMS_SMS_TYPE", 2)
    esms_sandbox = flag("SMS_ESMS_SANDBOX", False)
    esms_callback_url = text("SMS_ESMS_CALLBACK_URL")
    speedsms_url = text("SMS_SPEEDSMS_URL", "https://api.speedsms.vn")
    speedsms_access_token = text("SMS_SPEEDSMS_ACCESS_TOKEN")
    speedsms_sms_type = whole("SMS_SPEEDSMS_SMS_TYPE", 3)
    # the secrets in eSMS's and SpeedSMS's callback URLs (?token=); empty: route refused
    esms_callback_token = text("SMS_ESMS_CALLBACK_TOKEN")
    speedsms_webhook_token = text("SMS_SPEEDSMS_WEBHOOK_TOKEN")

    # the dispatcher (dispatcher.py)
    brandname = text("SMS_BRANDNAME", "HOCVUSO")
    unaccented = flag("SMS_UNACCENTED", True)
    send_concurrency = whole("SMS_SEND_CONCURRENCY", 10)
    batch_size = whole("SMS_BATCH_SIZE", 100)
    max_attempts = whole("SMS_MAX_ATTEMPTS", 8)
    max_backoff = number("SMS_MAX_BACKOFF_SECONDS", 300)
    poll_seconds = number("SMS_POLL_SECONDS", 1.0)
    linger_seconds = number("SMS_LINGER_SECONDS", 0.02)
    lease = duration("SMS_LEASE_SECONDS", 30)
    # the private keys, newest first, as what opens what enrollment and identity sealed
    opener = parsed("NOTIFICATIONS_SEALING_PRIVATE_KEY", Opener)

    # the send policy (policy.py) and the reply keywords (optout.py)
    window_opens = fields.Time(data_key="SMS_WINDOW_OPENS", load_default=time(7, 0))
    window_closes = fields.Time(data_key="SMS_WINDOW_CLOSES", load_default=time(22, 0))
    timezone = parsed("SMS_TIMEZONE", _zone, "Asia/Ho_Chi_Minh")
    daily_cap = whole("SMS_DAILY_CAP", 3)
    transactional_cap = whole("SMS_TRANSACTIONAL_DAILY_CAP", 20, minimum=0)  # 0: none
    optout_keywords = text("SMS_OPTOUT_KEYWORDS", "STOP,TUCHOI,TU CHOI")
    optin_keywords = text("SMS_OPTIN_KEYWORDS", "START,DONGY,DONG Y")

    # the reminder planner (reminders.py)
    reminder_days = whole("REMINDER_DAYS", 7)
    reminder_days_by_course = parsed("REMINDER_DAYS_BY_COURSE", _days_by_course, "")
    reminder_poll_seconds = number("REMINDER_POLL_SECONDS", 60)
    reminder_batch_size = whole("REMINDER_BATCH_SIZE", 100)
    reminder_lease = duration("REMINDER_LEASE_SECONDS", 60)

    # the reconciler and the metrics route (reconcile.py)
    reconcile_poll_seconds = number("SMS_RECONCILE_POLL_SECONDS", 60)
    reconcile_batch_size = whole("SMS_RECONCILE_BATCH_SIZE", 100)
    contact_timeout = duration("SMS_CONTACT_TIMEOUT_SECONDS", 86400)
    report_timeout = duration("SMS_REPORT_TIMEOUT_SECONDS", 3600)
    report_give_up = duration("SMS_REPORT_GIVE_UP_SECONDS", 86400)
    stuck_after = duration("SMS_STUCK_AFTER_SECONDS", 900)
    # how long a message (personal data: the number, and the learner's name in the text) and
    # its outcomes are kept (repository.retain)
    retention = duration("SMS_RETENTION_DAYS", 365, unit="days", minimum=30)

    @validates_schema
    def _buckets_hold_a_token(self, values, **kwargs):
        # an unset burst is the rate: below one send a second, the bucket could never send
        for name in {values["provider"], values["fallback_provider"]} - {""}:
            if (values[f"{name}_burst"] or values[f"{name}_rate"]) < 1:
                raise ValidationError("a rate below 1 needs a burst of at least 1",
                                      field_name=f"SMS_{name.upper()}_BURST")
