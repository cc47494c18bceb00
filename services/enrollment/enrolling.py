"""Enrolling a learner: the rules, and the transaction that applies them.

A learner is one person, recognised by the keyed hash of their national ID; the same
person may take several courses but each course once. The enrollment, the learner's
profile and the two events that announce them commit together.

Who may enroll whom (the caller is a verified hocvu.auth.Principal):
- a learner enrolls themselves, with the phone number they signed in with;
- staff enroll people in the communes they cover.
A known person's profile (name, phone, birth year, group) changes only when the caller is
that learner or staff covering the person's commune; anyone else whose details differ gets
409 PROFILE_MISMATCH, and a repeat names the existing enrollment only to whoever may see it.
Enrollment keeps no phone number in clear: only its mask, for display, and the learner's
sign-in subject (a keyed hash of it); the number itself is sealed for notifications.
"""
import uuid
from datetime import datetime
from typing import Callable

from hocvu.auth import Principal
from hocvu.http import Conflict, Forbidden, NotFound
from hocvu.privacy import mask_phone
from hocvu.store import Transaction

ACTIVE, CANCELLED = "active", "cancelled"
PROFILE_FIELDS = ("full_name", "subject", "birth_year", "group")


class AlreadyEnrolled(Conflict):
    code = "ALREADY_ENROLLED"


class ProfileMismatch(Conflict):
    code = "PROFILE_MISMATCH"


class CourseForAnotherGroup(Conflict):
    """The body is valid; the catalog says the course is not for this learner's group (a rule
    on the catalog's state, not on the body's form: 409, as a body's schema cannot state it)."""
    code = "COURSE_FOR_ANOTHER_GROUP"


def course_for(find_course: Callable[[str], dict | None], course_id: str, group: str) -> dict:
    course = find_course(course_id)
    if course is None:
        raise NotFound(f"no course {course_id}", {"course_id": ["unknown course"]})
    if course["group"] != group:
        raise CourseForAnotherGroup(
            "this course is for another learner group",
            {"course_id": [f"course {course_id} is for group '{course['group']}', "
                           f"the learner is in group '{group}'"]})
    return course


def check_caller_may_enroll(caller: Principal, learner_in: dict, subject: str) -> None:
    """403 unless the caller may enroll this person in this commune."""
    if caller.is_staff:
        if not caller.covers(learner_in["province_code"], learner_in["commune_code"]):
            raise Forbidden("you may enroll learners only in the communes you work in",
                            {"learner.commune_code": ["outside your communes"]})
    elif subject != caller.subject:
        raise Forbidden("a learner may enroll only themselves, with the phone number they "
                        "signed in with", {"learner.phone": ["not the number you signed in with"]})


def may_update_profile(caller: Principal, learner: dict) -> bool:
    return caller.owns(learner.get("subject")) or caller.covers(learner.get("province_code"),
                                                               learner.get("commune_code"))


