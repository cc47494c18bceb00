"""How lessons' objects are kept in its own database (collections `courses`, `plans`)."""
from dataclasses import asdict
from pathlib import Path

import yaml
from pymongo import ASCENDING

from hocvu.events import new_event
from hocvu.outbox import OUTBOX_FIELD, with_events
from hocvu.store import Store, insert_once
from services.lessons.domain import (CANCELLED, FREE, Course, Learner, Lesson, LessonPlan,
                                     LessonProgress)

SEED_FILE = Path(__file__).with_name("catalog_seed.yaml")


def prepare(store: Store) -> None:
    """Collections and indexes, then the seed catalog on first start."""
    store.ensure_collections("courses", "plans", "cancellations", "sessions")
    store.db.courses.create_index([("group", ASCENDING), ("_id", ASCENDING)])
    store.db.plans.create_index("learner.learner_id")
    store.db.plans.create_index([("learner.commune_code", ASCENDING),
                                 ("learner.group", ASCENDING)])
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
