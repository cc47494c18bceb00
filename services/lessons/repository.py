"""How lessons' objects are kept in its own database (collections `courses`, `plans`)."""
from dataclasses import asdict
from pathlib import Path

import yaml
from pymongo import ASCENDING

from hocvu.events import new_event
from hocvu.outbox import OUTBOX_FIELD, with_events
from hocvu.store import Store, insert_once
from services.lessons.domain import Course, Learner, Lesson, LessonPlan, LessonProgress

SEED_FILE = Path(__file__).with_name("catalog_seed.yaml")


def prepare(store: Store) -> None:
    """Collections and indexes, then the seed catalog on first start."""
    store.ensure_collections("courses", "plans", "sessions")
    store.db.courses.create_index([("group", ASCENDING), ("_id", ASCENDING)])
    store.db.plans.create_index("learner.learner_id")
    store.db.plans.create_index([("learner.commune_code", ASCENDING),
                                 ("learner.group", ASCENDING)])
    seed = [Course.from_seed(entry) for entry in yaml.safe_load(SEED_FILE.read_text())["courses"]]
    publish_missing_courses(store.db, seed)


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
            "lessons": [asdict(lesson) for lesson in course.lessons]}


def course_from_doc(doc: dict) -> Course:
    return Course(id=doc["_id"], title=doc["title"], group=doc["group"],
                  lessons=tuple(Lesson(**lesson) for lesson in doc["lessons"]))


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
