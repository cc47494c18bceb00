"""How lessons' objects are kept in its own database (collections `courses`, `plans`,
`cancellations`; `sessions` in attendance.py): the catalog, plans assigned, lessons completed
and plans stopped by a cancellation."""
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import yaml
from pymongo import ASCENDING

from hocvu.auth import Principal
from hocvu.cache import TtlCache
from hocvu.clock import isoformat
from hocvu.events import new_event
from hocvu.http import Conflict, NotFound, ValidationFailed
from hocvu.outbox import OUTBOX_FIELD, with_events
from hocvu.store import Store, drop_indexes_if_present, insert_many_once, insert_once, read_modify_write
from services.lessons.domain import (CANCELLED, FREE, CompletedOutOfOrder, Course, Learner,
                                     Lesson, LessonPlan, LessonProgress, PlanCancelled,
                                     ScoreRequired, UnknownLesson)

SEED_FILE = Path(__file__).with_name("catalog_seed.yaml")
# a published course's lessons never change (catalog_seed.yaml); one read per minute will do
_courses = TtlCache(seconds=60)


class UnknownCourse(Exception):
    """learner_enrolled named a course this catalog does not have."""


class EnrollmentCancelled(Conflict):
    code = "ENROLLMENT_CANCELLED"


class LessonOutOfOrder(Conflict):
    code = "LESSON_OUT_OF_ORDER"


def prepare(store: Store) -> None:
    """Collections and indexes, then the seed catalog on first start."""
    store.ensure_collections("courses", "plans", "cancellations", "sessions")
    store.db.courses.create_index([("group", ASCENDING), ("_id", ASCENDING)])
    # a plan is read and written by its _id (the enrollment's) only: the indexes earlier
    # releases kept on its learner cost every plan write and served no query
    drop_indexes_if_present(store.db.plans, "learner.learner_id_1",
                            "learner.commune_code_1_learner.group_1")
    seed = [Course.from_seed(entry) for entry in yaml.safe_load(SEED_FILE.read_text())["courses"]]
    publish_missing_courses(store.db, seed)
    apply_course_rules(store.db, seed)


def apply_course_rules(db, courses: list[Course]) -> None:
    """The seed's order and pass mark for courses published before it set them (or with
    other values): rules only; a published course's lessons never change. Idempotent."""
    for course in courses:
        db.courses.update_one({"_id": course.id}, {"$set": {"order": course.order,
                                                            "pass_mark": course.pass_mark}})


def publish_missing_courses(db, courses: list[Course]) -> int:
    """Store and announce each course the catalog lacks (several instances may race here:
    the course's _id lets exactly one of them insert it, with its announcement)."""
    added = 0
    for course in courses:
        if db.courses.find_one({"_id": course.id}, projection={"_id": 1}):
            continue
        published = new_event("course_published", {
            "course_id": course.id, "title": course.title, "group": course.group,
            "lessons": [asdict(lesson) for lesson in course.lessons]},
            correlation_id=f"catalog-{course.id}")
        added += insert_once(db.courses, with_events(course_to_doc(course), [published]))
    return added


def catalog(db) -> list[Course]:
    return [course_from_doc(doc) for doc in db.courses.find().sort([("group", 1), ("_id", 1)])]


def find_course(db, course_id: str) -> Course | None:
    doc = db.courses.find_one({"_id": course_id})
    return doc and course_from_doc(doc)


def find_plan(db, enrollment_id: str) -> LessonPlan | None:
    doc = db.plans.find_one({"_id": enrollment_id})
    return doc and plan_from_doc(doc)


def course_to_doc(course: Course) -> dict:
    return {"_id": course.id, "title": course.title, "group": course.group,
            "lessons": [asdict(lesson) for lesson in course.lessons],
            "order": course.order, "pass_mark": course.pass_mark}


def course_from_doc(doc: dict) -> Course:
    return Course(id=doc["_id"], title=doc["title"], group=doc["group"],
                  lessons=tuple(Lesson(**lesson) for lesson in doc["lessons"]),
                  order=doc.get("order", FREE), pass_mark=doc.get("pass_mark"))


def plan_to_doc(plan: LessonPlan) -> dict:
    doc = asdict(plan)
    doc["_id"] = doc.pop("enrollment_id")
    return doc


def plan_from_doc(doc: dict) -> LessonPlan:
    doc = {key: value for key, value in doc.items() if key not in (OUTBOX_FIELD, "_v")}
    return LessonPlan(
        enrollment_id=doc.pop("_id"),
        learner=Learner(**doc.pop("learner")),
        lessons=[LessonProgress(**lesson) for lesson in doc.pop("lessons")],
        **doc)


# --- plans: assigned on learner_enrolled, then lessons completed ---------------------------

