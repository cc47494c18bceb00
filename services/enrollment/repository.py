"""Enrollment's rules (domain.py) applied to its store: learners, enrollments, the catalog copy.

Each change is one single-document write carrying the events it causes (hocvu.outbox); the
import jobs (bulk.py) keep their own collections and enroll each row through
`enroll_learner` here.
"""
from datetime import datetime

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from hocvu import pagination
from hocvu.auth import Principal
from hocvu.cache import TtlCache
from hocvu.clock import utcnow
from hocvu.events import new_event
from hocvu.outbox import set_events, with_events
from hocvu.store import Store, drop_indexes_if_present
from services.enrollment import bulk, domain

# courses change rarely; another instance's copy may lag by this many seconds
_catalog = TtlCache(seconds=30)


def prepare(store: Store) -> None:
    db = store.db
    store.ensure_collections("learners", "enrollments", "catalog")
    db.learners.create_index("national_id_hash", unique=True)
    db.enrollments.create_index([("learner_id", ASCENDING), ("course_id", ASCENDING)],
                                unique=True)
    db.enrollments.create_index([("commune_code", ASCENDING), ("enrolled_at", ASCENDING)])
    # a province admin's pages (scope: the province only): else each page reads them all
    db.enrollments.create_index([("province_code", ASCENDING), ("enrolled_at", ASCENDING)])
    db.enrollments.create_index([("learner_subject", ASCENDING), ("enrolled_at", ASCENDING)])
    drop_indexes_if_present(db.enrollments, "commune_code_1_group_1")
    bulk.prepare_indexes(db)


def catalog(db) -> list[dict]:
    return list(db.catalog.find().sort([("group", 1), ("_id", 1)]))


def find_course(db, course_id: str) -> dict | None:
    return _catalog.get(course_id, lambda: db.catalog.find_one({"_id": course_id}))


def remember_course(db, data: dict, published_at: datetime) -> None:
    """Keep the copy of lessons' catalog that enrollment checks requests against (an
    upsert that sets the same values: a redelivery changes nothing), and read it again on
    next use."""
    db.catalog.update_one(
        {"_id": data["course_id"]},
        {"$set": {"title": data["title"], "group": data["group"],
                  "lesson_count": len(data["lessons"]), "published_at": published_at}},
        upsert=True)
    _catalog.forget(data["course_id"])


def enroll_learner(store: Store, keys, caller: Principal, course_id: str, learner_in: dict,
                   correlation_id: str) -> dict:
    """What POST /enrollments does with a valid body (and an import with each valid row):
    check the caller and the course, then `enroll`. `keys` is the service's
    dependencies.PersonalDataKeys; a rule's refusal is raised as a domain.Refused."""
    subject = keys.learner_subject(learner_in["phone"])
    domain.check_caller_may_enroll(caller, learner_in, subject)
    course = domain.check_course(find_course(store.db, course_id), course_id,
                                 learner_in["group"])
    national_id_hash = keys.national_id_hash(learner_in["national_id"])
    sealed_phone = keys.sealer.seal(learner_in["phone"])

    def attempt():
        return enroll(store, caller, course, learner_in, national_id_hash, subject,
                      sealed_phone, correlation_id, utcnow())

    try:
        return attempt()
    except DuplicateKeyError:
        # a concurrent request (or import row) for the same person wrote first; this time
        # we see what it wrote, and refuse a repeat or reuse the learner
        return attempt()


