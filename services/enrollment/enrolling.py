"""Enrolling a learner: the rules, and the transaction that applies them.

A learner is one person, recognised by the keyed hash of their national ID; the same
person may take several courses but each course once. The enrollment, the learner's
profile and the two events that announce them commit together.
"""
import uuid
from datetime import datetime
from typing import Callable

from hocvu.http import Conflict, NotFound, ValidationFailed
from hocvu.store import Transaction

ACTIVE = "active"


class AlreadyEnrolled(Conflict):
    code = "ALREADY_ENROLLED"


def course_for(find_course: Callable[[str], dict | None], course_id: str, group: str) -> dict:
    course = find_course(course_id)
    if course is None:
        raise NotFound(f"no course {course_id}", {"course_id": ["unknown course"]})
    if course["group"] != group:
        raise ValidationFailed(
            "this course is for another learner group",
            {"course_id": [f"course {course_id} is for group '{course['group']}', "
                           f"the learner is in group '{group}'"]})
    return course


def enroll(tx: Transaction, course: dict, learner_in: dict, national_id_hash: str,
           correlation_id: str, now: datetime) -> dict:
    """Enroll in `course` (from course_for); raise AlreadyEnrolled for a repeat."""
    course_id = course["_id"]
    learner = save_learner(tx, learner_in, national_id_hash, now)
    # a learner created just now has no enrollments to look for
    existing = not learner["new"] and tx["enrollments"].find_one(
        {"learner_id": learner["_id"], "course_id": course_id}, projection={"_id": 1})
    if existing:
        raise AlreadyEnrolled("this person is already enrolled in this course",
                              {"learner.national_id": ["already enrolled in this course"]},
                              enrollment_id=existing["_id"])
    enrollment = {
        "_id": str(uuid.uuid4()), "learner_id": learner["_id"], "course_id": course_id,
        "course_title": course["title"], "status": ACTIVE, "enrolled_at": now,
        "group": learner["group"], "province_code": learner["province_code"],
        "commune_code": learner["commune_code"], "correlation_id": correlation_id}
    tx["enrollments"].insert_one(enrollment)
    tx.publish("learner_enrolled", {
        "enrollment_id": enrollment["_id"], "learner_id": learner["_id"],
        "course_id": course_id, "course_title": course["title"],
        "full_name": learner["full_name"], "group": learner["group"],
        "province_code": learner["province_code"], "commune_code": learner["commune_code"],
        "enrolled_at": now}, correlation_id)
    tx.publish("learner_contact_registered", {
        "learner_id": learner["_id"], "enrollment_id": enrollment["_id"],
        "full_name": learner["full_name"], "phone": learner["phone"]}, correlation_id)
    return enrollment


def save_learner(tx: Transaction, learner_in: dict, national_id_hash: str,
                 now: datetime) -> dict:
    """Create the learner, or bring a returning learner's profile up to date."""
    profile = {key: learner_in[key] for key in
               ("full_name", "phone", "birth_year", "group", "province_code", "commune_code")}
    profile["national_id_last4"] = learner_in["national_id"][-4:]
    profile["updated_at"] = now
    learners = tx["learners"]
    existing = learners.find_one({"national_id_hash": national_id_hash}, projection={"_id": 1})
    if existing:
        learners.update_one({"_id": existing["_id"]}, {"$set": profile})
        return {"_id": existing["_id"], "new": False, **profile}
    learner = {"_id": str(uuid.uuid4()), "national_id_hash": national_id_hash,
               "created_at": now, **profile}
    learners.insert_one(learner)
    return {**learner, "new": True}


def remember_course(tx: Transaction, data: dict, published_at: datetime) -> None:
    """Keep the copy of lessons' catalog that enrollment checks requests against."""
    tx["catalog"].update_one(
        {"_id": data["course_id"]},
        {"$set": {"title": data["title"], "group": data["group"],
                  "lesson_count": len(data["lessons"]), "published_at": published_at}},
        upsert=True)
