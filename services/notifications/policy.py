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
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from hocvu.clock import utcnow
from services.notifications import optout, templates
from services.notifications.domain import ACCEPTED, OUTCOMES

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

    def start_of(self, day: date) -> datetime:
        """The local day's first moment, in UTC."""
        return datetime.combine(day, time(0, 0), tzinfo=self.zone).astimezone(timezone.utc)


@dataclass(frozen=True)
class Decision:
    action: str
    reason: str | None = None
    until: datetime | None = None


class SendPolicy:
    def __init__(self, db, settings, clock: Callable[[], datetime] = utcnow):
        """`settings`: the service's (settings.NotificationsSettings)."""
        self.outcomes = db[OUTCOMES]
        self.optouts = db.sms_optouts
        self.clock = clock
        self.window = Window(settings.window_opens, settings.window_closes, settings.timezone)
        self.daily_cap = settings.daily_cap
        self.transactional_cap = settings.transactional_cap

    def decide(self, message: dict) -> Decision:
        return self.decide_many([message])[0]

    def decide_many(self, messages: list[dict]) -> list[Decision]:
        """A decision for each of a round's messages, in their order, in at most two reads
        whatever their number: the opt-outs of the reminders' numbers, and what was sent to
        the numbers the caps apply to since the local day began. Nothing is written: a
        message counts against its number's cap once the provider has accepted it (its
        `accepted` outcome), so a send that did not go out takes nothing."""
        now = self.clock()
        day = self.window.local_day(now)
        reminders = [m["to"] for m in messages if self._class(m) == REMINDER]
        opted_out = optout.opted_out_among(self.optouts, reminders) if reminders else set()
        decisions: list[Decision | None] = [None] * len(messages)
        capped = []  # (position, (number, class), cap, the decision when over the cap)
        for position, message in enumerate(messages):
            if self._class(message) != REMINDER:
                if not self.transactional_cap:
                    decisions[position] = Decision(SEND)
                    continue
                tomorrow = datetime.combine(day + timedelta(days=1), time(0, 0),
                                            tzinfo=self.window.zone)
                capped.append((position, (message["to"], TRANSACTIONAL), self.transactional_cap,
                               Decision(DEFER, DAILY_CAP, until=tomorrow.astimezone(timezone.utc))))
            elif message["to"] in opted_out:
                decisions[position] = Decision(SUPPRESS, OPTED_OUT)
            elif (opens := self.window.next_open(now)) > now:
                decisions[position] = Decision(DEFER, QUIET_HOURS, until=opens)
            else:
                capped.append((position, (message["to"], REMINDER), self.daily_cap,
                               Decision(DEFER, DAILY_CAP,
                                        until=self.window.opening_of(day + timedelta(days=1)))))
        counted = self._sent_since(list({number for _, (number, _), _, _ in capped}),
                                   self.window.start_of(day))
        for position, key, cap, over in capped:
            counted[key] += 1
            decisions[position] = Decision(SEND) if counted[key] <= cap else over
        return decisions

    @staticmethod
    def _class(message: dict) -> str:
        return message.get("sms_class", class_of(message["template"]))

    def _sent_since(self, numbers: list[str], since: datetime) -> Counter:
        """(number, class) -> SMS the provider accepted for each number since `since`: one
        read through the outcomes' (number, time) index. Within a round the caller counts
        what it decides to send; two loops sending to one number in the same moment (the
        sign-in codes' and the main one) may each send once before seeing the other's."""
        if not numbers:
            return Counter()
        return Counter(
            (outcome["to"], outcome.get("fields", {}).get("sms_class") or TRANSACTIONAL)
            for outcome in self.outcomes.find(
                {"to": {"$in": numbers}, "at": {"$gte": since}},
                projection={"to": 1, "kind": 1, "fields.sms_class": 1})
            if outcome["kind"] == ACCEPTED)
