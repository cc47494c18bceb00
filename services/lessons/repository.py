"""How lessons' objects are kept in its own database (collections `courses`, `plans`)."""
from dataclasses import asdict
from pathlib import Path

import yaml
from pymongo import ASCENDING

from hocvu.store import Store, Transaction
from services.lessons.domain import CANCELLED, FREE, Course, Learner, Lesson, LessonPlan, LessonProgress

SEED_FILE = Path(__file__).with_name("catalog_seed.yaml")


def prepare(store: Store) -> None:
    """Collections and indexes, then the seed catalog on first start."""
    store.ensure_collections("courses", "plans", "cancellations")
    store.db.courses.create_index([("group", ASCENDING), ("_id", ASCENDING)])
    store.db.plans.create_index("learner.learner_id")
    store.db.plans.create_index([("learner.commune_code", ASCENDING),
                                 ("learner.group", ASCENDING)])
    seed = [Course.from_seed(entry) for entry in yaml.safe_load(SEED_FILE.read_text())["courses"]]
    store.transact(lambda tx: publish_missing_courses(tx, seed))
    apply_course_rules(store.db, seed)


def apply_course_rules(db, courses: list[Course]) -> None:
    """The seed's order and pass mark for courses published before it set them (or with
    other values): rules only; a published course's lessons never change. Idempotent."""
    for course in courses:
        db.courses.update_one({"_id": course.id}, {"$set": {"order": course.order,
                                                            "pass_mark": course.pass_mark}})


def publish_missing_courses(tx: Transaction, courses: list[Course]) -> int:
    """Store and announce each course the catalog lacks (several instances may race here:
    the transaction lets exactly one of them insert a course and publish it)."""
    added = 0
    for course in courses:
        if tx["courses"].find_one({"_id": course.id}, projection={"_id": 1}):
            continue
        tx["courses"].insert_one(course_to_doc(course))
        tx.publish("course_published", {
            "course_id": course.id, "title": course.title, "group": course.group,
            "lessons": [asdict(lesson) for lesson in course.lessons]},
            correlation_id=f"catalog-{course.id}")
        added += 1
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
    doc = dict(doc)
    return LessonPlan(
        enrollment_id=doc.pop("_id"),
        learner=Learner(**doc.pop("learner")),
        lessons=[LessonProgress(**lesson) for lesson in doc.pop("lessons")],
        **doc)


def save_plan_if_changed(tx: Transaction, before: dict, plan: LessonPlan) -> bool:
    """Write the plan back unless a cancellation stopped it since it was read (False then):
    a completion must never overwrite the cancelled status."""
    after = plan_to_doc(plan)
    if after == before:
        return True
    written = tx["plans"].replace_one({"_id": after["_id"], "status": {"$ne": CANCELLED}}, after)
    return written.matched_count == 1


# --- cancellations: a note per cancelled enrollment, then its plan stopped -----------------

def note_cancellation(tx: Transaction, enrollment_id: str, cancelled_at) -> None:
    tx["cancellations"].update_one({"_id": enrollment_id},
                                   {"$setOnInsert": {"cancelled_at": cancelled_at}}, upsert=True)


def was_cancelled(tx: Transaction, enrollment_id: str) -> bool:
    return tx["cancellations"].find_one({"_id": enrollment_id}, projection={"_id": 1}) is not None


def stop_if_cancelled(tx: Transaction, enrollment_id: str, now) -> None:
    """Stop the plan of a cancelled enrollment (no plan, or not cancelled: nothing to do).
    Conditional on the plan's status, so that doing it twice changes nothing."""
    if not was_cancelled(tx, enrollment_id):
        return
    tx["plans"].update_one({"_id": enrollment_id, "status": {"$ne": CANCELLED}},
                           {"$set": {"status": CANCELLED, "cancelled_at": now}})
