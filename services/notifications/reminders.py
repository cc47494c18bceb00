"""Reminders: a learner who makes no progress for N days gets an SMS naming the next lesson.

One document per enrollment in `reminders` holds what the reminder needs (the learner's
name, the course, the lessons completed) and when the next one is due:
`next_reminder_at` = N days after the later of the last progress and the last reminder, so
at most one reminder per enrollment per N days. N is REMINDER_DAYS, or the course's entry
in REMINDER_DAYS_BY_COURSE ("course-id=3,other-course=10").

It is fed by events: learner_enrolled starts it, lessons_assigned tells the course's lessons
and their titles (kept once per course, in `course_lessons`: a reminder names the course's
next lesson the learner has not completed), lesson_completed moves the last progress on (one
write: the planner, when it comes to the enrollment, waits N days from that progress before
it sends), course_completed ends it. `stop()` ends it for any other reason: the
`enrollment_cancelled` consumer calls
`stop(db, enrollment_id, "cancelled", now, data)`. A stopped enrollment is never reminded
again.

The planner loop claims due enrollments under a lease, creates the reminder message (its
dedupe key carries the reminder's sequence number), then moves `next_reminder_at` on. After a
crash between the two the next round makes the same message again, which its dedupe key
refuses, and moves on: no reminder is sent twice and none is lost. The message then goes through the send policy
like any reminder-like SMS (day window, daily cap, opt-out).
"""
import logging
from datetime import datetime, timedelta
from typing import Callable

from pymongo import ASCENDING, UpdateOne

from hocvu.background import WakeableLoop
from hocvu.clock import utcnow
from hocvu.leases import NEVER, claim_batch
from hocvu.store import Store, bulk_write_once, insert_many_once
from services.notifications import repository, templates
from services.notifications.domain import scope_of

log = logging.getLogger(__name__)

ACTIVE, COMPLETED, CANCELLED = "active", "completed", "cancelled"
_ORDER = [("next_reminder_at", ASCENDING)]


class ReminderDays:
    """The days without progress before a course's reminder (settings: REMINDER_DAYS and
    REMINDER_DAYS_BY_COURSE, each at least 1)."""

    def __init__(self, settings):
        self.default = settings.reminder_days
        self.by_course = settings.reminder_days_by_course

    def __call__(self, course_id: str) -> int:
        return self.by_course.get(course_id, self.default)


def _initial_state(data: dict, now: datetime) -> dict:
    return {"_id": data["enrollment_id"], "learner_id": data["learner_id"],
            "course_id": data["course_id"], "status": ACTIVE,
            "completed_lesson_ids": [], "reminders_sent": 0, "last_progress_at": None,
            "last_reminded_at": None, "next_reminder_at": None, "lease_until": NEVER,
            "touched_at": now}


def _upserted(db, enrollment_id: str, data: dict, now: datetime, change: dict) -> None:
    """`change` applied to the enrollment's state in one write, which creates the state if
    this is the first event about the enrollment."""
    _upserted_many(db, [(enrollment_id, data, change)], now)


def _upserted_many(db, changes: list[tuple[str, dict, dict]], now: datetime) -> None:
    """`_upserted` for many (enrollment_id, data, change) in one bulk write; two changes of
    one enrollment in a batch are applied in turn."""
    def upsert(enrollment_id, data, change):
        written = {field for fields in change.values() for field in fields}
        return UpdateOne({"_id": enrollment_id},
                         {**change, "$setOnInsert": _unset_fields(data, now, written)},
                         upsert=True)
    raced = bulk_write_once(db.reminders, [upsert(*item) for item in changes])
    for position in sorted(raced):
        # two first events of one enrollment upserted at once: the other one created it
        enrollment_id, _, change = changes[position]
        db.reminders.update_one({"_id": enrollment_id}, change)


def due_at(state: dict, days: int) -> datetime | None:
    """N days after the later of the last progress and the last reminder."""
    since = [d for d in (state.get("last_progress_at"), state.get("last_reminded_at")) if d]
    return max(since) + timedelta(days=days) if since else None


def _reschedule(db, state: dict, days: int, change: dict) -> None:
    state = {**state, **change}
    # stopped, or learner_enrolled (the starting point) not seen yet: nothing to schedule
    next_at = (due_at(state, days) if state["status"] == ACTIVE
               and state.get("last_progress_at") is not None else None)
    db.reminders.update_one({"_id": state["_id"]},
                            {"$set": {**change, "next_reminder_at": next_at}})