def assign_plans(db, events: list, now: datetime) -> list:
    """A plan for each learner_enrolled of `events`, in one insert; returns the events whose
    plan was there already (a redelivery)."""
    enrollment_ids = [event.data["enrollment_id"] for event in events]
    # a redelivery finds its plan (the enrollment's natural key); a cancellation that came
    # first leaves no lessons to assign
    planned = {doc["_id"] for doc in db.plans.find({"_id": {"$in": enrollment_ids}},
                                                   projection={"_id": 1})}
    cancelled = cancelled_among(db, enrollment_ids)
    already_done, plans, planned_for = [], [], []
    for event in events:
        data = event.data
        if data["enrollment_id"] in planned:
            already_done.append(event)
            continue
        if data["enrollment_id"] in cancelled:
            continue
        plans.append(_new_plan(db, event, now))
        planned_for.append(event)
    # a concurrent redelivery (or the same event twice in this batch) may insert a plan
    # first: then this one is the duplicate
    already_done += [planned_for[position]
                     for position in sorted(insert_many_once(db.plans, plans))]
    # a cancellation noted between the look above and the insertion stops the plan now
    # (the cancellation's own handler may have looked for the plan before it existed)
    stop_if_cancelled(db, enrollment_ids, now)
    return already_done


def _new_plan(db, event, now: datetime) -> dict:
    """The plan learner_enrolled asks for, with the events its creation causes."""
    data = event.data
    course_doc = _courses.get(data["course_id"],
                              lambda: db.courses.find_one({"_id": data["course_id"]}))
    if course_doc is None:
        raise UnknownCourse(data["course_id"])
    learner = Learner(learner_id=data["learner_id"], full_name=data["full_name"],
                      group=data["group"], province_code=data["province_code"],
                      commune_code=data["commune_code"], subject=data.get("learner_subject"))
    plan, events = LessonPlan.assign(data["enrollment_id"], course_from_doc(course_doc),
                                     learner, event.correlation_id, now)
    return with_events(plan_to_doc(plan), [
        new_event(event_type, event_data, event.correlation_id)
        for event_type, event_data in events])


def complete_lesson(db, enrollment_id: str, lesson_id: str, caller: Principal,
                    score: int | None, now: datetime) -> LessonPlan:
    """Complete a lesson of a plan the caller may see (the learner online, or staff of the
    learner's commune); the plan after it. The plan and the events it causes are written
    together."""
    def complete(current):
        plan = current and plan_from_doc(current)
        if plan is None or not plan.visible_to(caller):
            raise NotFound(f"no lessons assigned to enrollment {enrollment_id}")
        events = _completion_events(plan, lesson_id, score, not caller.is_staff, now)
        after = plan_to_doc(plan)
        if after == current:
            return plan, None  # done before: nothing changes, nothing is announced
        # an attempt below the pass mark changes the plan and announces nothing
        return plan, with_events(after, [new_event(event_type, data, plan.correlation_id)
                                         for event_type, data in events])

    # a read, then a write only if nobody changed the plan in between (another lesson
    # completed at the same moment): else it runs again on what that write left
    return read_modify_write(db.plans, enrollment_id, complete)


def _completion_events(plan: LessonPlan, lesson_id: str, score: int | None,
                       score_required: bool, now: datetime) -> list:
    """The plan's rule, as HTTP answers."""
    try:
        return plan.complete_lesson(lesson_id, score, now, score_required)
    except UnknownLesson:
        raise NotFound(f"enrollment {plan.enrollment_id} has no lesson {lesson_id}") from None
    except PlanCancelled:
        raise EnrollmentCancelled("this enrollment was cancelled: its lessons stopped",
                                  cancelled_at=isoformat(plan.cancelled_at)) from None
    except CompletedOutOfOrder as exc:
        blocking = exc.blocking
        raise LessonOutOfOrder(
            f"complete lesson {blocking.position}, \"{blocking.title}\", first: this course "
            "takes its lessons in order",
            blocking_lesson={"id": blocking.id, "title": blocking.title,
                             "position": blocking.position}) from None
    except ScoreRequired:
        raise ValidationFailed("this course has a pass mark: give the score you obtained",
                               {"score": [f"required: the pass mark is {plan.pass_mark}"]}) from None


# --- cancellations: a note per cancelled enrollment, then its plan stopped -----------------

def note_cancellation(db, enrollment_id: str, cancelled_at) -> None:
    db.cancellations.update_one({"_id": enrollment_id},
                                {"$setOnInsert": {"cancelled_at": cancelled_at}}, upsert=True)


def cancelled_among(db, enrollment_ids: list[str]) -> set[str]:
    """Those of `enrollment_ids` that were cancelled."""
    return {doc["_id"] for doc in db.cancellations.find({"_id": {"$in": enrollment_ids}},
                                                        projection={"_id": 1})}


def stop_if_cancelled(db, enrollment_ids: list[str], now) -> None:
    """Stop the plans of those enrollments that were cancelled (no plan, or not cancelled:
    nothing to do). Conditional on the plan's status, so that doing it twice changes
    nothing; it moves the plan's version on (`_v`, hocvu.store.read_modify_write), so that a
    completion read before it cannot write over it."""
    cancelled = cancelled_among(db, enrollment_ids)
    if not cancelled:
        return
    db.plans.update_many({"_id": {"$in": list(cancelled)}, "status": {"$ne": CANCELLED}},
                         {"$set": {"status": CANCELLED, "cancelled_at": now}, "$inc": {"_v": 1}})
