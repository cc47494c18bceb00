"""Classes: a facilitator records a session and who was present; being present completes
the session's lesson for each of them.

A session is one lesson of one course taught at a site of a commune on a day. Its id comes
from those (`ses-` and a hash), so recording the same class again, or from two phones at the
site, is the same session: learners are added to it, never a second one. Completion goes
through the same rule as online (`LessonPlan.complete_lesson`), with `session:<id>` as the
reason; completing a lesson twice changes nothing, so recording someone twice is harmless.

Who: staff covering the session's commune. A learner is taken only if the caller may see
their plan (their commune); a learner of another commune who came to this class is then
"not_found" for this facilitator, as their records are.
"""
import hashlib
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from hocvu.auth import Principal
from hocvu.clock import utcnow
from hocvu.events import new_event
from hocvu.http import NotFound
from hocvu.outbox import with_events
from hocvu.reference import province_of
from hocvu.store import read_modify_write
from services.lessons import repository
from services.lessons.domain import CompletedOutOfOrder, PlanCancelled, UnknownLesson

SESSIONS = "sessions"
COMPLETED, ALREADY, NOT_FOUND, OTHER_COURSE = (
    "completed", "already_completed", "not_found", "other_course")
# the course's rules (domain.py): a cancelled enrollment, or a strict-order lesson whose
# predecessors are not completed, completes nothing by presence either
CANCELLED, OUT_OF_ORDER = "enrollment_cancelled", "out_of_order"


def session_id(commune_code: str, site: str, date: str, course_id: str, lesson_id: str) -> str:
    site_key = " ".join(site.casefold().split())
    key = "\x1f".join((commune_code, site_key, date, course_id, lesson_id))
    return "ses-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def open_session(db, caller: Principal, body: dict) -> tuple[dict, bool]:
    """The session (created, or the one already recorded): (document, created)."""
    course = db.courses.find_one({"_id": body["course_id"]})
    if course is None:
        raise NotFound(f"no course {body['course_id']}", {"course_id": ["unknown course"]})
    if body["lesson_id"] not in {lesson["id"] for lesson in course["lessons"]}:
        raise NotFound(f"course {body['course_id']} has no lesson {body['lesson_id']}",
                       {"lesson_id": ["not a lesson of this course"]})
    date = body["date"].isoformat()
    session = {"_id": session_id(body["commune_code"], body["site"], date, body["course_id"],
                                 body["lesson_id"]),
               "course_id": body["course_id"], "lesson_id": body["lesson_id"],
               "commune_code": body["commune_code"], "province_code": province_of(body["commune_code"]),
               "site": body["site"], "date": date, "recorded_by": caller.subject,
               "created_at": utcnow(), "present": []}
    try:
        db[SESSIONS].insert_one(session)
        return session, True
    except DuplicateKeyError:
        return db[SESSIONS].find_one({"_id": session["_id"]}), False


def session_for(db, caller: Principal, session_id_: str) -> dict:
    session = db[SESSIONS].find_one({"_id": session_id_})
    if session is None or not caller.covers(session.get("province_code"),
                                            session["commune_code"]):
        raise NotFound(f"no session {session_id_}")
    return session


def record_present(store, caller: Principal, session: dict, enrollment_ids: list[str],
                   now: datetime | None = None) -> list[dict]:
    """Complete the session's lesson for each learner present; their outcomes, in order."""
    now = now or utcnow()
    results, present = [], []
    for enrollment_id in dict.fromkeys(enrollment_ids):
        outcome = _complete(store, caller, session, enrollment_id, now)
        results.append({"enrollment_id": enrollment_id, "outcome": outcome})
        if outcome in (COMPLETED, ALREADY):
            present.append(enrollment_id)
    if present:
        # after the plans: a crash in between leaves lessons completed and the list short,
        # and recording the same learners again completes nothing twice and adds them
        store.db[SESSIONS].update_one({"_id": session["_id"]},
                                      {"$addToSet": {"present": {"$each": present}}})
        session["present"] = list(dict.fromkeys(session["present"] + present))
    return results


def _complete(store, caller, session, enrollment_id, now) -> str:
    """One learner: the same rule as online completion, the plan and the events it causes
    written together, as POST .../complete does (the one place that writes a plan here)."""
    def decide(current):
        plan = current and repository.plan_from_doc(current)
        if plan is None or not plan.visible_to(caller):
            return NOT_FOUND, None
        if plan.course_id != session["course_id"]:
            return OTHER_COURSE, None
        try:
            events = plan.complete_lesson(session["lesson_id"], None, now,
                                          reason=f"session:{session['_id']}")
        except UnknownLesson:
            return OTHER_COURSE, None
        except PlanCancelled:
            return CANCELLED, None
        except CompletedOutOfOrder:
            return OUT_OF_ORDER, None
        if not events:
            return ALREADY, None
        return COMPLETED, with_events(repository.plan_to_doc(plan), [
            new_event(event_type, data, plan.correlation_id) for event_type, data in events])

    # conditional on the plan's version: a lesson completed online at the same moment makes
    # this run again on what that write left
    return read_modify_write(store.db.plans, enrollment_id, decide)