def on_enrolled(db, data: dict, days: ReminderDays, now: datetime) -> None:
    on_enrolled_many(db, [data], days, now)


def on_enrolled_many(db, enrolled: list[dict], days: ReminderDays, now: datetime) -> None:
    """learner_enrolled's data, many at once: the usual case is one bulk write for all."""
    def about(data):
        return {"full_name": data["full_name"], "course_title": data["course_title"],
                "province_code": data["province_code"], "commune_code": data["commune_code"],
                "learner_subject": data.get("learner_subject")}

    def starting(data):
        return {"last_progress_at": data["enrolled_at"],
                "next_reminder_at": data["enrolled_at"]
                + timedelta(days=days(data["course_id"]))}

    # the usual case: the enrollment's state is new (no progress seen yet, whether
    # lessons_assigned came first or not), inserted with the enrollment as its starting
    # point, all in one insert: an upsert of each cost the embedded store about 25 times as
    # much (5.4 ms against 0.2 ms a document, the 2,600 burst). A state there already
    # (progress, a cancellation or a completion came first, or this is a redelivery) falls
    # to the path below, which keeps a stopped one stopped
    elsewhere = insert_many_once(db.reminders, [
        {**_initial_state(data, now), **about(data), **starting(data)} for data in enrolled])
    for position in sorted(elsewhere):
        # progress arrived first (or this is a redelivery): recompute from what is stored
        data = enrolled[position]
        state = db.reminders.find_one({"_id": data["enrollment_id"]})
        progress = max(d for d in (state.get("last_progress_at"), data["enrolled_at"]) if d)
        _reschedule(db, state, days(data["course_id"]),
                    {**about(data), "last_progress_at": progress})


def on_lessons_assigned(db, data: dict, now: datetime) -> None:
    on_lessons_assigned_many(db, [data], now)


def on_lessons_assigned_many(db, assigned: list[dict], now: datetime) -> None:
    """The lessons a reminder names: a course's, kept once per course (`course_lessons`),
    written only when a course's list is new or changed (this process remembers what it
    wrote), so a launch morning's plans cost no write per enrollment."""
    for course_id, lessons in _course_lists(assigned).items():
        if _KNOWN_LISTS.get((db.name, course_id)) == lessons:
            continue
        db.course_lessons.update_one({"_id": course_id}, {"$set": {
            "lessons": list(lessons), "changed_at": now}}, upsert=True)
        _KNOWN_LISTS[(db.name, course_id)] = lessons


# (database, course) -> the lessons this process last wrote for it
_KNOWN_LISTS: dict[tuple[str, str], tuple] = {}


def _course_lists(assigned: list[dict]) -> dict[str, tuple]:
    """Each course's lessons, in order, as the last event of the batch about it tells them
    (only newer lessons services send titles)."""
    lists = {}
    for data in assigned:
        if data.get("lessons"):
            ordered = sorted(data["lessons"], key=lambda lesson: lesson["position"])
            lists[data["course_id"]] = tuple({"id": lesson["id"], "title": lesson["title"]}
                                             for lesson in ordered)
    return lists


def course_lessons(db, course_id: str) -> list[dict]:
    """The lessons a reminder about this course may name, in order ([] if none is known)."""
    found = db.course_lessons.find_one({"_id": course_id})
    return found["lessons"] if found else []


def _unset_fields(data: dict, now: datetime, written: dict) -> dict:
    """The initial state's fields that `written` does not set (for $setOnInsert)."""
    return {key: value for key, value in _initial_state(data, now).items()
            if key != "_id" and key not in written}


def on_lesson_completed(db, data: dict, now: datetime) -> None:
    on_lessons_completed(db, [data], now)


def on_lessons_completed(db, completed: list[dict], now: datetime) -> None:
    """lesson_completed's data, many at once, in one bulk write: each lesson noted, the last
    progress moved on. The next reminder's time is left as it was and put right by the
    planner when it comes round (`due_at` from the latest progress): a reading and a second
    write here for every lesson completed would cost the hot path what a few reminders a
    week cost the planner."""
    _upserted_many(db, [(data["enrollment_id"], data, {
        "$addToSet": {"completed_lesson_ids": data["lesson_id"]},
        "$max": {"last_progress_at": data["completed_at"]}}) for data in completed], now)


def stop(db, enrollment_id: str, why: str, now: datetime, data: dict | None = None) -> None:
    """No reminder for this enrollment ever again (course completed, enrollment cancelled)."""
    change = {"$set": {"status": why, "next_reminder_at": None, "stopped_at": now}}
    if data is None:
        db.reminders.update_one({"_id": enrollment_id}, change)
    else:
        _upserted(db, enrollment_id, data, now, change)


