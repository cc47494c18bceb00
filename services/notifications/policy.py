"""When an SMS may go out: its class, the day window, the daily cap and opt-out.

Decree 91/2020/ND-CP limits advertising-like messages to 07:00-22:00 local time and to
three per number a day. Reminders and campaign notices are treated as such ("reminder"
class); enrollment confirmations, certificates and sign-in codes are transactional and go
at once, at any hour, opted out or not. A reminder outside the window, or over the cap, is
deferred to the next moment it may go, never dropped; one to a number that opted out is
not sent (status `suppressed`).

Transactional SMS have a ceiling of their own, SMS_TRANSACTIONAL_DAILY_CAP per number per
local day (20; 0: none): no learner needs more, and it bounds what a misused staff account
could make the province pay for (SMS pumping). Over it they wait for the next local day.

Every decision is made against an injected clock, so tests can stand at 21:59 or at
midnight in Asia/Ho_Chi_Minh without patching anything.
"""
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from pymongo.errors import DuplicateKeyError

from hocvu.clock import utcnow
from services.notifications import optout, templates

TRANSACTIONAL, REMINDER = "transactional", "reminder"

TEMPLATE_CLASSES = {
    templates.ENROLLMENT_CONFIRMED: TRANSACTIONAL,
    templates.CERTIFICATE_ISSUED: TRANSACTIONAL,
    templates.CERTIFICATE_REVOKED: TRANSACTIONAL,
    templates.SIGN_IN_CODE: TRANSACTIONAL,
    templates.LESSON_REMINDER: REMINDER,
    templates.PROGRESS_REMINDER: REMINDER,
}

SEND, DEFER, SUPPRESS = "send", "defer", "suppress"
QUIET_HOURS, DAILY_CAP, OPTED_OUT = "quiet_hours", "daily_cap", "opted_out"


def class_of(template: str) -> str:
    # a template nobody classified is held to the stricter rules
    return TEMPLATE_CLASSES.get(template, REMINDER)


@dataclass(frozen=True)
class Window:
    """The part of each local day in which reminder-like SMS may go out."""
    opens: time = time(7, 0)
    closes: time = time(22, 0)
    zone: ZoneInfo = ZoneInfo("Asia/Ho_Chi_Minh")

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def next_open(self, moment: datetime) -> datetime:
        """`moment` itself if the window is open then, else the next opening (in UTC)."""
        local = moment.astimezone(self.zone)
        if self.opens <= local.time() < self.closes:
            return moment
        day = local.date() if local.time() < self.opens else local.date() + timedelta(days=1)
        return self.opening_of(day)

    def opening_of(self, day: date) -> datetime:
        return datetime.combine(day, self.opens, tzinfo=self.zone).astimezone(timezone.utc)


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str | None = None
    until: datetime | None = None
    quota_key: str | None = None  # a daily-cap slot taken for this send


class SendPolicy:
    def __init__(self, db, settings, clock: Callable[[], datetime] = utcnow):
        """`settings`: the service's (settings.NotificationsSettings)."""
        self.counts = db.sms_daily_counts
        self.optouts = db.sms_optouts
        self.clock = clock
        self.window = Window(settings.window_opens, settings.window_closes, settings.timezone)
        self.daily_cap = settings.daily_cap
        self.transactional_cap = settings.transactional_cap

    def decide(self, message: dict) -> Decision:
        if message.get("sms_class", class_of(message["template"])) != REMINDER:
            return self._decide_transactional(message)
        if optout.is_opted_out(self.optouts, message["to"]):
            return Decision(SUPPRESS, OPTED_OUT)
        now = self.clock()
        opens = self.window.next_open(now)
        if opens > now:
            return Decision(DEFER, QUIET_HOURS, until=opens)
        day = self.window.local_day(now)
        key = f"{message['to']}|{day.isoformat()}"
        if not self._take(key, day, self.daily_cap):
            return Decision(DEFER, DAILY_CAP,
                            until=self.window.opening_of(day + timedelta(days=1)))
        return Decision(SEND, quota_key=key)

    def give_back(self, decision: Decision) -> None:
        """The send did not go out after all: its slot is free again."""
        if decision.quota_key:
            self.counts.update_one({"_id": decision.quota_key, "count": {"$gt": 0}},
                                   {"$inc": {"count": -1}})

    def _decide_transactional(self, message: dict) -> Decision:
        if not self.transactional_cap:
            return Decision(SEND)
        day = self.window.local_day(self.clock())
        key = f"transactional|{message['to']}|{day.isoformat()}"
        if not self._take(key, day, self.transactional_cap):
            tomorrow = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=self.window.zone)
            return Decision(DEFER, DAILY_CAP, until=tomorrow.astimezone(timezone.utc))
        return Decision(SEND, quota_key=key)

    def _take(self, key: str, day: date, cap: int) -> bool:
        # one atomic conditional increment: two dispatchers cannot both take the last slot
        try:
            self.counts.update_one({"_id": key, "count": {"$lt": cap}},
                                   {"$inc": {"count": 1}, "$setOnInsert": {"day": day.isoformat()}},
                                   upsert=True)
        except DuplicateKeyError:
            return False  # the day's document exists and is full
        return True
