"""Enrolling a learner: the rules, and the writes that apply them.

A learner is one person, recognised by the keyed hash of their national ID; the same
person may take several courses but each course once. The enrollment and the two events
that announce it are one document, written once.

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

from pymongo.errors import DuplicateKeyError

from hocvu.auth import Principal
from hocvu.cache import TtlCache
from hocvu.http import Conflict, Forbidden, NotFound
from hocvu.privacy import mask_phone
from hocvu.events import new_event
from hocvu.outbox import set_events, with_events

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


# courses change rarely; another instance's copy may lag by this many seconds
_catalog = TtlCache(seconds=30)


def find_course(db, course_id: str) -> dict | None:
    return _catalog.get(course_id, lambda: db.catalog.find_one({"_id": course_id}))


def forget_course(course_id: str) -> None:
    """A course changed (course_published): read it again on next use."""
    _catalog.forget(course_id)


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


def enroll(store, caller: Principal, course: dict, learner_in: dict, national_id_hash: str,
           subject: str, sealed_phone: str, correlation_id: str, now: datetime) -> dict:
    """Enroll in `course` (from course_for); raise AlreadyEnrolled for a repeat.

    Two documents, written one after the other without a transaction: the learner's profile,
    then the enrollment carrying its two events. Nothing needs them to change together: a
    profile without an enrollment (the second write failed) is a person known to the
    platform, and the request's retry finds it. Every check comes before the first write,
    so a refused request changes nothing. Both inserts go with those of other requests
    arriving at the same moment (`store.insert_together`): a launch morning's enrollments
    are written in batches.
    """
    db = store.db
    course_id = course["_id"]
    profile = learner_profile(learner_in, subject, now)
    existing_learner = db.learners.find_one({"national_id_hash": national_id_hash})
    if existing_learner:
        update_profile = check_profile(caller, existing_learner, profile)
        refuse_repeat(db, caller, existing_learner["_id"], course_id)
        learner = {**existing_learner, **profile} if update_profile else existing_learner
        if update_profile and any(existing_learner.get(key) != value
                                  for key, value in profile.items() if key != "updated_at"):
            db.learners.update_one({"_id": existing_learner["_id"]}, {"$set": profile})
    else:
        learner = {"_id": str(uuid.uuid4()), "national_id_hash": national_id_hash,
                   "created_at": now, **profile}
        store.insert_together("learners", learner)  # a concurrent twin: DuplicateKeyError
    enrollment = {
        "_id": str(uuid.uuid4()), "learner_id": learner["_id"], "course_id": course_id,
        "course_title": course["title"], "status": ACTIVE, "enrolled_at": now,
        "group": learner["group"], "province_code": learner_in["province_code"],
        "commune_code": learner_in["commune_code"], "learner_subject": learner["subject"],
        "enrolled_by": caller.subject, "correlation_id": correlation_id}
    announced = [
        new_event("learner_enrolled", {
            "enrollment_id": enrollment["_id"], "learner_id": learner["_id"],
            "course_id": course_id, "course_title": course["title"],
            "full_name": learner["full_name"], "group": learner["group"],
            "province_code": enrollment["province_code"],
            "commune_code": enrollment["commune_code"],
            "learner_subject": learner["subject"], "enrolled_at": now,
            "birth_year": learner.get("birth_year")}, correlation_id),
        new_event("learner_contact_registered", {
            "learner_id": learner["_id"], "enrollment_id": enrollment["_id"],
            "full_name": learner["full_name"], "sealed_phone": sealed_phone}, correlation_id)]
    try:
        store.insert_together("enrollments", with_events(enrollment, announced))
    except DuplicateKeyError:
        # a concurrent request enrolled the same person in the same course first
        refuse_repeat(db, caller, learner["_id"], course_id)
        raise
    return enrollment


def learner_profile(learner_in: dict, subject: str, now: datetime) -> dict:
    profile = {key: learner_in[key] for key in
               ("full_name", "birth_year", "group", "province_code", "commune_code")}
    profile.update(subject=subject, phone_masked=mask_phone(learner_in["phone"]),
                   national_id_last4=learner_in["national_id"][-4:], updated_at=now)
    return profile


def check_profile(caller: Principal, existing: dict, profile: dict) -> bool:
    """True if the caller may bring the known person's profile up to date; raise
    ProfileMismatch if they may not and the details differ."""
    if may_update_profile(caller, existing):
        return True
    if any(existing.get(key) != profile[key] for key in PROFILE_FIELDS):
        raise ProfileMismatch(
            "this person is registered with other details; only they, or staff of their "
            "commune, can change them", {"learner": ["differs from the registered person"]})
    return False


def refuse_repeat(db, caller: Principal, learner_id: str, course_id: str) -> None:
    """Raise AlreadyEnrolled if the person has this course already."""
    existing = db.enrollments.find_one(
        {"learner_id": learner_id, "course_id": course_id},
        projection={"_id": 1, "province_code": 1, "commune_code": 1, "learner_subject": 1})
    if existing:
        visible = caller.may_see(existing.get("province_code"), existing.get("commune_code"),
                                 existing.get("learner_subject"))
        raise AlreadyEnrolled("this person is already enrolled in this course",
                              {"learner.national_id": ["already enrolled in this course"]},
                              **({"enrollment_id": existing["_id"]} if visible else {}))


def remember_course(db, data: dict, published_at: datetime) -> None:
    """Keep the copy of lessons' catalog that enrollment checks requests against (an
    upsert that sets the same values: a redelivery changes nothing)."""
    db.catalog.update_one(
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


def cancel(db, enrollment: dict, caller: Principal, now: datetime) -> dict:
    """Cancel an active enrollment and announce it (lessons stop, no certificate, no
    reminder); a cancelled one is returned as it is, announced once only. One write,
    conditional on the status, carrying the one event it causes."""
    if enrollment["status"] == CANCELLED:
        return enrollment
    change = {"status": CANCELLED, "cancelled_at": now, "cancelled_by": caller.subject}
    cancelled = {**enrollment, **change}
    announced = new_event("enrollment_cancelled", {
        **{key: cancelled[key] for key in ("learner_id", "course_id", "group", "province_code",
                                            "commune_code")},
        "enrollment_id": cancelled["_id"], "learner_subject": cancelled.get("learner_subject"),
        "cancelled_at": now, "cancelled_by": "staff" if caller.is_staff else "learner"},
        cancelled.get("correlation_id") or cancelled["_id"])
    updated = db.enrollments.update_one({"_id": enrollment["_id"], "status": ACTIVE},
                                        set_events({"$set": change}, [announced]))
    if not updated.modified_count:
        # a concurrent cancellation won: answer what it wrote
        return db.enrollments.find_one({"_id": enrollment["_id"]})
    return cancelled
