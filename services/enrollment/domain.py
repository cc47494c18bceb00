"""Enrolling a learner: the rules, in plain Python (repository.py applies them to the store).

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

A rule that says no raises a `Refused`; the service answers it over HTTP, an import reports
it on the row.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from hocvu.privacy import mask_phone

if TYPE_CHECKING:   # only its questions are asked here (covers, owns, may_see)
    from hocvu.auth import Principal

ACTIVE, CANCELLED = "active", "cancelled"
PROFILE_FIELDS = ("full_name", "subject", "birth_year", "group")


class Refused(Exception):
    """A rule says no: `message`, and `fields` (name -> reasons) as the API shows them."""

    def __init__(self, message: str, fields: dict, **extra):
        super().__init__(message)
        self.message, self.fields, self.extra = message, fields, extra


class MayNotEnroll(Refused):
    """Not the learner themselves, or outside the staff member's communes."""


class UnknownCourse(Refused):
    pass


class CourseForAnotherGroup(Refused):
    pass


class AlreadyEnrolled(Refused):
    pass


class ProfileMismatch(Refused):
    pass


def check_caller_may_enroll(caller: Principal, learner_in: dict, subject: str) -> None:
    """Refuse unless the caller may enroll this person in this commune."""
    if caller.is_staff:
        if not caller.covers(learner_in["province_code"], learner_in["commune_code"]):
            raise MayNotEnroll("you may enroll learners only in the communes you work in",
                               {"learner.commune_code": ["outside your communes"]})
    elif subject != caller.subject:
        raise MayNotEnroll("a learner may enroll only themselves, with the phone number they "
                           "signed in with",
                           {"learner.phone": ["not the number you signed in with"]})


def check_course(course: dict | None, course_id: str, group: str) -> dict:
    """The catalog's `course` (None: unknown) if it is for the learner's group."""
    if course is None:
        raise UnknownCourse(f"no course {course_id}", {"course_id": ["unknown course"]})
    if course["group"] != group:
        raise CourseForAnotherGroup(
            "this course is for another learner group",
            {"course_id": [f"course {course_id} is for group '{course['group']}', "
                           f"the learner is in group '{group}'"]})
    return course


def learner_profile(learner_in: dict, subject: str, now: datetime) -> dict:
    profile = {key: learner_in[key] for key in
               ("full_name", "birth_year", "group", "province_code", "commune_code")}
    profile.update(subject=subject, phone_masked=mask_phone(learner_in["phone"]),
                   national_id_last4=learner_in["national_id"][-4:], updated_at=now)
    return profile


def may_update_profile(caller: Principal, learner: dict) -> bool:
    return caller.owns(learner.get("subject")) or caller.covers(learner.get("province_code"),
                                                               learner.get("commune_code"))


def check_profile(caller: Principal, existing: dict, profile: dict) -> bool:
    """True if the caller may bring the known person's profile up to date; refuse if they
    may not and the details differ."""
    if may_update_profile(caller, existing):
        return True
    if any(existing.get(key) != profile[key] for key in PROFILE_FIELDS):
        raise ProfileMismatch(
            "this person is registered with other details; only they, or staff of their "
            "commune, can change them", {"learner": ["differs from the registered person"]})
    return False


def profile_changed(existing: dict, profile: dict) -> bool:
    return any(existing.get(key) != value for key, value in profile.items()
               if key != "updated_at")


def repeat_refused(caller: Principal, existing: dict) -> AlreadyEnrolled:
    """The refusal of a second enrollment in a course: it names the `existing` enrollment
    only to whoever may see it."""
    visible = caller.may_see(existing.get("province_code"), existing.get("commune_code"),
                             existing.get("learner_subject"))
    return AlreadyEnrolled("this person is already enrolled in this course",
                           {"learner.national_id": ["already enrolled in this course"]},
                           **({"enrollment_id": existing["_id"]} if visible else {}))


def new_learner(national_id_hash: str, profile: dict, now: datetime) -> dict:
    return {"_id": str(uuid.uuid4()), "national_id_hash": national_id_hash,
            "created_at": now, **profile}


def new_enrollment(caller: Principal, course: dict, learner: dict, learner_in: dict,
                   correlation_id: str, now: datetime) -> dict:
    return {
        "_id": str(uuid.uuid4()), "learner_id": learner["_id"], "course_id": course["_id"],
        "course_title": course["title"], "status": ACTIVE, "enrolled_at": now,
        "group": learner["group"], "province_code": learner_in["province_code"],
        "commune_code": learner_in["commune_code"], "learner_subject": learner["subject"],
        "enrolled_by": caller.subject, "correlation_id": correlation_id}


def enrolled(enrollment: dict, learner: dict) -> dict:
    """What learner_enrolled says."""
    return {"enrollment_id": enrollment["_id"], "learner_id": learner["_id"],
            "course_id": enrollment["course_id"], "course_title": enrollment["course_title"],
            "full_name": learner["full_name"], "group": learner["group"],
            "province_code": enrollment["province_code"],
            "commune_code": enrollment["commune_code"],
            "learner_subject": learner["subject"], "enrolled_at": enrollment["enrolled_at"],
            "birth_year": learner.get("birth_year")}


def contact_registered(enrollment: dict, learner: dict, sealed_phone: str) -> dict:
    """What learner_contact_registered says: the phone number only sealed."""
    return {"learner_id": learner["_id"], "enrollment_id": enrollment["_id"],
            "full_name": learner["full_name"], "sealed_phone": sealed_phone}


def cancellation(caller: Principal, now: datetime) -> dict:
    return {"status": CANCELLED, "cancelled_at": now, "cancelled_by": caller.subject}


def cancelled(enrollment: dict, caller: Principal) -> dict:
    """What enrollment_cancelled says of the cancelled `enrollment`."""
    return {**{key: enrollment[key] for key in ("learner_id", "course_id", "group",
                                                "province_code", "commune_code")},
            "enrollment_id": enrollment["_id"],
            "learner_subject": enrollment.get("learner_subject"),
            "cancelled_at": enrollment["cancelled_at"],
            "cancelled_by": "staff" if caller.is_staff else "learner"}