def enroll(store: Store, caller: Principal, course: dict, learner_in: dict,
           national_id_hash: str, subject: str, sealed_phone: str, correlation_id: str,
           now: datetime) -> dict:
    """Enroll in `course` (checked by domain.check_course); refuse a repeat.

    Two documents, written one after the other without a transaction: the learner's profile,
    then the enrollment carrying its two events. Nothing needs them to change together: a
    profile without an enrollment (the second write failed) is a person known to the
    platform, and the request's retry finds it. Every check comes before the first write,
    so a refused request changes nothing. Both inserts go with those of other requests
    arriving at the same moment (`store.insert_together`): a launch morning's enrollments
    are written in batches.
    """
    db = store.db
    profile = domain.learner_profile(learner_in, subject, now)
    # a person new to the platform (nearly everyone on a launch morning) is inserted without
    # a look first: the unique national id refuses one known already, who is then read and
    # checked (a lookup per request was a tenth of enrollment's CPU in the 2,600 burst)
    learner = domain.new_learner(national_id_hash, profile, now)
    try:
        store.insert_together("learners", learner)
    except DuplicateKeyError:
        learner = _known_learner(db, caller, course, national_id_hash, profile)
    enrollment = domain.new_enrollment(caller, course, learner, learner_in, correlation_id, now)
    announced = [
        new_event("learner_enrolled", domain.enrolled(enrollment, learner), correlation_id),
        new_event("learner_contact_registered",
                  domain.contact_registered(enrollment, learner, sealed_phone), correlation_id)]
    try:
        store.insert_together("enrollments", with_events(enrollment, announced))
    except DuplicateKeyError:
        # a concurrent request enrolled the same person in the same course first
        refuse_repeat(db, caller, learner["_id"], course["_id"])
        raise
    return enrollment


def _known_learner(db, caller: Principal, course: dict, national_id_hash: str,
                   profile: dict) -> dict:
    """The person this national id names, checked as enroll's caller may enroll them again
    (their profile kept or brought up to date); a repeat of the course refused."""
    existing = db.learners.find_one({"national_id_hash": national_id_hash})
    if existing is None:
        # gone between the insert and this read (an erasure): the request is tried again
        raise DuplicateKeyError("the learner changed while enrolling")
    update_profile = domain.check_profile(caller, existing, profile)
    refuse_repeat(db, caller, existing["_id"], course["_id"])
    if update_profile and domain.profile_changed(existing, profile):
        db.learners.update_one({"_id": existing["_id"]}, {"$set": profile})
    return {**existing, **profile} if update_profile else existing


def refuse_repeat(db, caller: Principal, learner_id: str, course_id: str) -> None:
    """Refuse if the person has this course already."""
    existing = db.enrollments.find_one(
        {"learner_id": learner_id, "course_id": course_id},
        projection={"_id": 1, "province_code": 1, "commune_code": 1, "learner_subject": 1})
    if existing:
        raise domain.repeat_refused(caller, existing)


def visible_enrollments(db, caller: Principal, args: dict) -> dict:
    """A page of the enrollments the caller may see, narrowed by `args` (a loaded query)."""
    return pagination.scoped_page(db.enrollments, caller, args, ("commune_code", "course_id"),
                                  "enrolled_at")


def find_visible(db, enrollment_id: str, caller: Principal) -> dict | None:
    """The enrollment if the caller may see it (theirs, or in their communes)."""
    enrollment = db.enrollments.find_one({"_id": enrollment_id})
    if enrollment is None or not caller.may_see(enrollment["province_code"],
                                                enrollment["commune_code"],
                                                enrollment.get("learner_subject")):
        return None
    return enrollment


def with_learner(db, enrollment: dict) -> dict:
    """The enrollment with its learner's profile, as the API shows them."""
    return {**enrollment, "learner": db.learners.find_one({"_id": enrollment["learner_id"]})}


def cancel(db, enrollment: dict, caller: Principal, now: datetime) -> dict:
    """Cancel an active enrollment and announce it (lessons stop, no certificate, no
    reminder); a cancelled one is returned as it is, announced once only. One write,
    conditional on the status, carrying the one event it causes."""
    if enrollment["status"] == domain.CANCELLED:
        return enrollment
    change = domain.cancellation(caller, now)
    cancelled = {**enrollment, **change}
    announced = new_event("enrollment_cancelled", domain.cancelled(cancelled, caller),
                          cancelled.get("correlation_id") or cancelled["_id"])
    updated = db.enrollments.update_one({"_id": enrollment["_id"], "status": domain.ACTIVE},
                                        set_events({"$set": change}, [announced]))
    if not updated.modified_count:
        # a concurrent cancellation won: answer what it wrote
        return db.enrollments.find_one({"_id": enrollment["_id"]})
    return cancelled
