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

from pymongo import UpdateOne

from hocvu.clock import utcnow
from hocvu.store import bulk_write_once
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
        return self.decide_many([message])[0]

    def decide_many(self, messages: list[dict]) -> list[Decision]:
        """A decision for each of a round's messages, in their order, in at most two store
        commands whatever their number: the opt-outs of the reminders' numbers read at once,
        and every daily-cap slot taken in one bulk write."""
        now = self.clock()
        day = self.window.local_day(now)
        reminders = [m["to"] for m in messages if self._class(m) == REMINDER]
        opted_out = optout.opted_out_among(self.optouts, reminders) if reminders else set()
        decisions: list[Decision | None] = [None] * len(messages)
        takes = []  # (position, slot, cap, the decision when over the cap)
        for position, message in enumerate(messages):
            if self._class(message) != REMINDER:
                if not self.transactional_cap:
                    decisions[position] = Decision(SEND)
                    continue
                tomorrow = datetime.combine(day + timedelta(days=1), time(0, 0),
                                            tzinfo=self.window.zone)
                takes.append((position, f"{day.isoformat()}|transactional|{message['to']}",
                              self.transactional_cap,
                              Decision(DEFER, DAILY_CAP, until=tomorrow.astimezone(timezone.utc))))
            elif message["to"] in opted_out:
                decisions[position] = Decision(SUPPRESS, OPTED_OUT)
            elif (opens := self.window.next_open(now)) > now:
                decisions[position] = Decision(DEFER, QUIET_HOURS, until=opens)
            else:
                takes.append((position, f"{day.isoformat()}|{message['to']}", self.daily_cap,
                              Decision(DEFER, DAILY_CAP,
                                       until=self.window.opening_of(day + timedelta(days=1)))))
        full = self._take_many([(slot, cap) for _, slot, cap, _ in takes], day)
        for taken, (position, slot, _, over) in enumerate(takes):
            decisions[position] = over if taken in full else Decision(SEND, quota_key=slot)
        return decisions

    def give_back(self, decision: Decision) -> None:
        """The send did not go out after all: its slot is free again."""
        if decision.quota_key:
            self.counts.update_one({"_id": decision.quota_key, "count": {"$gt": 0}},
                                   {"$inc": {"count": -1}})

    @staticmethod
    def _class(message: dict) -> str:
        return message.get("sms_class", class_of(message["template"]))

    def _take_many(self, slots: list[tuple[str, int]], day: date) -> set[int]:
        """Take a slot for each (key, cap) in one bulk write; the positions refused (full).
        A key starts with its local day, so the counts of past days are forgotten by a range
        of _id (repository.retain). Counts of releases before (keyed by number first) are
        not read: a number's cap starts again once, on the day of the upgrade.
        Each take is one atomic conditional increment: two dispatchers cannot both take the
        last slot, and two takes of one key in a batch count twice."""
        return bulk_write_once(self.counts, [
            UpdateOne({"_id": key, "count": {"$lt": cap}},
                      {"$inc": {"count": 1}, "$setOnInsert": {"day": day.isoformat()}},
                      upsert=True) for key, cap in slots])