def stop_many(db, stopped: list[dict], why: str, now: datetime) -> None:
    """`stop` for many events' data (each with its enrollment_id) in one bulk write."""
    _upserted_many(db, [(data["enrollment_id"], data, {
        "$set": {"status": why, "next_reminder_at": None, "stopped_at": now}})
        for data in stopped], now)


def next_lesson(state: dict, lessons: list[dict]) -> dict | None:
    """The first of `lessons` (the course's) the enrollment has not completed."""
    done = set(state.get("completed_lesson_ids") or ())
    return next((lesson for lesson in lessons if lesson["id"] not in done), None)


class ReminderPlanner(WakeableLoop):
    name = "notifications.reminder_planner"

    def __init__(self, store: Store, settings, days: ReminderDays,
                 clock: Callable[[], datetime] = utcnow, on_message=lambda: None):
        """`settings`: the service's (settings.NotificationsSettings)."""
        super().__init__()
        self.store = store
        self.days = days
        self.clock = clock
        self.on_message = on_message
        self.poll_seconds = settings.reminder_poll_seconds
        self.batch_size = settings.reminder_batch_size
        self.lease = settings.reminder_lease
        self.unaccented = settings.unaccented

    def run_once(self) -> bool:
        now = self.clock()
        # next_reminder_at is set only while a state is active (_reschedule, stop). One
        # range of its own index, with a date as its lower bound: the embedded store reads a
        # filter through a compound index only when the index holds every field of it (the
        # claim adds lease_until), and a `$ne` or an open lower bound also reads the states
        # with none, which sort first. Either way it decoded every state each round: 1.5-1.8 s
        # of the store at 52,000 learners on a quiet machine (0.001-0.002 s now), a stall of
        # every SMS written each minute (docs/performance.md).
        due = {"next_reminder_at": {"$gt": NEVER, "$lte": now}, "status": ACTIVE}
        batch = claim_batch(self.store.db.reminders, due, _ORDER, self.batch_size, self.lease)
        created = 0
        for state in batch:
            created += bool(self._remind(self.store.db, state, now))
        if created:
            self.on_message()
        return len(batch) == self.batch_size

    def _remind(self, db, claimed: dict, now: datetime):
        """The reminder message, then the state moved on: two writes. After a crash between
        them the next round makes the same message (its dedupe key carries the sequence
        number), which insert_once refuses, and moves the state on: none sent twice."""
        reminders = db.reminders
        state = reminders.find_one({"_id": claimed["_id"], "lease_owner": claimed["lease_owner"]})
        free = {"lease_until": NEVER}
        days = self.days(state["course_id"]) if state else 0
        due = state and state["status"] == ACTIVE and state.get("next_reminder_at") and \
            due_at(state, days)
        if not due or due > now:
            # stopped, or progress since it was scheduled (lesson_completed moves only the
            # last progress): nothing to send now, and the next time from that progress
            reminders.update_one({"_id": claimed["_id"], "lease_owner": claimed["lease_owner"]},
                                 {"$set": {**free, **({"next_reminder_at": due} if due else {})},
                                  "$unset": {"lease_owner": ""}})
            return None
        # states of releases before kept their enrollment's lessons
        lessons = state.get("lessons") or course_lessons(db, state["course_id"])
        lesson = next_lesson(state, lessons)
        if lessons and lesson is None:
            # every lesson done, course_completed on its way: nothing to remind of
            reminders.update_one({"_id": state["_id"]}, {"$set": {**free, "next_reminder_at": None},
                                                         "$unset": {"lease_owner": ""}})
            return None
        sequence = state["reminders_sent"] + 1
        values = {"full_name": state["full_name"], "course_title": state["course_title"],
                  "days": days}
        template = templates.PROGRESS_REMINDER
        if lesson:
            template, values["lesson_title"] = templates.LESSON_REMINDER, lesson["title"]
        message = repository.create(
            db, template, f"reminder:{state['_id']}:{sequence}", state["learner_id"],
            state["_id"], values, f"reminder-{state['_id']}-{sequence}", now, self.unaccented,
            scope_of(state))
        reminders.update_one({"_id": state["_id"]}, {
            "$set": {**free, "reminders_sent": sequence, "last_reminded_at": now,
                     "next_reminder_at": now + timedelta(days=days)},
            "$unset": {"lease_owner": ""}})
        return message