def enroll(tx: Transaction, caller: Principal, course: dict, learner_in: dict,
           national_id_hash: str, subject: str, sealed_phone: str, correlation_id: str,
           now: datetime) -> dict:
    """Enroll in `course` (from course_for); raise AlreadyEnrolled for a repeat."""
    course_id = course["_id"]
    learner = save_learner(tx, caller, learner_in, national_id_hash, subject, now)
    # a learner created just now has no enrollments to look for
    existing = not learner["new"] and tx["enrollments"].find_one(
        {"learner_id": learner["_id"], "course_id": course_id},
        projection={"_id": 1, "province_code": 1, "commune_code": 1, "learner_subject": 1})
    if existing:
        visible = caller.may_see(existing.get("province_code"), existing.get("commune_code"),
                                 existing.get("learner_subject"))
        raise AlreadyEnrolled("this person is already enrolled in this course",
                              {"learner.national_id": ["already enrolled in this course"]},
                              **({"enrollment_id": existing["_id"]} if visible else {}))
    enrollment = {
        "_id": str(uuid.uuid4()), "learner_id": learner["_id"], "course_id": course_id,
        "course_title": course["title"], "status": ACTIVE, "enrolled_at": now,
        "group": learner["group"], "province_code": learner_in["province_code"],
        "commune_code": learner_in["commune_code"], "learner_subject": learner["subject"],
        "enrolled_by": caller.subject, "correlation_id": correlation_id}
    tx["enrollments"].insert_one(enrollment)
    tx.publish("learner_enrolled", {
        "enrollment_id": enrollment["_id"], "learner_id": learner["_id"],
        "course_id": course_id, "course_title": course["title"],
        "full_name": learner["full_name"], "group": learner["group"],
        "province_code": enrollment["province_code"], "commune_code": enrollment["commune_code"],
        "learner_subject": learner["subject"], "enrolled_at": now}, correlation_id)
    tx.publish("learner_contact_registered", {
        "learner_id": learner["_id"], "enrollment_id": enrollment["_id"],
        "full_name": learner["full_name"], "sealed_phone": sealed_phone}, correlation_id)
    return enrollment


def save_learner(tx: Transaction, caller: Principal, learner_in: dict, national_id_hash: str,
                 subject: str, now: datetime) -> dict:
    """Create the learner, or bring a returning learner's profile up to date when the caller
    may; refuse different details from anyone else."""
    profile = {key: learner_in[key] for key in
               ("full_name", "birth_year", "group", "province_code", "commune_code")}
    profile.update(subject=subject, phone_masked=mask_phone(learner_in["phone"]),
                   national_id_last4=learner_in["national_id"][-4:], updated_at=now)
    learners = tx["learners"]
    existing = learners.find_one({"national_id_hash": national_id_hash})
    if existing:
        if may_update_profile(caller, existing):
            learners.update_one({"_id": existing["_id"]}, {"$set": profile})
            return {**existing, **profile, "new": False}
        if any(existing.get(key) != profile[key] for key in PROFILE_FIELDS):
            raise ProfileMismatch(
                "this person is registered with other details; only they, or staff of their "
                "commune, can change them", {"learner": ["differs from the registered person"]})
        return {**existing, "new": False}
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


def find_visible(enrollments, enrollment_id: str, caller: Principal) -> dict:
    """The enrollment if the caller may see it (theirs, or in their communes); 404 otherwise."""
    enrollment = enrollments.find_one({"_id": enrollment_id})
    if enrollment is None or not caller.may_see(enrollment["province_code"],
                                                enrollment["commune_code"],
                                                enrollment.get("learner_subject")):
        raise NotFound(f"no enrollment {enrollment_id}")
    return enrollment


def cancel(tx: Transaction, enrollment: dict, caller: Principal, now: datetime) -> dict:
    """Cancel an active enrollment and announce it (lessons stop, no certificate, no
    reminder); a cancelled one is returned as it is, announced once only. One document
    changed, conditionally on its status, with the one event it causes."""
    if enrollment["status"] == CANCELLED:
        return enrollment
    change = {"status": CANCELLED, "cancelled_at": now, "cancelled_by": caller.subject}
    updated = tx["enrollments"].update_one({"_id": enrollment["_id"], "status": ACTIVE},
                                           {"$set": change})
    if not updated.modified_count:
        return tx["enrollments"].find_one({"_id": enrollment["_id"]})
    cancelled = {**enrollment, **change}
    tx.publish("enrollment_cancelled", {
        **{key: cancelled[key] for key in ("learner_id", "course_id", "group", "province_code",
                                            "commune_code")},
        "enrollment_id": cancelled["_id"], "learner_subject": cancelled.get("learner_subject"),
        "cancelled_at": now, "cancelled_by": "staff" if caller.is_staff else "learner"},
        cancelled.get("correlation_id") or cancelled["_id"])
    return cancelled
